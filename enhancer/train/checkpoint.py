"""Training checkpoints: everything needed to continue a run exactly, loadable without pickle
code execution (``torch.load(weights_only=True)``)."""
from __future__ import annotations

import os
from pathlib import Path

import torch


def save(path: Path, state: dict) -> None:
    """Atomically write a checkpoint (temp name, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load(path: str | Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def latest(run_dir: Path) -> Path | None:
    p = run_dir / "last.pt"
    return p if p.is_file() else None
