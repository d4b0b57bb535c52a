"""The aligned-fusion generator: each output frame from its own motion-aligned stack.

Input: stacks of ``2r + 1`` low-quality frames, the neighbours already warped onto the centre
frame by :mod:`enhancer.models.align`, as (N, (2r + 1) * 3, H, W) in [0, 1]; output: the centre
frame repaired and upscaled, (N, 3, s*H, s*W). With the motion taken out, fusion is early and
cheap (the first convolution sees every frame of the stack), and the network can spend its depth
on repair: a few blocks at the input resolution keep fine detail, and most blocks run at half
that resolution with twice the channels, where they see a wide context (blocking, ringing and
smeared detail span 8-16 pixels) at a quarter of the cost. Where alignment fails (occlusion,
frames out of view), the network learns to trust the centre frame. It predicts a residual over a
bicubic upscale of the centre frame.

All convolutions are 2D and spatial only; the output for a frame depends on its own stack alone,
so chunks over time are invisible, and tiles are (with an overlap of ``spatial_radius`` and tile
origins on even pixels, see ``align``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from enhancer.errors import ConfigError
from enhancer.models.blocks import ResBlock2d, stack_complexity


@dataclass
class FusionConfig:
    scale: int = 2  # 1 (restore only), 2 or 4
    radius: int = 2  # neighbours on each side of the centre frame
    channels: int = 32  # at the input resolution
    low_channels: int = 64  # at half the input resolution
    low_blocks: int = 6  # residual blocks at half resolution
    high_blocks: int = 2  # residual blocks at the input resolution, after the low branch

    # what a model file's card may ask for, checked before anything is built (enhancer.restore.weights)
    LIMITS: ClassVar[dict] = {"scale": {1, 2, 4}, "radius": range(2, 5), "channels": range(1, 257),
                              "low_channels": range(1, 513), "low_blocks": range(0, 33), "high_blocks": range(0, 33)}

    def __post_init__(self) -> None:
        if self.scale not in (1, 2, 4):
            raise ConfigError(f"scale must be 1, 2 or 4, not {self.scale}")
        if self.radius < 2:
            raise ConfigError(f"radius must be >= 2, not {self.radius} (each output frame must see 2 neighbours "
                              "each side)")

    def to_dict(self) -> dict:
        return asdict(self)


FUSION_CONFIGS = {
    "fusion-s": FusionConfig(channels=32, low_channels=64, low_blocks=6, high_blocks=2),
    "fusion-m": FusionConfig(channels=48, low_channels=96, low_blocks=8, high_blocks=3),
}


class FusionGenerator(nn.Module):
    """(N, (2r + 1) * 3, H, W) aligned stacks -> (N, 3, scale * H, scale * W)."""

    def __init__(self, config: FusionConfig):
        super().__init__()
        self.config = config
        c, c2 = config.channels, config.low_channels
        frames = 2 * config.radius + 1
        self.head = nn.Conv2d(3 * frames, c, 3, padding=1)
        self.down = nn.Conv2d(c, c2, 4, stride=2, padding=1)  # (N, C2, H/2, W/2)
        self.low = nn.Sequential(*[ResBlock2d(c2) for _ in range(config.low_blocks)])
        self.up = nn.Conv2d(c2, 4 * c, 3, padding=1)  # pixel-shuffled back to (N, C, H, W)
        self.high = nn.Sequential(*[ResBlock2d(c) for _ in range(config.high_blocks)])
        self.tail = nn.Conv2d(c, 3 * config.scale ** 2, 3, padding=1)
        self.act = nn.LeakyReLU(0.1, inplace=True)
        nn.init.zeros_(self.tail.weight)  # start as the plain bicubic upscale
        nn.init.zeros_(self.tail.bias)

    @property
    def scale(self) -> int:
        return self.config.scale

    @property
    def temporal_radius(self) -> int:
        """Context frames needed on each side of an output frame."""
        return self.config.radius

    @property
    def spatial_radius(self) -> int:
        """Input pixels on each side that can influence an output pixel: head 1, down 2, the
        half-resolution convs 2 each, up 2 (+1 for the pixel shuffle), high convs 1 each, tail 1,
        bicubic 2."""
        cfg = self.config
        return 1 + 2 + 2 * 2 * cfg.low_blocks + 3 + 2 * cfg.high_blocks + 1 + 2

    def forward(self, stacks: torch.Tensor) -> torch.Tensor:
        n, _, h, w = stacks.shape
        ph, pw = h % 2, w % 2  # the half-resolution branch needs even sizes
        x = F.pad(stacks, (0, pw, 0, ph), mode="replicate") if ph or pw else stacks
        feat = self.act(self.head(x))  # (N, C, H, W)
        low = self.low(self.down(feat))  # (N, C2, H/2, W/2)
        feat = feat + F.pixel_shuffle(self.up(low), 2)  # (N, C, H, W)
        feat = self.high(feat)
        res = self.tail(self.act(feat))  # (N, 3*s*s, H, W)
        if ph or pw:
            res = res[..., :h, :w]
        r = self.config.radius
        # (N, 3, H, W), made contiguous: the bicubic upscale of a channels-last slice ran 1.6x slower
        centre = stacks[:, 3 * r:3 * r + 3].contiguous()
        s = self.scale
        if s > 1:
            res = F.pixel_shuffle(res, s)  # (N, 3, sH, sW)
            centre = F.interpolate(centre, scale_factor=s, mode="bicubic", align_corners=False)
        return centre + res


def fusion_complexity(config: FusionConfig, height: int = 64, width: int = 64) -> dict:
    """Parameters, and multiply-adds per output pixel."""
    return stack_complexity(FusionGenerator(config), config.radius, config.scale, height, width)
