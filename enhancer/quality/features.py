"""The ImageNet backbone behind every perceptual number: loaded once, named in every output.

``mobilenet_v2``: torchvision's MobileNetV2 with its ImageNet weights (IMAGENET1K_V1), the network
built here layer for layer (torchvision is not imported: its models cost 2 s to import). The weights
come from ``ENHANCER_MOBILENET_WEIGHTS`` when it is set (torchvision's ``.pth`` or a safetensors
file), else from torchvision's own file where torchvision keeps it
(``$TORCH_HOME/hub/checkpoints/mobilenet_v2-b0353104.pth``), else from the float16 copy of the
layers the distance uses that ships inside the package (``enhancer.quality.feature_weights``), so a fresh
install needs nothing more. Distances are LPIPS-style (unit-normalised channels, squared
differences, averaged) with uniform layer weights.
``lpips-alex``: the ``lpips`` package's calibrated AlexNet metric, where its backbone weights
exist. Neither ever falls back to random weights: a missing file is a clear error. Tests that only
check plumbing pass ``allow_random=True`` explicitly.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from enhancer.errors import EnhancerError
from enhancer.quality.feature_weights import LAYERS, SHIPPED, read

MOBILENET_FILE = "mobilenet_v2-b0353104.pth"
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)
NETWORKS = ("mobilenet_v2", "lpips-alex")


def _mobilenet_path() -> Path:
    """Where the weights come from: the override, torchvision's own file, or the shipped copy."""
    env = os.environ.get("ENHANCER_MOBILENET_WEIGHTS")
    if env:
        return Path(env)
    torchvision_file = Path(torch.hub.get_dir()) / "checkpoints" / MOBILENET_FILE
    return torchvision_file if torchvision_file.is_file() else SHIPPED


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        return read(path)
    return torch.load(path, map_location="cpu", weights_only=True)


