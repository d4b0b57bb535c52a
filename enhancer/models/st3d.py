"""The aligned spatio-temporal generator: 3D convolutions over a flow-aligned stack, each warped
neighbour weighed by a per-pixel confidence.

Input: the same stacks as :class:`~enhancer.models.fusion.FusionGenerator` takes, ``2r + 1``
low-quality frames with the neighbours already warped onto the centre frame by
:mod:`enhancer.models.align`, as (N, (2r + 1) * 3, H, W) in [0, 1]; output: the centre frame
repaired and upscaled, (N, 3, s*H, s*W).

Where the fusion generator mixes the stack in its first 2D convolution, this one keeps time as an
axis (as DUF and TDAN do): per-frame features at half resolution are fused by ``r`` 3x3x3
convolutions that are valid in time (5 -> 3 -> 1 frames for r = 2), so the network sees how a
pixel changes across the aligned frames rather than a flat pile of channels. Before fusion each
neighbour's features are multiplied by a confidence in [0, 1] that a small network reads from the
neighbour, the centre and their difference: texture the flow could not follow (particles, water,
a person walking across a still background) gets a low confidence and is not averaged into the
centre frame, which keeps its own detail (the centre's confidence is 1). The fused features run
through 2D blocks at half resolution, come back to full resolution beside the centre frame's own
features and predict a residual over a bicubic upscale of the centre frame.

Every convolution is spatial within a frame or over the frames of one stack, so an output frame
depends on its own stack alone: chunks over time are invisible, and tiles are too (with an
overlap of ``spatial_radius`` and tile origins on even pixels, as for the fusion generator).
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
class ST3DConfig:
    scale: int = 2  # 1 (restore only), 2 or 4
    radius: int = 2  # neighbours on each side of the centre frame
    channels: int = 24  # per-frame features at the input resolution
    time_channels: int = 48  # per-frame features at half resolution, fused by the 3D convolutions
    low_channels: int = 64  # fused features at half resolution
    low_blocks: int = 4  # residual blocks at half resolution, after fusion
    high_blocks: int = 2  # residual blocks at the input resolution
    confidence_channels: int = 16  # the confidence network's hidden width

    LIMITS: ClassVar[dict] = {"scale": {1, 2, 4}, "radius": range(2, 5), "channels": range(1, 257),
                              "time_channels": range(1, 257), "low_channels": range(1, 513),
                              "low_blocks": range(0, 33), "high_blocks": range(0, 33),
                              "confidence_channels": range(1, 129)}

    def __post_init__(self) -> None:
        if self.scale not in (1, 2, 4):
            raise ConfigError(f"scale must be 1, 2 or 4, not {self.scale}")
        if self.radius < 2:
            raise ConfigError(f"radius must be >= 2, not {self.radius} (each output frame must see 2 neighbours "
                              "each side)")

    def to_dict(self) -> dict:
        return asdict(self)


ST3D_CONFIGS = {
    "st3d-s": ST3DConfig(),
    "st3d-m": ST3DConfig(channels=32, time_channels=64, low_channels=96, low_blocks=6, high_blocks=3),
    "st3d-l": ST3DConfig(channels=48, time_channels=96, low_channels=128, low_blocks=10, high_blocks=4),
}


class Confidence(nn.Module):
    """(N*K, 9, H, W) [neighbour, centre, |neighbour - centre|] -> (N*K, 1, H, W) in [0, 1]."""

    def __init__(self, hidden: int):
        super().__init__()
        self.conv1 = nn.Conv2d(9, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, 1, 3, padding=1)
        self.act = nn.LeakyReLU(0.1, inplace=True)
        nn.init.constant_(self.conv2.bias, 2.0)  # start trusting the flow (sigmoid(2) = 0.88)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv2(self.act(self.conv1(x))))


class ST3DGenerator(nn.Module):
    """(N, (2r + 1) * 3, H, W) aligned stacks -> (N, 3, scale * H, scale * W)."""

    def __init__(self, config: ST3DConfig):
        super().__init__()
        self.config = config
        c, ct, cl = config.channels, config.time_channels, config.low_channels
        r = config.radius
        self.confidence = Confidence(config.confidence_channels)
        self.head = nn.Conv2d(6, c, 3, padding=1)  # [frame, frame - centre], shared by every frame
        self.down = nn.Conv2d(c, ct, 4, stride=2, padding=1)  # (N*F, Ct, H/2, W/2)
        # r convolutions valid in time: 2r + 1 frames -> 1
        self.time = nn.ModuleList([nn.Conv3d(ct, cl if i == r - 1 else ct, 3, padding=(0, 1, 1)) for i in range(r)])
        self.low = nn.Sequential(*[ResBlock2d(cl) for _ in range(config.low_blocks)])
        self.up = nn.Conv2d(cl, 4 * c, 3, padding=1)  # pixel-shuffled back to (N, C, H, W)
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
        """Input pixels on each side that can influence an output pixel: confidence 2 (head 1),
        down 2, each half-resolution 3x3 conv 2 (the 3D ones, the low blocks' and up), +1 for the
        pixel shuffle, high convs 1 each, tail 1, bicubic 2."""
        cfg = self.config
        half = cfg.radius + 2 * cfg.low_blocks + 1
        return 2 + 2 + 2 * half + 1 + 2 * cfg.high_blocks + 1 + 2

    def forward(self, stacks: torch.Tensor) -> torch.Tensor:
        n, _, h, w = stacks.shape
        r = self.config.radius
        f = 2 * r + 1
        ph, pw = h % 2, w % 2  # the half-resolution branch needs even sizes
        x = F.pad(stacks, (0, pw, 0, ph), mode="replicate") if ph or pw else stacks
        hp, wp = x.shape[-2:]
        frames = x.reshape(n, f, 3, hp, wp)
        centre = frames[:, r]  # (N, 3, H, W)
        diff = frames - centre.unsqueeze(1)  # (N, F, 3, H, W)
        others = [k for k in range(f) if k != r]
        conf_in = torch.cat([frames[:, others], centre.unsqueeze(1).expand(n, f - 1, 3, hp, wp),
                             diff[:, others].abs()], dim=2)  # (N, F-1, 9, H, W)
        conf = self.confidence(conf_in.reshape(n * (f - 1), 9, hp, wp)).reshape(n, f - 1, 1, hp, wp)
        ones = torch.ones_like(conf[:, :1])
        conf = torch.cat([conf[:, :r], ones, conf[:, r:]], dim=1)  # (N, F, 1, H, W), the centre's is 1
        feat = self.act(self.head(torch.cat([frames, diff], dim=2).reshape(n * f, 6, hp, wp)))  # (N*F, C, H, W)
        centre_feat = feat.reshape(n, f, -1, hp, wp)[:, r]  # (N, C, H, W)
        feat = feat * conf.reshape(n * f, 1, hp, wp)
        low = self.act(self.down(feat))  # (N*F, Ct, H/2, W/2)
        low = low.reshape(n, f, *low.shape[1:]).transpose(1, 2)  # (N, Ct, F, H/2, W/2)
        for conv in self.time:
            low = self.act(conv(low))  # (N, Ct, F - 2i, H/2, W/2)
        low = self.low(low[:, :, 0])  # (N, Cl, H/2, W/2)
        feat = centre_feat + F.pixel_shuffle(self.up(low), 2)  # (N, C, H, W)
        feat = self.high(feat)
        res = self.tail(self.act(feat))  # (N, 3*s*s, H, W)
        if ph or pw:
            res = res[..., :h, :w]
        s = self.scale
        base = stacks[:, 3 * r:3 * r + 3]  # (N, 3, H, W)
        if s > 1:
            res = F.pixel_shuffle(res, s)  # (N, 3, sH, sW)
            base = F.interpolate(base, scale_factor=s, mode="bicubic", align_corners=False)
        return base + res

    def confidences(self, stacks: torch.Tensor) -> torch.Tensor:
        """The per-pixel confidence of each neighbour, (N, 2r, H, W): what the network trusts."""
        n, _, h, w = stacks.shape
        r = self.config.radius
        frames = stacks.reshape(n, 2 * r + 1, 3, h, w)
        centre = frames[:, r]
        others = [k for k in range(2 * r + 1) if k != r]
        x = torch.cat([frames[:, others], centre.unsqueeze(1).expand(n, 2 * r, 3, h, w),
                       (frames[:, others] - centre.unsqueeze(1)).abs()], dim=2)
        return self.confidence(x.reshape(n * 2 * r, 9, h, w)).reshape(n, 2 * r, h, w)


def st3d_complexity(config: ST3DConfig, height: int = 64, width: int = 64) -> dict:
    """Parameters, and multiply-adds per output and per input pixel."""
    return stack_complexity(ST3DGenerator(config), config.radius, config.scale, height, width)
