"""Side-by-side outputs people can look at: videos or stills of several versions of one clip.

Versions are time-aligned by timestamp (the first input sets the timeline), brought to the
largest size with nearest-neighbour scaling (so no version is flattered by a smoother filter),
labelled, and laid out side by side, as a split view or in a grid.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from enhancer.errors import ArgumentError, EnhancerError, OutputError, option
from enhancer.media.files import refuse_output_on_input
from enhancer.media.probe import probe
from enhancer.media.reader import Frame, FrameReader
from enhancer.media.segment import Segment
from enhancer.media.videoinfo import VideoInfo

MODES = ("side", "split", "grid")


@dataclass
class Crop:
    x: int
    y: int
    w: int
    h: int

    @classmethod
    def parse(cls, text: str) -> "Crop":
        try:
            x, y, w, h = (int(v) for v in text.split(","))
        except ValueError:
            raise ArgumentError(f"crop {text!r} is not x,y,w,h") from None
        if w <= 0 or h <= 0 or x < 0 or y < 0:
            raise ArgumentError(f"crop {text!r} must have a positive size inside the frame")
        return cls(x, y, w, h)


def _to8(img: np.ndarray) -> np.ndarray:
    return img if img.dtype == np.uint8 else (img.astype(np.float32) / 257 + 0.5).astype(np.uint8)


def _label(img: np.ndarray, text: str) -> None:
    scale = max(0.4, min(1.2, img.shape[1] / 700))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(img, (4, 4), (12 + tw, 12 + th + base), (0, 0, 0), -1)
    cv2.putText(img, text, (8, 8 + th), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)


def compose(images: list[np.ndarray], labels: list[str], mode: str = "side", crop: Crop | None = None) -> np.ndarray:
    """One composite RGB uint8 picture from several versions of the same frame."""
    if mode not in MODES:
        raise ArgumentError(f"mode must be one of {', '.join(MODES)}")
    th = max(i.shape[0] for i in images)
    tw = max(i.shape[1] for i in images)
    panels = []
    for img in images:
        img = _to8(img)
        if img.shape[:2] != (th, tw):
            img = cv2.resize(img, (tw, th), interpolation=cv2.INTER_NEAREST)
        if crop is not None:
            if crop.x + crop.w > tw or crop.y + crop.h > th:
                raise EnhancerError(f"crop {crop.x},{crop.y},{crop.w},{crop.h} falls outside the {tw}x{th} frame")
            img = img[crop.y:crop.y + crop.h, crop.x:crop.x + crop.w]
            if img.shape[1] < 320:  # enlarge small crops so they can be seen, still nearest-neighbour
                f = math.ceil(320 / img.shape[1])
                img = cv2.resize(img, (img.shape[1] * f, img.shape[0] * f), interpolation=cv2.INTER_NEAREST)
        panels.append(np.ascontiguousarray(img))
    h, w = panels[0].shape[:2]
    if mode == "split":
        out = panels[0].copy()
        n = len(panels)
        for k, p in enumerate(panels):
            x0, x1 = k * w // n, (k + 1) * w // n
            out[:, x0:x1] = p[:, x0:x1]
            if k:
                out[:, max(0, x0 - 1):x0 + 1] = 255
        for k, text in enumerate(labels):
            sub = out[:, k * w // n:(k + 1) * w // n]
            _label(sub, text)
        return out
    for p, text in zip(panels, labels):
        _label(p, text)
    if mode == "side":
        return np.concatenate(panels, axis=1)
    cols = math.ceil(math.sqrt(len(panels)))
    rows = math.ceil(len(panels) / cols)
    blank = np.zeros_like(panels[0])
    grid = [np.concatenate([panels[r * cols + c] if r * cols + c < len(panels) else blank for c in range(cols)],
                           axis=1) for r in range(rows)]
    return np.concatenate(grid, axis=0)


def _aligned(readers: list[FrameReader]) -> Iterator[list[Frame]]:
    """Frames of every input at each frame time of the first (the latest frame not after it),
    times counted from each input's own first frame."""
    its = [iter(r) for r in readers]
    current: list[Frame | None] = [None] * len(readers)
    pending: list[Frame | None] = [next(it, None) for it in its]
    origin = [f.time if f is not None else 0.0 for f in pending]
    for first in _chain(pending[0], its[0]):
        t = first.time - origin[0]
        row = [first]
        for k in range(1, len(readers)):
            while pending[k] is not None and pending[k].time - origin[k] <= t + 1e-6:
                current[k] = pending[k]
                pending[k] = next(its[k], None)
            if current[k] is None:  # this input starts later: show its first frame
                current[k] = pending[k]
            row.append(current[k])
        if any(f is None for f in row):
            return
        yield row


