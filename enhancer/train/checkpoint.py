"""Training checkpoints: everything needed to continue a run exactly, loadable without pickle
code execution (``torch.load(weights_only=True)``)."""
from __future__ import annotations

from pathlib import Path

import torch

from enhancer.errors import EnhancerError
from enhancer.media.temps import publish


class CheckpointError(EnhancerError):
    """A training checkpoint that cannot be read."""


def save(path: Path, state: dict) -> None:
    """Atomically write a checkpoint (temp name, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    torch.save(state, tmp)
    publish(tmp, path)


def load(path: str | Path) -> dict:
    """A checkpoint's state, loaded without running pickled code; one-line error otherwise."""
    if Path(path).is_dir():
        raise CheckpointError("is a folder, not a checkpoint", path=str(path), hint="give the run's last.pt")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError("no such checkpoint", path=str(path)) from None
    except Exception as e:  # torch raises several kinds for truncated, foreign or unsafe files
        raise CheckpointError(f"not a readable training checkpoint ({type(e).__name__})", path=str(path),
                              hint="checkpoints are the last.pt files `enhancer train` writes") from None
    parts = ("ema", "model_config", "config")
    if not isinstance(state, dict) or not all(isinstance(state.get(k), dict) for k in parts) \
            or not isinstance(state.get("step"), int):
        raise CheckpointError("not an enhancer training checkpoint", path=str(path),
                              hint="checkpoints are the last.pt files `enhancer train` writes")
    return state


def latest(run_dir: Path) -> Path | None:
    p = run_dir / "last.pt"
    return p if p.is_file() else None
