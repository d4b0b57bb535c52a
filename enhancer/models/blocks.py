"""Building blocks shared by the generators: residual blocks on frames (N, C, H, W) and on
clips (N, C, T, H, W), and the base every generator over flow-aligned stacks shares."""
from __future__ import annotations

import torch
from torch import nn


def conv_frame(cin: int, cout: int) -> nn.Conv3d:
    """A 3x3 convolution applied to each frame on its own: kernel (1, 3, 3)."""
    return nn.Conv3d(cin, cout, kernel_size=(1, 3, 3), padding=(0, 1, 1))


class _Residual(nn.Module):
    """x + conv2(act(conv1(x))): the one residual block, with its convolution chosen by the
    subclass."""

    def __init__(self, conv, channels: int, slope: float = 0.1):
        super().__init__()
        self.conv1 = conv(channels, channels)
        self.act = nn.LeakyReLU(slope, inplace=True)
        self.conv2 = conv(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


class FrameBlock(_Residual):
    """Residual block of two per-frame 3x3 convolutions. (N, C, T, H, W) -> same shape."""

    def __init__(self, channels: int, slope: float = 0.1):
        super().__init__(conv_frame, channels, slope)


class ResBlock2d(_Residual):
    """Residual block of two 3x3 convolutions. (N, C, H, W) -> same shape."""

    def __init__(self, channels: int, slope: float = 0.1):
        super().__init__(lambda i, o: nn.Conv2d(i, o, 3, padding=1), channels, slope)


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


def stack_complexity(model: nn.Module, radius: int, scale: int, height: int = 64, width: int = 64) -> dict:
    """Parameters, and multiply-adds per output and per input pixel, of a generator over aligned
    stacks (N, (2r + 1) * 3, H, W): every convolution's, 2D and 3D, counted on one stack."""
    macs = 0

    def hook(mod, inp, out):
        nonlocal macs
        k = 1
        for d in mod.kernel_size:
            k *= d
        macs += out.numel() * (mod.in_channels // mod.groups) * k

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))]
    with torch.no_grad():
        model(torch.zeros(1, 3 * (2 * radius + 1), height, width))
    for hnd in handles:
        hnd.remove()
    params = sum(p.numel() for p in model.parameters())
    out_pixels = height * width * scale ** 2
    return {"params": params, "macs_per_output_pixel": macs / out_pixels, "macs_per_input_pixel": macs / (height * width)}


def channels_last(model: nn.Module) -> nn.Module:
    """Each convolution's weights in the channels-last layout of its rank (NHWC for 2D, NDHWC for
    3D): a model that mixes both cannot be converted by one ``.to(memory_format=...)``."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            m.to(memory_format=torch.channels_last)
        elif isinstance(m, nn.Conv3d):
            m.to(memory_format=torch.channels_last_3d)
    return model
