"""Turn a ``--model`` value into a ready :class:`~enhancer.infer.restorer.Restorer`."""
from __future__ import annotations

from enhancer.errors import EnhancerError
from enhancer.infer.restorer import CLASSICAL, ClassicalUpscaler, Restorer


def load_restorer(model: str, scale: int | None = None) -> Restorer:
    """``lanczos`` / ``bicubic`` / ``bilinear`` / ``nearest``: classical, at ``scale`` (default 2)."""
    if model in CLASSICAL:
        return ClassicalUpscaler(model, scale or 2)
    raise EnhancerError(f"unknown model {model!r}", hint=f"use one of {', '.join(CLASSICAL)}")