def default_labels(inputs: list[str]) -> list[str]:
    """Labels that tell the inputs apart: each file's name with its extension (``tree.avi``,
    ``tree.mkv``), with as many parent folders as it takes where names are the same
    (``a/clip.mp4``, ``b/clip.mp4``)."""
    parts = [Path(os.path.abspath(p)).parts[1:] or (p,) for p in inputs]
    depth = [1] * len(inputs)
    while True:
        labels = ["/".join(ps[-d:]) for ps, d in zip(parts, depth)]
        clash = {lab for lab in labels if labels.count(lab) > 1}
        grow = [k for k, lab in enumerate(labels) if lab in clash and depth[k] < len(parts[k])]
        if not grow:  # the same file given twice: its name, numbered
            return [f"{Path(lab).name} ({k + 1})" if lab in clash else lab for k, lab in enumerate(labels)]
        for k in grow:
            depth[k] += 1


def _chain(first: Frame | None, rest: Iterator[Frame]) -> Iterator[Frame]:
    if first is not None:
        yield first
    yield from rest


def _even(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    return img[: h // 2 * 2, : w // 2 * 2]


def compare(inputs: list[str], output: str, *, mode: str = "side", labels: list[str] | None = None,
            frame: int | None = None, crop: Crop | None = None, start: float | None = None,
            duration: float | None = None, progress: bool = True,
            starts: list[float | None] | None = None) -> Path:
    """Write a comparison video (.mp4/.mkv/.mov) or still (.png/.jpg) of ``inputs``. ``start``
    applies to every input unless ``starts`` gives one per input."""
    if len(inputs) < 2:
        raise ArgumentError("compare needs at least two inputs")
    if frame is not None and frame < 0:
        raise ArgumentError(f"{option('frame')} {frame}: frames count from 0")
    labels = list(labels or default_labels(inputs))
    if len(labels) != len(inputs):
        raise ArgumentError(f"{len(labels)} labels for {len(inputs)} inputs")
    refuse_output_on_input(output, inputs)
    out = Path(output)
    still = out.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif", ".tiff")
    if not still and output != "-":
        from enhancer.media.encode import container_of

        container_of(output, images=".png or .jpg for a still")  # before any work
    infos: list[VideoInfo] = [probe(p) for p in inputs]
    segments = [Segment(s, duration) for s in (starts if starts is not None else [start] * len(inputs))]
    readers = [FrameReader(i, segment=seg, deinterlace="off") for i, seg in zip(infos, segments)]
    for r in readers:
        r.start()
    try:
        if still:
            want = frame or 0
            for k, row in enumerate(_aligned(readers)):
                if k == want:
                    img = compose([f.image for f in row], labels, mode, crop)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    if not cv2.imwrite(str(out), img[..., ::-1]):
                        raise OutputError("cannot write image", path=str(out))
                    return out
            raise EnhancerError(f"frame {want} is past the end of the shortest input", path=inputs[0])
        from enhancer.media.encode import EncodeOptions
        from enhancer.media.muxer import Muxer
        from enhancer.progress import bar

        with Muxer(str(out), infos[0], EncodeOptions(codec="h264", crf=16, preset="medium"), readers[0].colour,
                   segment=segments[0]) as muxer, \
                bar(total=infos[0].frame_count, desc="compare", unit="frame", enabled=progress) as b:
            for row in _aligned(readers):
                img = _even(compose([f.image for f in row], labels, mode, crop))
                muxer.write(img, row[0].pts, row[0].time_base)
                b.update(1)
        return out
    finally:
        for r in readers:
            r.close()
