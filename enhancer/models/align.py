"""Motion alignment: the fixed (not learned) first stage of the aligned-fusion generator.

Before the network fuses a frame with its neighbours, each neighbour is warped onto the frame
with a dense optical flow, so that fast motion (a pan of 30 pixels a frame) reaches the network as
aligned detail rather than as a ghost. The flow is OpenCV's DIS (dense inverse search, Kroeger et
al. 2016) on the luma of the low-quality frames, fast on a CPU (about 3 ms for a 320x180 pair on
one core). DIS's pyramid is shallow on small frames, so a global translation found first by
phase correlation (a camera pan, however fast) starts it, and DIS adds the local motion. The same function prepares the
network's input in training and at inference, so the network learns exactly what it is given.

Frames are (H, W, 3) float32 RGB in [0, 1]. A window of ``T + 2r`` frames gives ``T`` stacks of
``2r + 1`` frames each, every one of them warped onto the stack's centre frame (which is kept as
it is, in slot ``r``). A stack depends only on its own frames, so where a video is cut into
chunks cannot change it, and the warps are computed on whole frames before any spatial tiling.
"""
from __future__ import annotations

import threading

import cv2
import numpy as np

from enhancer.errors import ArgumentError

# flows are estimated on frames at most this many pixels on their longer side (downscaled, then
# the flow is scaled back): DIS's cost grows with the area while large frames gain nothing in
# accuracy that matters for a 5-frame fusion
FLOW_MAX_SIDE = 1024
# DIS's preset. fast, not medium: on the 16 held-out clips (web damage, x2, general-x2) it gave
# 31.679 dB PSNR-Y against medium's 31.666, in half the alignment time (benchmarks/flow_quality.py)
FLOW_PRESET = "fast"
_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
            "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}

_local = threading.local()


def _dis() -> cv2.DISOpticalFlow:
    """A new DIS instance for each flow: the object keeps state between calls, and a flow must
    not depend on the flows computed before it in the process (a resumed run, or a pass aligned
    on another thread, would differ). A new one costs 2.4 ms more a flow at 1024x576 (14.1 ms
    against 11.7, measured)."""
    return cv2.DISOpticalFlow_create(_PRESETS[FLOW_PRESET])


def luma8(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 1] -> (H, W) uint8 BT.601 luma for the flow estimator."""
    y = frame @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.ascontiguousarray(np.clip(y * 255 + 0.5, 0, 255).astype(np.uint8))


def _window(h: int, w: int) -> np.ndarray:
    cache = getattr(_local, "windows", None)
    if cache is None:
        cache = _local.windows = {}
    if (h, w) not in cache:
        cache[(h, w)] = cv2.createHanningWindow((w, h), cv2.CV_32F)
    return cache[(h, w)]


def _flow(ref: np.ndarray, other: np.ndarray) -> np.ndarray:
    """DIS, started from the global translation when phase correlation finds a clear one."""
    h, w = ref.shape
    if h < 16 or w < 16:
        return _dis().calc(ref, other, None)
    (gx, gy), response = cv2.phaseCorrelate(ref.astype(np.float32), other.astype(np.float32), _window(h, w))
    sx, sy = int(round(gx)), int(round(gy))
    if response < 0.1 or max(abs(sx), abs(sy)) < 2 or abs(sx) > w // 2 or abs(sy) > h // 2:
        return _dis().calc(ref, other, None)
    shifted = cv2.warpAffine(other, np.float32([[1, 0, sx], [0, 1, sy]]), (w, h),
                             flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    out = _dis().calc(ref, shifted, None)  # ref(x) ~ shifted(x + f) = other(x + f + s)
    out[..., 0] += sx
    out[..., 1] += sy
    return out


def flow(ref: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Dense flow from luma ``ref`` to luma ``other`` ((H, W) uint8): ``ref(x) ~ other(x + f(x))``.
    Returns (H, W, 2) float32 (x, y)."""
    h, w = ref.shape
    f = max(h, w) / FLOW_MAX_SIDE
    if f > 1:
        sw, sh = max(8, round(w / f)), max(8, round(h / f))
        small = _flow(cv2.resize(ref, (sw, sh), interpolation=cv2.INTER_AREA),
                      cv2.resize(other, (sw, sh), interpolation=cv2.INTER_AREA))
        out = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        out[..., 0] *= w / sw
        out[..., 1] *= h / sh
        return out
    return _flow(ref, other)


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (x, y) of an (h, w) frame, made once per size and thread."""
    cache = getattr(_local, "grids", None)
    if cache is None:
        cache = _local.grids = {}
    if (h, w) not in cache:
        cache.clear()  # one size at a time: a video does not change size
        cache[(h, w)] = (np.broadcast_to(np.arange(w, dtype=np.float32), (h, w)),
                         np.broadcast_to(np.arange(h, dtype=np.float32)[:, None], (h, w)))
    return cache[(h, w)]


def warp(frame: np.ndarray, fl: np.ndarray) -> np.ndarray:
    """``frame`` sampled at ``x + fl(x)`` (bicubic, edges repeated): ``other`` brought onto ``ref``."""
    h, w = fl.shape[:2]
    gx, gy = _grid(h, w)
    out = cv2.remap(frame, gx + fl[..., 0], gy + fl[..., 1], interpolation=cv2.INTER_CUBIC,
                    borderMode=cv2.BORDER_REPLICATE)
    return np.clip(out, 0.0, 1.0, out=out)


def misalignment(rng: np.random.Generator, h: int, w: int, amplitude: float, cell: int = 8) -> np.ndarray:
    """A smooth random displacement field (H, W, 2) float32 whose RMS is ``amplitude`` pixels,
    varying over about ``cell`` pixels: the local error of a flow that follows the bulk of a scene
    but not its fine, independently moving texture (particles, water, leaves)."""
    gh, gw = max(2, -(-h // cell) + 1), max(2, -(-w // cell) + 1)
    coarse = rng.standard_normal((gh, gw, 2)).astype(np.float32)
    field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    rms = float(np.sqrt((field ** 2).sum(-1).mean())) or 1.0
    return field * (amplitude / rms)


def align_stacks(frames: np.ndarray, radius: int, centres: list[int] | None = None,
                 perturb=None) -> np.ndarray:
    """(T + 2r, H, W, 3) float32 frames -> (T, 2r + 1, H, W, 3) float32 stacks, each neighbour
    warped onto its stack's centre. ``centres`` picks which frames are centres (default: every
    frame with ``r`` neighbours on each side). ``perturb`` (training only) is called with each
    neighbour's flow and returns the flow to warp with: how training shows the network alignments
    that are wrong in places, so that it learns to check a neighbour against the centre before
    it trusts it."""
    n = frames.shape[0]
    if centres is None:
        centres = list(range(radius, n - radius))
    if not centres:
        raise ArgumentError(f"need at least {2 * radius + 1} frames, got {n}")
    lumas: dict[int, np.ndarray] = {}

    def y(i: int) -> np.ndarray:
        if i not in lumas:
            lumas[i] = luma8(frames[i])
        return lumas[i]

    out = np.empty((len(centres), 2 * radius + 1, *frames.shape[1:]), np.float32)
    for j, c in enumerate(centres):
        out[j, radius] = frames[c]
        for k in range(-radius, radius + 1):
            if k:
                fl = flow(y(c), y(c + k))
                out[j, radius + k] = warp(frames[c + k], perturb(fl) if perturb is not None else fl)
    return out
