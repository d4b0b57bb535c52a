"""Run a restorer over a stream of frames: decode, compute and encode overlap (the pump).

The reader decodes on its own thread into a bounded queue, the restorer runs on the calling
thread, and a writer thread feeds the muxer from another bounded queue. While the restorer works
on chunk k, chunk k+1 is being decoded and chunk k-1 encoded; memory holds a few chunks, whatever
the length of the video. Here too: what a run is asked (:class:`EnhanceOptions`) and what it
gives (:class:`EnhanceResult`). :func:`enhancer.pipeline.enhance.enhance_video` runs the pump over
one whole video, in resumable parts (:mod:`enhancer.pipeline.parts`) or in one pass.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from enhancer.errors import ModelError, OutputError
from enhancer.restore.restorer import Restorer
from enhancer.media.muxer import Muxer
from enhancer.media.reader import windows
from enhancer.media.segment import Segment
from enhancer.progress import settle

_END = object()


@dataclass
class EnhanceOptions:
    deinterlace: str = "auto"  # auto | on | off
    start: float | None = None  # seconds into the source
    duration: float | None = None  # seconds to process
    chunk: int | None = None  # core frames per restorer call (None: the restorer's own choice)
    progress: bool = True
    preview: float | None = None  # seconds: write only a before/after comparison of this much
    part_seconds: float = 120.0  # a new part is begun after this much processing, so a kill loses little
    fps: Fraction | None = None  # frame rate of image-sequence inputs (None: their fps.txt, else 25)
    splice: bool = False  # write the whole file, only the segment enhanced (see enhancer.pipeline.splice)

    @property
    def segment(self) -> Segment:
        return Segment(self.start, self.duration)


def planar_frames(restorer: Restorer, opts: EnhanceOptions) -> bool:
    """Whether frames may stay in the source's own YUV planes (:mod:`enhancer.media.planar`): the
    restorer passes them through untouched (``passthrough``: a classical method at scale 1), and
    no preview or splice looks at the picture."""
    return bool(getattr(restorer, "passthrough", False)) and not opts.preview and not opts.splice


def alpha_frames(info, encode, opts: EnhanceOptions) -> bool:
    """Whether frames carry the source's alpha plane (RGBA) through to the output: the source has
    one, the output can hold it (:func:`~enhancer.media.plan.can_hold_alpha`), and no preview or
    splice (which show or put back the picture only) is asked for. The model sees the picture; the
    alpha plane is resized beside it (:func:`_with_alpha`)."""
    from enhancer.media.pixfmt import has_alpha
    from enhancer.media.plan import can_hold_alpha

    return has_alpha(info.pix_fmt) and can_hold_alpha(encode) and not opts.preview and not opts.splice


def _with_alpha(out: np.ndarray, alpha: list[np.ndarray]) -> np.ndarray:
    """The restorer's (T, sH, sW, 3) output with each core frame's alpha plane (H, W) beside it,
    resized to the output's size (Lanczos; a matte's edge stays as sharp as the picture's):
    (T, sH, sW, 4). Frame by frame, so chunks and tiles cannot change it."""
    import cv2

    h, w = out.shape[1:3]
    planes = [a if a.shape == (h, w) else cv2.resize(a, (w, h), interpolation=cv2.INTER_LANCZOS4) for a in alpha]
    return np.concatenate([out, np.stack(planes)[..., None].astype(out.dtype)], axis=3)


@dataclass
class EnhanceResult:
    output: str | None
    frames: int
    seconds: float
    warnings: list[str] = field(default_factory=list)
    incomplete: str | None = None  # why the input gave fewer frames than its container announced
    resumed: int = 0  # of ``frames``, those an earlier run had already encoded

    @property
    def fps(self) -> float:
        """Frames made per second in this run."""
        return (self.frames - self.resumed) / self.seconds if self.seconds > 0 else 0.0


class _Writer(threading.Thread):
    """Feeds the muxer from a bounded queue; keeps the first error for the main thread."""

    def __init__(self, muxer: Muxer, depth: int):
        super().__init__(name="encode", daemon=True)
        self.muxer = muxer
        self.q: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        while True:
            item = self.q.get()
            if item is _END or self.stop.is_set():
                return
            if self.error is not None:
                continue  # drain so the producer never blocks
            image, pts, tb = item
            try:
                self.muxer.write(image, pts, tb)
            except BaseException as e:
                self.error = e

    def put(self, item) -> None:
        while True:
            if self.error is not None:
                raise self.error
            try:
                self.q.put(item, timeout=0.2)
                return
            except queue.Full:
                if not self.is_alive():
                    raise OutputError("the encoder thread ended unexpectedly") from None


def _pump(stream, skip: int, restorer: Restorer, writer: _Writer, chunk: int, pbar) -> int:
    """Windows from ``stream`` through the restorer into the writer thread; returns the frames
    produced once the writer has encoded them all."""
    frames = 0
    for window in windows(stream, restorer.margin, chunk, skip=skip):
        images = window.images  # one frame (a classical method's chunk) is a view, not a copy
        alpha = None
        if images[0].ndim == 3 and images[0].shape[2] == 4:  # RGBA: the model sees the picture only
            alpha = [f.image[..., 3] for f in window.core]
            images = [np.ascontiguousarray(im[..., :3]) for im in images]
        out = restorer.restore(images[0][None] if len(images) == 1 else np.stack(images))
        if out.shape[0] != len(window.core):
            raise ModelError(f"the model {restorer.name} returned {out.shape[0]} frames for {len(window.core)}")
        if alpha is not None:
            out = _with_alpha(out, alpha)
        for frame, image in zip(window.core, out):
            writer.put((image, frame.pts, frame.time_base))
        frames += len(window.core)
        pbar.update(len(window.core))
    if not pbar.disable:  # the encoder's last frames, the join and the checks still count in the rate
        pbar.set_postfix_str("finishing")
    writer.put(_END)
    writer.join()
    if writer.error is not None:
        raise writer.error
    return frames


def finished(pbar) -> None:
    """The file is complete: the bar's last rate counts the same frames over the same seconds as
    the result (and the ``done`` line), and its total is what decoded."""
    if not pbar.disable:
        pbar.set_postfix_str("")
    settle(pbar)


def _stop(writer: _Writer, abort) -> None:
    """After a failure: stop the writer thread and the encoder without waiting for either."""
    writer.stop.set()
    try:
        writer.q.put_nowait(_END)
    except queue.Full:
        pass
    abort()  # kills ffmpeg, so a writer blocked on its pipe returns
    writer.join(timeout=10)
    abort()  # in case the writer started a new encoder meanwhile