_BLOCKS = 19  # blocks of MobileNetV2's feature extractor
# (expansion, channels, repeats, stride) of its inverted residual stages
_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def _conv_bn(cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class _InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        self.residual = stride == 1 and cin == cout
        layers = [_conv_bn(cin, hidden, 1)] if expand != 1 else []
        layers += [_conv_bn(hidden, hidden, 3, stride, groups=hidden), nn.Conv2d(hidden, cout, 1, bias=False),
                   nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


def _mobilenet_v2_features(blocks: int = _BLOCKS, init: bool = False) -> nn.Sequential:
    """The first ``blocks`` blocks of torchvision's ``mobilenet_v2().features`` (width 1.0), module
    for module and key for key, built here: importing torchvision's models costs about 2 s of CPU,
    more than scoring a short clip."""
    layers: list[nn.Module] = [_conv_bn(3, 32, stride=2)]
    cin = 32
    for expand, cout, repeats, stride in _STAGES:
        for i in range(repeats):
            layers.append(_InvertedResidual(cin, cout, stride if i == 0 else 1, expand))
            cin = cout
    layers.append(_conv_bn(cin, 1280, 1))
    body = nn.Sequential(*layers[:blocks])
    if init:  # torchvision's initialisation, for the random-weight plumbing tests
        for m in body.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
    return body


class MobileNetFeatures(nn.Module):
    """Frozen MobileNetV2 feature taps at strides 2, 4, 8 and 16. (N, 3, H, W) in [0, 1] -> list."""

    name = "mobilenet_v2 (ImageNet, torchvision IMAGENET1K_V1)"
    taps = (1, 3, 6, 13)

    def __init__(self, allow_random: bool = False):
        super().__init__()
        path = _mobilenet_path()
        if path.is_file():
            state = _read_state(path)
            blocks = 1 + max((int(k.split(".")[1]) for k in state if k.startswith("features.")), default=-1)
            body = _mobilenet_v2_features(max(blocks, LAYERS) if blocks < _BLOCKS else _BLOCKS)
            state = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
            for key, value in body.state_dict().items():  # step counters are not used in eval mode
                if key.endswith("num_batches_tracked"):
                    state.setdefault(key, value)
            try:
                body.load_state_dict(state)
            except RuntimeError:
                raise EnhancerError("is not MobileNetV2's ImageNet state (keys or shapes differ)", path=str(path),
                                    hint=f"use torchvision's {MOBILENET_FILE}") from None
            if path == SHIPPED:
                self.name = "mobilenet_v2 (ImageNet, torchvision IMAGENET1K_V1; float16 copy shipped with enhancer)"
        elif allow_random:
            body = _mobilenet_v2_features(_BLOCKS, init=True)
            self.name = "mobilenet_v2 (RANDOM weights: plumbing tests only)"
        else:
            raise EnhancerError(f"MobileNetV2 ImageNet weights not found at {path}",
                                hint=f"copy {MOBILENET_FILE} there or unset ENHANCER_MOBILENET_WEIGHTS")
        self.body = body.eval()  # taps use the first layers; embed() runs them all
        self.source = path
        for p in self.body.parameters():
            p.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.body):
            x = layer(x)
            if i in self.taps:
                out.append(x)
            if i == max(self.taps):
                break
        return out

    def check_embed(self) -> None:
        """Raise unless embed() can run: it needs every layer, which the shipped copy leaves out."""
        if len(self.body) < 19:
            raise EnhancerError(f"the Frechet distance needs all 19 blocks of MobileNetV2; this file holds "
                                f"{len(self.body)}", path=str(self.source),
                                hint=f"put torchvision's {MOBILENET_FILE} in $TORCH_HOME/hub/checkpoints "
                                     "or set ENHANCER_MOBILENET_WEIGHTS")

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, 1280) globally pooled last-layer features (for Frechet distances)."""
        self.check_embed()
        return self.body((x - self.mean) / self.std).mean(dim=(2, 3))

    def train(self, mode: bool = True):  # always frozen, batch-norm in eval mode
        return super().train(False)


def _unit(f: torch.Tensor) -> torch.Tensor:
    return f / (f.pow(2).sum(dim=1, keepdim=True).add(1e-10).sqrt())


class PerceptualDistance(nn.Module):
    """Per-image perceptual distance between two batches (N, 3, H, W) in [0, 1] -> (N,)."""

    def __init__(self, net: str = "mobilenet_v2", allow_random: bool = False):
        super().__init__()
        if net not in NETWORKS:
            raise EnhancerError(f"unknown perceptual network {net!r}", hint=f"use one of {', '.join(NETWORKS)}")
        self.net_name = net
        if net == "mobilenet_v2":
            self.features = MobileNetFeatures(allow_random=allow_random)
            self.name = self.features.name
            self.lpips = None
        else:
            self.lpips = _load_lpips_alex()
            self.name = "lpips-alex (lpips 0.1, ImageNet AlexNet backbone)"

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.lpips is not None:
            return self.lpips(a * 2 - 1, b * 2 - 1).flatten()
        fa, fb = self.features(a), self.features(b)
        d = 0
        for x, y in zip(fa, fb):
            d = d + (_unit(x) - _unit(y)).pow(2).sum(dim=1).mean(dim=(1, 2))
        return d / len(fa)

    def for_scoring(self) -> "PerceptualDistance":
        """This distance for scoring without gradients: a copy whose batch norms are folded into
        the convolutions before them (the same function up to float rounding; on a CPU the batch
        norms took 40% of the network's time). Made once; the training loss keeps the original."""
        if self.lpips is not None:
            return self
        if getattr(self, "_scoring", None) is None:
            import copy

            folded = copy.deepcopy(self)
            _fold_batch_norms(folded.features.body)
            object.__setattr__(self, "_scoring", folded)  # not a submodule: state dicts stay as they are
        return self._scoring

    def taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The unit-normalised feature taps of a batch (N, 3, H, W) in [0, 1]: what :meth:`between`
        compares. Evaluation runs each frame through the network once and pairs the taps as it needs
        (a frame with its reference, and with its predecessor for tLP)."""
        if self.lpips is not None:
            import lpips

            return [lpips.normalize_tensor(f) for f in self.lpips.net.forward(self.lpips.scaling_layer(x * 2 - 1))]
        return [_unit(f) for f in self.features(x)]

    def between(self, fa: list[torch.Tensor], fb: list[torch.Tensor]) -> torch.Tensor:
        """(N,) distances of two batches of :meth:`taps`: ``between(taps(a), taps(b))`` is ``self(a, b)``."""
        if self.lpips is not None:
            return sum(self.lpips.lins[k]((x - y) ** 2).mean(dim=(2, 3)) for k, (x, y) in enumerate(zip(fa, fb))
                       ).flatten()
        d = 0
        for x, y in zip(fa, fb):
            d = d + (x - y).pow(2).sum(dim=1).mean(dim=(1, 2))
        return d / len(fa)


@torch.no_grad()
def _fold_batch_norms(module: nn.Module) -> None:
    """Every Conv2d followed by a BatchNorm2d (in eval mode) in a Sequential becomes one Conv2d
    with a bias, in place: w' = w * g / sqrt(v + eps), b' = beta + (b - m) * g / sqrt(v + eps)."""
    for seq in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            if not (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)):
                continue
            k = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                              conv.dilation, conv.groups, bias=True)
            fused.weight.copy_(conv.weight * k.view(-1, 1, 1, 1))
            bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
            fused.bias.copy_(bn.bias + (bias - bn.running_mean) * k)
            fused.requires_grad_(False)
            seq[i], seq[i + 1] = fused, nn.Identity()


def _load_lpips_alex() -> nn.Module:
    try:
        import lpips
    except ImportError:
        raise EnhancerError("the lpips package is not installed", hint="pip install lpips") from None
    alex = Path(torch.hub.get_dir()) / "checkpoints" / "alexnet-owt-7be5be79.pth"
    if not alex.is_file():
        raise EnhancerError(f"LPIPS needs torchvision's ImageNet AlexNet weights at {alex}",
                            hint="use the mobilenet_v2 perceptual network instead")
    return lpips.LPIPS(net="alex", verbose=False).eval()


_cache: dict[tuple[str, bool], PerceptualDistance] = {}


def perceptual(net: str = "mobilenet_v2", allow_random: bool = False) -> PerceptualDistance:
    """The perceptual distance, built once per process."""
    key = (net, allow_random)
    if key not in _cache:
        _cache[key] = PerceptualDistance(net, allow_random=allow_random)
    return _cache[key]
