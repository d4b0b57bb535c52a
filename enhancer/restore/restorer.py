"""The interface every enhancement step implements, and the classical upscalers behind it.

A restorer turns a window of frames into its core frames, enhanced: it receives
``(T + 2 * margin, H, W, 3)`` frames and returns ``(T, H * scale, W * scale, 3)``, same dtype
(uint8, or uint16 for deep sources). The engine feeds it windows from
:func:`enhancer.media.reader.windows`, so a restorer never sees where chunks are cut.
"""
from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np

from enhancer.errors import ArgumentError

CLASSICAL = ("lanczos", "bicubic", "bilinear", "nearest")
# a model's output frames per pass unless --chunk says otherwise (by device type; halved where
# the frames would not fit the memory available): the one default, the CLI's help included
MODEL_CHUNK = {"cpu": 8, "cuda": 16}
_CV2_METHOD = {"lanczos": cv2.INTER_LANCZOS4, "bicubic": cv2.INTER_CUBIC, "bilinear": cv2.INTER_LINEAR,
               "nearest": cv2.INTER_NEAREST}


class Restorer(Protocol):
    name: str
    scale: int
    margin: int  # frames of context needed on each side of a core frame
    chunk: int  # core frames per call that suits this restorer

    def restore(self, images: np.ndarray) -> np.ndarray:
        """(T + 2 * margin, H, W, 3) uint8|uint16 -> (T, H * scale, W * scale, 3), same dtype."""
        ...

    def describe(self) -> dict:
        """What ran, for logs and JSON reports."""
        ...


def planned_chunk(restorer: Restorer, height: int, width: int, requested: int | None = None,
                  reserve: int = 0) -> int:
    """Core frames per restorer call for frames of ``height`` x ``width``: ``requested`` (--chunk)
    when given, else what the restorer fits to the memory left beside ``reserve`` bytes that others
    (the encoder) need, else its own ``chunk``."""
    fit = getattr(restorer, "chunk_for", None)
    # asked even when the chunk is given: the restorer sizes its tiles by the reserve it learns here
    planned = fit(height, width, reserve=reserve) if fit is not None else restorer.chunk
    return max(1, requested or planned)


TEMPORAL_RADIUS = 2  # the temporal-consistency stage's neighbours on each side (enhancer.restore.temporal)
TEMPORAL_MAX_RADIUS = 4


class ClassicalUpscaler:
    """Per-frame interpolation with OpenCV (lanczos = OpenCV's 8-tap Lanczos-4). Scale 1 passes
    frames through untouched, which makes it the identity step for I/O benchmarks."""

    margin = 0
    chunk = 1

    def __init__(self, method: str = "lanczos", scale: int = 2):
        if method not in CLASSICAL:
            raise ArgumentError(f"unknown classical method {method!r}", hint=f"one of {', '.join(CLASSICAL)}")
        if scale not in (1, 2, 3, 4):
            raise ArgumentError(f"{method} works at scale 1, 2, 3 or 4, not {scale}")
        self.name = method
        self.method = method
        self.scale = scale
        # frames go through untouched: they may stay in the source's YUV (enhancer.media.planar)
        self.passthrough = scale == 1

    def restore(self, images: np.ndarray) -> np.ndarray:
        if self.scale == 1:
            return images
        t, h, w, _ = images.shape
        out = np.empty((t, h * self.scale, w * self.scale, 3), dtype=images.dtype)
        for i in range(t):
            cv2.resize(images[i], (w * self.scale, h * self.scale), dst=out[i], interpolation=_CV2_METHOD[self.method])
        return out

    def describe(self) -> dict:
        return {"model": self.name, "kind": "classical", "scale": self.scale}
