"""Building blocks shared by the generator. Every block works on clips (N, C, T, H, W)."""
from __future__ import annotations

import torch
from torch import nn


def conv_frame(cin: int, cout: int) -> nn.Conv3d:
    """A 3x3 convolution applied to each frame on its own: kernel (1, 3, 3)."""
    return nn.Conv3d(cin, cout, kernel_size=(1, 3, 3), padding=(0, 1, 1))


class FrameBlock(nn.Module):
    """Residual block of two per-frame 3x3 convolutions. (N, C, T, H, W) -> same shape."""

    def __init__(self, channels: int, slope: float = 0.1):
        super().__init__()
        self.conv1 = conv_frame(channels, channels)
        self.act = nn.LeakyReLU(slope, inplace=True)
        self.conv2 = conv_frame(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


class TemporalBlock(nn.Module):
    """Fuses each frame with its two neighbours: a 3x3x3 convolution that is *valid* in time
    (no temporal padding), then a per-frame 3x3 convolution, with a residual from the centre frames.
    (N, C, T, H, W) -> (N, C, T - 2, H, W). Because nothing is padded in time, a frame's output
    depends only on real neighbours, never on where a chunk was cut."""

    def __init__(self, channels: int, slope: float = 0.1):
        super().__init__()
        self.conv_t = nn.Conv3d(channels, channels, kernel_size=(3, 3, 3), padding=(0, 1, 1))
        self.act = nn.LeakyReLU(slope, inplace=True)
        self.conv2 = conv_frame(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, 1:-1] + self.conv2(self.act(self.conv_t(x)))
