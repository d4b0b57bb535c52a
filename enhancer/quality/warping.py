"""The warping error of Lai et al. 2018 ("Learning Blind Video Temporal Consistency", ECCV): how
much a video changes from one frame to the next along the true motion, where that motion can be
followed. Flicker, shimmering texture and dancing noise raise it; a picture that moves, even
fast, does not.

For each pair of consecutive frames (t-1, t) of a candidate ``O`` and its reference ``R`` (the clean
frames, which give the true motion):

1. ``f``, the reference's optical flow from frame t to frame t-1 (``R_t(x) ~ R_{t-1}(x + f(x))``),
   and ``b``, the one from t-1 to t: OpenCV Farneback with TecoGAN's parameters, the flow ``tof``
   uses (not the DIS flow that enhancer's temporal stage blends along, so the measure does not
   favour that stage's own estimate of the motion), on the gray frames at the size evaluate's
   other flow sees them (at most :data:`enhancer.quality.evaluate.ANALYSIS_PIXELS`), vectors then
   scaled to the frame's own pixels;
2. the non-occlusion mask ``M_t``, 1 where all of these hold:

   - forward-backward consistency, the test of Ruder et al. 2016 that Lai et al. make their
     occlusion masks with: ``|f(x) + b(x + f(x))|^2 <= 0.01 (|f(x)|^2 + |b(x + f(x))|^2) + 0.5``
     (in the flow's pixels; Ruder et al.'s further test of motion boundaries is not made: the
     match of the reference below leaves out what a wrong flow there would compare);
   - ``x + f(x)`` lies inside the frame (what comes in at an edge has no past);
   - the reference warps consistently: every channel of ``W(R_{t-1})(x)`` is within
     :data:`MATCH` (on 0..1) of ``R_t(x)``;

3. ``E_t = sum_x M_t(x) sum_c (O_t(x, c) - W(O_{t-1})(x, c))^2 / (3 sum_x M_t(x))``, with RGB in
   [0, 1] and ``W(O_{t-1})(x) = O_{t-1}(x + f(x))`` (bilinear, OpenCV's remap of the 8-bit frame
   at 1/32 pixel): the mean squared difference over the valid pixels and the three channels. A
   pair with no valid pixel (a scene cut) scores 0.

The value reported is ``1000 E_t`` (so 1.0 means a mean squared difference of 0.001, an RMS of
0.032 or 8 levels of 8-bit), one per pair of frames; a clip's is their mean. Lower is better.
Like PSNR it needs the reference. The reference's own value (``warping_error(R, R)``) is the
clip's own level: what the flow cannot follow and what the scene itself changes (light, water)
within :data:`MATCH`. A candidate smoother than the reference can score below it: the measure
rewards blur, so read it beside PSNR. A constant offset of the whole picture that every frame
shares leaves it unchanged (steady bias is not flicker); so does an error that moves with the
picture.
"""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

# OpenCV Farneback's parameters as TecoGAN's tOF uses them (enhancer.quality.evaluate.FARNEBACK)
FARNEBACK = (0.5, 3, 15, 3, 5, 1.2, 0)
FB_RELATIVE, FB_ABSOLUTE = 0.01, 0.5  # Ruder et al.'s forward-backward tolerance
MATCH = 0.05  # the warped reference must match the reference within this, every channel (0..1: 12.75 levels)
SCALE = 1000.0  # the value reported is E * SCALE


def farneback(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Flow from gray ``a`` to gray ``b`` (uint8): ``a(x) ~ b(x + f(x))``, (H, W, 2) float32."""
    return cv2.calcOpticalFlowFarneback(a, b, None, *FARNEBACK)


@lru_cache(maxsize=4)
def _grid(h: int, w: int) -> np.ndarray:
    """(H, W, 2) float32 pixel coordinates (x, y), made once per size (never written to)."""
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return np.dstack([gx, gy])


def flow_mask(f: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(H, W) bool: where flow ``f`` (t -> t-1) is forward-backward consistent with ``b``
    (t-1 -> t) and lands inside the frame."""
    h, w = f.shape[:2]
    where = _grid(h, w) + f
    back = cv2.remap(b, where, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    err = ((f + back) ** 2).sum(-1)
    ok = err <= FB_RELATIVE * ((f ** 2).sum(-1) + (back ** 2).sum(-1)) + FB_ABSOLUTE
    inside = (where[..., 0] >= 0) & (where[..., 0] <= w - 1) & (where[..., 1] >= 0) & (where[..., 1] <= h - 1)
    return ok & inside


def full_size_flow(f: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A flow of frames shrunk from ``size`` (width, height), as a flow of the frames at that size."""
    h, w = f.shape[:2]
    if (w, h) == tuple(size):
        return f
    out = cv2.resize(f, tuple(size), interpolation=cv2.INTER_LINEAR)
    out[..., 0] *= size[0] / w
    out[..., 1] *= size[1] / h
    return out


def warping_error(prev_c: np.ndarray, c: np.ndarray, prev_r: np.ndarray, r: np.ndarray,
                  gray_prev_r: np.ndarray | None = None, gray_r: np.ndarray | None = None,
                  b: np.ndarray | None = None, mask_out: list | None = None) -> float:
    """``1000 E_t`` of one pair of frames (module docstring): candidate frames ``prev_c``, ``c``
    and reference frames ``prev_r``, ``r`` (RGB uint8, one size). The flow is computed on
    ``gray_prev_r`` and ``gray_r`` where given (the reference's gray frames, possibly shrunk:
    evaluate's analysis size), else on the gray of ``prev_r`` and ``r``; ``b`` is their flow from
    t-1 to t where the caller has it already (tOF computes it). ``mask_out``, where given, gets
    the mask (for tests)."""
    if gray_r is None or gray_prev_r is None:
        gray_prev_r, gray_r = (cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (prev_r, r))
    f = farneback(gray_r, gray_prev_r)
    if b is None:
        b = farneback(gray_prev_r, gray_r)
    h, w = r.shape[:2]
    valid = flow_mask(f, b).astype(np.uint8)
    if valid.shape != (h, w):
        valid = cv2.resize(valid, (w, h), interpolation=cv2.INTER_NEAREST)
    where = _grid(h, w) + full_size_flow(f, (w, h))
    m1, m2 = cv2.convertMaps(where, None, cv2.CV_16SC2)  # one fixed-point map for both warps
    warped_r = cv2.remap(prev_r, m1, m2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    d = cv2.split(cv2.absdiff(warped_r, r))
    worst = cv2.max(cv2.max(d[0], d[1]), d[2])  # the channel that differs most (OpenCV: 10x numpy)
    valid &= worst <= round(MATCH * 255)
    if mask_out is not None:
        mask_out.append(valid.astype(bool))
    n = cv2.countNonZero(valid)
    if n == 0:
        return 0.0
    warped_c = cv2.remap(prev_c, m1, m2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    sq = cv2.norm(np.ascontiguousarray(warped_c), np.ascontiguousarray(c), cv2.NORM_L2SQR, valid)
    return float(sq / (3 * n) / (255.0 * 255.0) * SCALE)
