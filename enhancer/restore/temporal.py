"""The temporal-consistency stage for per-frame models.

A model that sees one frame at a time invents its detail afresh in every frame, so texture that
should stand still shimmers and noise the model kept dances. This stage gives each output frame
the steadiness of its neighbours: every neighbour within ``radius`` frames is warped onto it by
the optical flow of the *input* frames (upscaled to the output's size), and blended in where that
flow can be trusted:

- forward-backward consistency (Sundaram et al. 2010): following the flow to the neighbour and
  the neighbour's flow back must return to the same pixel, within a tolerance that grows with
  the motion; occlusions, disocclusions and failed matches do not;
- the input itself: the neighbour's input frame, warped by the same flow, must match this input
  frame; a scene cut, a flash or a fade gives a large difference and no blending.

Each neighbour's weight is ``strength`` times both confidences (each in 0..1, soft), and the
frame's own output keeps weight 1, so where no neighbour can be trusted the output is the model's
own frame. The blend reads the model's outputs of the frame's ``2 * radius`` neighbours, never
blended outputs, so every output frame depends on a bounded window of input frames and chunks,
parts and resumed runs give the same frames; the stage's ``margin`` tells the reader so.

The flows are OpenCV's DIS with the global-translation start that the aligned-fusion generator
uses (:func:`enhancer.models.align.flow`), on the luma of the input frames.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from enhancer.errors import ArgumentError
from enhancer.restore.restorer import Restorer
from enhancer.models.align import flow, luma8

# neighbours on each side (the --temporal default for the field's models), and the most: in
# restorer.py, so that reading the option imports no PyTorch (this module's flow does)
from enhancer.restore.restorer import TEMPORAL_MAX_RADIUS as MAX_RADIUS  # noqa: E402
from enhancer.restore.restorer import TEMPORAL_RADIUS as DEFAULT_RADIUS  # noqa: E402
DEFAULT_STRENGTH = 0.5  # a fully trusted neighbour's weight beside the frame's own 1
FB_RELATIVE, FB_ABSOLUTE = 0.01, 0.5  # forward-backward tolerance: 0.01 |motion|^2 + 0.5 px^2
PHOTOMETRIC = 0.04  # input difference (0..1, 3x3 mean) at which a neighbour's weight falls to 1/e
# host memory for the frames blended at once (each holds about BLEND_PER_PIXEL bytes an output
# pixel: float sums and weights, a warped neighbour, the upscaled flow and its sample map)
BLEND_BYTES = 512 << 20
BLEND_PER_PIXEL = 48


_GRIDS: dict[tuple[int, int], np.ndarray] = {}
_GRIDS_LOCK = threading.Lock()


def _workers() -> int:
    """Threads for the stage's flows and blends: the cores this process may use, at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


def _grid(h: int, w: int) -> np.ndarray:
    """(H, W, 2) float32 pixel coordinates (x, y), made once per size."""
    with _GRIDS_LOCK:
        if (h, w) not in _GRIDS:
            if len(_GRIDS) > 8:
                _GRIDS.clear()
            gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
            _GRIDS[(h, w)] = np.dstack([gx, gy])
        return _GRIDS[(h, w)]


