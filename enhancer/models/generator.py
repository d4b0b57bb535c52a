"""The conditional spatio-temporal generator.

Input: a window of low-quality frames (N, 3, T + 2r, H, W) in [0, 1]; output: the T centre frames
repaired and upscaled, (N, 3, T, s*H, s*W). Most of the depth runs per frame (cheap 3x3 convs
over every input frame once), the temporal fusion is done by ``r`` 3x3x3 blocks that are valid in
time, so each output frame sees ``r`` real neighbours on each side (temporal receptive field
2r + 1 >= 5) and a whole chunk of output frames comes out of one pass. The network predicts a
residual over a bicubic upscale of the centre frames.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from enhancer.errors import ArgumentError, ConfigError
from enhancer.models.blocks import FrameBlock, TemporalBlock, conv_frame


@dataclass
class GeneratorConfig:
    scale: int = 2  # 1 (restore only), 2 or 4
    channels: int = 32
    frame_blocks: int = 4  # per-frame residual blocks before temporal fusion
    temporal_blocks: int = 2  # each adds one neighbour on each side
    post_blocks: int = 2  # per-frame residual blocks after fusion

    # What a model file's card may ask for, checked before anything is built (enhancer.restore.weights):
    # a range or set of allowed values. The bounds keep the largest network under ~100M parameters.
    LIMITS: ClassVar[dict] = {"scale": {1, 2, 4}, "channels": range(1, 257), "frame_blocks": range(0, 33),
                              "temporal_blocks": range(2, 9), "post_blocks": range(0, 33)}

    def __post_init__(self) -> None:
        if self.scale not in (1, 2, 4):
            raise ConfigError(f"scale must be 1, 2 or 4, not {self.scale}")
        if self.temporal_blocks < 2:
            raise ConfigError(f"temporal_blocks must be >= 2, not {self.temporal_blocks} (each output frame must see 2 "
                              "neighbours each side)")

    def to_dict(self) -> dict:
        return asdict(self)


CONFIGS = {
    "small": GeneratorConfig(channels=32, frame_blocks=4, temporal_blocks=2, post_blocks=2),
    "base": GeneratorConfig(channels=64, frame_blocks=6, temporal_blocks=2, post_blocks=6),
}


class Generator(nn.Module):
    """(N, 3, T + 2 * temporal_radius, H, W) -> (N, 3, T, scale * H, scale * W)."""

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = config
        c = config.channels
        self.head = conv_frame(3, c)
        self.frame_body = nn.Sequential(*[FrameBlock(c) for _ in range(config.frame_blocks)])
        self.fusion = nn.Sequential(*[TemporalBlock(c) for _ in range(config.temporal_blocks)])
        self.post_body = nn.Sequential(*[FrameBlock(c) for _ in range(config.post_blocks)])
        self.tail = conv_frame(c, 3 * config.scale * config.scale)
        nn.init.zeros_(self.tail.weight)  # start as the plain bicubic upscale
        nn.init.zeros_(self.tail.bias)

    @property
    def scale(self) -> int:
        return self.config.scale

    @property
    def temporal_radius(self) -> int:
        """Context frames consumed on each side."""
        return self.config.temporal_blocks

    @property
    def spatial_radius(self) -> int:
        """Input pixels on each side that can influence an output pixel (3x3 convs + bicubic)."""
        cfg = self.config
        convs = 1 + 2 * cfg.frame_blocks + 2 * cfg.temporal_blocks + 2 * cfg.post_blocks + 1
        return max(convs, 2)

    def forward(self, lq: torch.Tensor) -> torch.Tensor:
        n, _, t_in, h, w = lq.shape
        r = self.temporal_radius
        t = t_in - 2 * r
        if t < 1:
            raise ArgumentError(f"need at least {2 * r + 1} frames, got {t_in}")
        feat = self.head(lq)  # (N, C, T+2r, H, W)
        feat = self.frame_body(feat)
        feat = self.fusion(feat)  # (N, C, T, H, W)
        feat = self.post_body(feat)
        res = self.tail(feat)  # (N, 3*s*s, T, H, W)
        s = self.scale
        res = res.transpose(1, 2).reshape(n * t, 3 * s * s, h, w)  # (N*T, 3*s*s, H, W)
        centre = lq[:, :, r:r + t].transpose(1, 2).reshape(n * t, 3, h, w)
        if s > 1:
            res = F.pixel_shuffle(res, s)  # (N*T, 3, sH, sW)
            base = F.interpolate(centre, scale_factor=s, mode="bicubic", align_corners=False)
        else:
            base = centre
        out = base + res
        return out.reshape(n, t, 3, s * h, s * w).transpose(1, 2)  # (N, 3, T, sH, sW)


def complexity(config: GeneratorConfig, height: int = 64, width: int = 64, frames: int = 8) -> dict:
    """Parameters, and multiply-adds per output pixel when ``frames`` output frames come out of
    one pass (the per-frame layers then run on ``frames + 2r`` input frames)."""
    model = Generator(config)
    macs = 0

    def hook(mod, inp, out):
        nonlocal macs
        if isinstance(mod, nn.Conv3d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.kernel_size[2]
            macs += out.numel() * (mod.in_channels // mod.groups) * k

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv3d)]
    with torch.no_grad():
        model(torch.zeros(1, 3, frames + 2 * model.temporal_radius, height, width))
    for hnd in handles:
        hnd.remove()
    out_pixels = frames * height * width * config.scale ** 2
    params = sum(p.numel() for p in model.parameters())
    return {"params": params, "macs_per_output_pixel": macs / out_pixels,
            "macs_per_input_pixel": macs / (frames * height * width)}
