"""The copy of MobileNetV2's ImageNet weights that ships inside the package, so that perceptual
numbers work on a fresh install with nothing to download or copy.

Only what the perceptual distance (and the trainer's perceptual loss, the same module) runs is
kept: ``features.0`` to ``features.13`` of torchvision's ``mobilenet_v2`` with its IMAGENET1K_V1
weights (``mobilenet_v2-b0353104.pth``, BSD-3-Clause, torchvision), stored as float16 safetensors
(computed in float32). The batch-norm step counters, the last five feature blocks and the
classifier are left out. Rounding to float16 moves a distance by less than 2e-4 on the sample
clips (tests/test_features.py checks the shipped file against the original .pth, and that
rebuilding it from the .pth gives the same tensors).

Rebuild it with ``python -m enhancer.quality.feature_weights path/to/mobilenet_v2-b0353104.pth``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

SHIPPED = Path(__file__).resolve().parent.parent / "assets" / "mobilenet_v2-imagenet-features0-13.fp16.safetensors"
SOURCE_FILE = "mobilenet_v2-b0353104.pth"
SOURCE_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
LAYERS = 14  # features.0 .. features.13: the deepest tap of the perceptual distance is features.13


def _kept(key: str) -> bool:
    parts = key.split(".")
    return (parts[0] == "features" and int(parts[1]) < LAYERS and not key.endswith("num_batches_tracked"))


def trimmed(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The shipped subset of a full torchvision state dict, rounded to float16."""
    return {k: v.to(torch.float16).contiguous() for k, v in state.items() if _kept(k)}


def write(pth: str | Path, out: str | Path = SHIPPED) -> Path:
    """Make the shipped file from torchvision's original ``.pth``."""
    from safetensors.torch import save_file

    state = torch.load(pth, map_location="cpu", weights_only=True)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(trimmed(state), str(out), metadata={
        "network": "torchvision mobilenet_v2, IMAGENET1K_V1 weights",
        "source": f"{SOURCE_FILE} (sha256 {SOURCE_SHA256})",
        "layers": f"features.0-{LAYERS - 1}",
        "dtype": "float16 storage, float32 compute",
        "licence": "BSD-3-Clause (torchvision)"})
    return out


def read(path: str | Path = SHIPPED) -> dict[str, torch.Tensor]:
    """The shipped tensors as float32, ready for ``load_state_dict``."""
    from safetensors.torch import load_file

    return {k: v.float() for k, v in load_file(str(path)).items()}


if __name__ == "__main__":
    print(write(sys.argv[1], *sys.argv[2:3]))