def _sample(image: np.ndarray, fl: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """``image`` sampled at ``x + fl(x)``, edges repeated (integer images saturate, as they are)."""
    where = fl + _grid(*fl.shape[:2])
    return cv2.remap(image, where, None, interpolation=interpolation, borderMode=cv2.BORDER_REPLICATE)


def confidence(ref: np.ndarray, other: np.ndarray, fwd: np.ndarray, bwd: np.ndarray) -> np.ndarray:
    """How far the flow ``fwd`` from input frame ``ref`` to ``other`` ((H, W, 3) float32 in
    [0, 1]) can be trusted, per pixel, in 0..1; ``bwd`` is the flow from ``other`` back."""
    back = _sample(bwd, fwd)  # the return flow, read where the forward flow lands
    err = ((fwd + back) ** 2).sum(-1)
    tolerance = FB_RELATIVE * ((fwd ** 2).sum(-1) + (back ** 2).sum(-1)) + FB_ABSOLUTE
    consistent = np.exp(-err / tolerance)
    diff = np.abs(_sample(other, fwd) - ref).mean(-1)
    diff = cv2.blur(diff, (3, 3))
    matching = np.exp(-(diff / PHOTOMETRIC) ** 2)
    return (consistent * matching).astype(np.float32)


def upscale_flow(fl: np.ndarray, scale: int) -> np.ndarray:
    """A flow between input frames as a flow between output frames ``scale`` times larger."""
    if scale == 1:
        return fl
    h, w = fl.shape[:2]
    return cv2.resize(fl, (w * scale, h * scale), interpolation=cv2.INTER_LINEAR) * np.float32(scale)


class TemporalConsistency:
    """A :class:`~enhancer.restore.restorer.Restorer` around a per-frame one: ``inner`` on every
    frame of the window, then each core frame blended with its ``radius`` neighbours on each side
    as the module docstring says."""

    def __init__(self, inner: Restorer, radius: int = DEFAULT_RADIUS, strength: float = DEFAULT_STRENGTH):
        if inner.margin:
            raise ArgumentError(f"{inner.name} already reads {inner.margin} frames each side: the temporal stage "
                                "is for per-frame models")
        if isinstance(radius, bool) or not isinstance(radius, int) or not 1 <= radius <= MAX_RADIUS:
            raise ArgumentError(f"temporal radius must be 1 to {MAX_RADIUS} frames, not {radius!r}")
        if not 0 < strength <= 1:
            raise ArgumentError(f"temporal strength must be in (0, 1], not {strength!r}")
        self.inner = inner
        self.radius = radius
        self.strength = float(strength)
        self.name = inner.name
        self.scale = inner.scale
        self.margin = radius
        # a restorer that plans no chunk of its own (classical: 1) gets windows long enough that the
        # neighbours' flows and outputs are shared between frames
        self.chunk = inner.chunk if hasattr(inner, "chunk_for") else max(inner.chunk, 8)
        self.card = getattr(inner, "card", {})
        self.weights_sha256 = getattr(inner, "weights_sha256", None)
        self.model = getattr(inner, "model", None)
        # the model's outputs of the last window's final 2r frames, which open the next window
        self._carry: list[tuple[np.ndarray, np.ndarray]] = []

    def _own_bytes(self, height: int, width: int, chunk: int) -> int:
        """Host bytes this stage holds beside the model's: the model's outputs of the window, the
        frames being blended, and the flows and confidences at the input's size."""
        out = height * width * self.scale ** 2
        blends = min(BLEND_BYTES, _workers() * out * BLEND_PER_PIXEL)
        return (chunk + 2 * self.radius) * out * 3 + blends + 16 * height * width * 4

    def chunk_for(self, height: int, width: int, reserve: int = 0) -> int:
        fit = getattr(self.inner, "chunk_for", None)
        if fit is None:
            return self.chunk
        return fit(height, width, reserve=reserve + self._own_bytes(height, width, self.chunk))

    def _per_frame(self, images: np.ndarray) -> np.ndarray:
        """The inner model on every frame of the window, reusing its outputs of the frames that
        the previous window ended with (the same frames, checked pixel for pixel)."""
        reused = []
        for (inp, out), image in zip(self._carry, images):
            if not np.array_equal(inp, image):
                break
            reused.append(out)
        rest = self.inner.restore(images[len(reused):]) if len(reused) < len(images) else None
        outs = np.concatenate([np.stack(reused), rest]) if reused and rest is not None else \
            (np.stack(reused) if reused else rest)
        keep = min(2 * self.radius, len(images))
        self._carry = [(images[i].copy(), outs[i]) for i in range(len(images) - keep, len(images))]
        return outs

    def restore(self, images: np.ndarray) -> np.ndarray:
        """(T + 2r, H, W, 3) uint8|uint16 -> (T, sH, sW, 3), same dtype."""
        r = self.radius
        t = images.shape[0] - 2 * r
        if t < 1:
            raise ArgumentError(f"need at least {2 * r + 1} frames, got {images.shape[0]}")
        outs = self._per_frame(images)  # (T + 2r, sH, sW, 3), the input's dtype
        peak = np.float32(65535.0 if images.dtype == np.uint16 else 255.0)
        frames = images.astype(np.float32) / peak  # (T + 2r, H, W, 3)
        lumas = [luma8(f) for f in frames]
        pairs = sorted({p for c in range(r, r + t) for k in range(1, r + 1) for d in (k, -k)
                        for p in ((c, c + d), (c + d, c))})
        result = np.empty((t, *outs.shape[1:]), images.dtype)
        # OpenCV and numpy leave the GIL on the large arrays, so flows and frames go in parallel
        # (each DIS flow is computed afresh, so which thread makes it changes nothing), as many
        # frames at once as BLEND_BYTES holds
        with ThreadPoolExecutor(max_workers=_workers()) as pool:
            flows = dict(zip(pairs, pool.map(lambda p: flow(lumas[p[0]], lumas[p[1]]), pairs)))
        blenders = max(1, min(_workers(), BLEND_BYTES // (outs.shape[1] * outs.shape[2] * BLEND_PER_PIXEL)))

        def blend(j: int) -> None:
            result[j] = self._blend(j + r, outs, frames, flows, peak)

        with ThreadPoolExecutor(max_workers=blenders) as pool:
            list(pool.map(blend, range(t)))
        return result

    def _blend(self, c: int, outs: np.ndarray, frames: np.ndarray, flows: dict, peak: np.float32) -> np.ndarray:
        """Output frame ``c`` of the window: its model output and its neighbours' outputs warped
        onto it, each weighted by its confidence."""
        oh, ow = outs.shape[1:3]
        total = outs[c].astype(np.float32)  # in the frames' own levels (0..peak)
        weight_sum = np.ones((oh, ow), np.float32)
        term = np.empty(outs.shape[1:], np.float32)
        for k in range(-self.radius, self.radius + 1):
            if not k:
                continue
            fwd = flows[(c, c + k)]
            w = self.strength * confidence(frames[c], frames[c + k], fwd, flows[(c + k, c)])
            if self.scale > 1:
                w = cv2.resize(w, (ow, oh), interpolation=cv2.INTER_LINEAR)
            # warped in the integer levels it has (bicubic overshoot saturates there)
            warped = _sample(outs[c + k], upscale_flow(fwd, self.scale), cv2.INTER_CUBIC)
            np.multiply(warped, w[..., None], out=term)
            total += term
            weight_sum += w
        total /= weight_sum[..., None]
        return np.clip(total + 0.5, 0, peak, out=total)

    def describe(self) -> dict:
        return {**self.inner.describe(), "temporal": {"radius": self.radius, "strength": self.strength}}
