"""The clip discriminator: judges space and time together (TGAN/VGAN style 3D convolutions).

Input: a high-resolution clip (N, 3, T, H, W), real or generated, and the low-quality clip it was
made from, upscaled to the same size and concatenated as the condition (6 channels in). 4x4x4
kernels with stride 2, LeakyReLU 0.2, spectral normalisation on every layer, and patch outputs: a
grid of real/fake logits, one per space-time patch. ``forward`` also returns the intermediate
features for a feature-matching loss.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


@dataclass
class DiscriminatorConfig:
    channels: int = 64
    layers: int = 3  # strided layers; time is halved by the first two

    def to_dict(self) -> dict:
        return asdict(self)


class _PatchDiscriminator(nn.Module):
    """The layer stack both discriminators share: strided spectral-normalised convolutions with
    LeakyReLU 0.2 over the sample and its condition (6 channels in), then a 3-wide convolution to
    one logit per patch. ``forward`` also returns each layer's features (feature matching)."""

    def __init__(self, config: DiscriminatorConfig | None, conv, layer_args):
        super().__init__()
        self.config = config or DiscriminatorConfig()
        c, cin = self.config.channels, 6
        layers = []
        for i in range(self.config.layers):
            cout = c * (2 ** i)
            layers.append(spectral_norm(conv(cin, cout, **layer_args(i))))
            cin = cout
        self.convs = nn.ModuleList(layers)
        self.act = nn.LeakyReLU(0.2)
        self.out = spectral_norm(conv(cin, 1, kernel_size=3, padding=1))

    def forward(self, sample: torch.Tensor, condition: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = torch.cat([sample, condition], dim=1)  # (N, 6, ...)
        feats = []
        for conv in self.convs:
            x = self.act(conv(x))
            feats.append(x)
        return self.out(x), feats


def _clip_layer(i: int) -> dict:
    """4x4x4 kernels, stride 2 in space; time is halved by the first two layers only."""
    return {"kernel_size": (4 if i < 2 else 3, 4, 4), "stride": (2 if i < 2 else 1, 2, 2), "padding": 1}


class Discriminator(_PatchDiscriminator):
    """(N, 3, T, H, W) clip + (N, 3, T, H, W) upscaled condition -> (logits (N, 1, t, h, w), features)."""

    def __init__(self, config: DiscriminatorConfig | None = None):
        super().__init__(config, nn.Conv3d, _clip_layer)


class FrameDiscriminator(_PatchDiscriminator):
    """A per-frame image discriminator beside the clip discriminator (MoCoGAN's two-discriminator
    scheme): judges single frames, so texture is checked at full weight on every frame while the
    clip discriminator judges motion. PatchGAN layout (4x4 convolutions, stride 2, LeakyReLU 0.2,
    spectral norm), conditioned on the upscaled low-quality frame.
    (N, 3, H, W) frame + (N, 3, H, W) condition -> (logits (N, 1, h, w), features)."""

    def __init__(self, config: DiscriminatorConfig | None = None):
        super().__init__(config, nn.Conv2d, lambda i: {"kernel_size": 4, "stride": 2, "padding": 1})
