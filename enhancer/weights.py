"""Shipped weights: safetensors plus a JSON card that rebuilds the model on its own.

The card (stored in the safetensors metadata under ``enhancer``) holds the architecture name and
config, the scale, what damage the model was trained for, the training recipe and the metrics
measured for it, and a format version. Loading never unpickles anything.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from enhancer.errors import EnhancerError
from enhancer.models.generator import Generator, GeneratorConfig

FORMAT = "enhancer-weights"
VERSION = 1
ARCHITECTURES = {"stgan-generator": (Generator, GeneratorConfig)}


@dataclass
class ModelCard:
    name: str
    arch: str
    config: dict
    scale: int
    damage: str = ""  # what it was trained to repair
    recipe: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    notes: str = ""
    version: int = VERSION

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, **self.__dict__}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelCard":
        d = json.loads(text)
        if d.pop("format", None) != FORMAT:
            raise ValueError("not an enhancer weights card")
        if d.get("version", 0) > VERSION:
            raise ValueError(f"weights format version {d['version']} is newer than this enhancer understands")
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def save(model: Generator, path: str | os.PathLike, card: ModelCard) -> None:
    """Write ``model``'s weights (fp32, contiguous) and ``card`` to a .safetensors file."""
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(path).with_name(f".{Path(path).name}.partial")
    save_file(tensors, str(tmp), metadata={"enhancer": card.to_json()})
    os.replace(tmp, path)


def read_card(path: str | os.PathLike) -> ModelCard:
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:  # safetensors raises its own error types for bad headers
        raise EnhancerError(f"not a readable .safetensors file ({e})", path=str(path)) from None
    if "enhancer" not in meta:
        raise EnhancerError("safetensors file has no enhancer model card", path=str(path),
                            hint="export training checkpoints with `enhancer export`")
    try:
        return ModelCard.from_json(meta["enhancer"])
    except (ValueError, TypeError) as e:
        raise EnhancerError(f"bad model card: {e}", path=str(path)) from None


def load(path: str | os.PathLike) -> tuple[Generator, ModelCard]:
    """Rebuild the model from the card and load its weights, on the CPU in fp32."""
    card = read_card(path)
    if card.arch not in ARCHITECTURES:
        raise EnhancerError(f"unknown architecture {card.arch!r}", path=str(path),
                            hint="this file needs a newer enhancer")
    cls, cfg_cls = ARCHITECTURES[card.arch]
    model = cls(cfg_cls(**card.config))
    from safetensors.torch import load_file

    state = load_file(str(path), device="cpu")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise EnhancerError(f"weights do not match the {card.arch} config (missing {len(missing)}, "
                            f"unexpected {len(unexpected)} tensors)", path=str(path))
    return model.eval(), card


def weights_dirs() -> list[Path]:
    """Where named models are looked up: ``ENHANCER_WEIGHTS`` (os.pathsep-separated), the
    ``weights/`` folder of a source checkout, and ``<prefix>/share/enhancer/weights``."""
    dirs = [Path(p) for p in os.environ.get("ENHANCER_WEIGHTS", "").split(os.pathsep) if p]
    dirs.append(Path(__file__).resolve().parent.parent / "weights")
    dirs.append(Path(sys.prefix) / "share" / "enhancer" / "weights")
    return [d for d in dirs if d.is_dir()]


def available() -> dict[str, Path]:
    """Shipped and user models by name (first found wins)."""
    found: dict[str, Path] = {}
    for d in weights_dirs():
        for p in sorted(d.glob("*.safetensors")):
            found.setdefault(p.stem, p)
    return found


def resolve(name_or_path: str) -> Path:
    """A model name (``general-x2``) or a path to a .safetensors file."""
    p = Path(name_or_path)
    if p.suffix == ".safetensors" or os.sep in name_or_path:
        if not p.is_file():
            raise EnhancerError("no such weights file", path=name_or_path)
        return p
    models = available()
    if name_or_path not in models:
        names = ", ".join(sorted(models)) or "none installed"
        raise EnhancerError(f"unknown model {name_or_path!r}", hint=f"models: {names}; classical: lanczos, bicubic")
    return models[name_or_path]
