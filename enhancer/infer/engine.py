"""Run a restorer over one whole video: decode, compute and encode overlap.

The reader decodes on its own thread into a bounded queue, the restorer runs on the calling
thread, and a writer thread feeds the muxer from another bounded queue. While the restorer works
on chunk k, chunk k+1 is being decoded and chunk k-1 encoded; memory holds a few chunks, whatever
the length of the video.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from enhancer.infer.restorer import Restorer
from enhancer.io.muxer import EncodeOptions, Muxer
from enhancer.io.probe import VideoInfo
from enhancer.io.reader import FrameReader, windows
from enhancer.progress import bar

_END = object()


@dataclass
class EnhanceOptions:
    deinterlace: str = "auto"  # auto | on | off
    start: float | None = None  # seconds into the source
    duration: float | None = None  # seconds to process
    chunk: int | None = None  # core frames per restorer call (None: the restorer's own choice)
    progress: bool = True
    preview: float | None = None  # seconds: write only a before/after comparison of this much


@dataclass
class EnhanceResult:
    output: str | None
    frames: int
    seconds: float
    warnings: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


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
                    raise RuntimeError("encoder thread ended unexpectedly") from None


def enhance_video(info: VideoInfo, output: str, restorer: Restorer, encode: EncodeOptions,
                  opts: EnhanceOptions | None = None, *, desc: str | None = None) -> EnhanceResult:
    """Enhance ``info.path`` into ``output``. Raises an :class:`~enhancer.errors.EnhancerError`
    on failure, after removing any partial output."""
    opts = opts or EnhanceOptions()
    t0 = time.perf_counter()
    chunk = max(1, opts.chunk or restorer.chunk)
    reader = FrameReader(info, deinterlace=opts.deinterlace, start=opts.start, duration=opts.duration,
                         buffer=max(8, chunk + 2 * restorer.margin))
    muxer = Muxer(output, info, encode, reader.colour, segment_start=opts.start, segment_duration=opts.duration)
    writer = _Writer(muxer, depth=max(4, chunk))
    expected = info.frame_count
    if expected and (opts.start or opts.duration) and info.fps:
        span = opts.duration or max(0.0, (info.duration or 0) - (opts.start or 0))
        expected = max(1, int(round(span * float(info.fps))))
    frames = 0
    ok = False
    try:
        reader.start()
        writer.start()
        with bar(total=expected, desc=desc, unit="frame", enabled=opts.progress) as pbar:
            for window in windows(iter(reader), restorer.margin, chunk):
                stacked = np.stack(window.images)
                out = restorer.restore(stacked)
                if out.shape[0] != len(window.core):
                    raise RuntimeError(f"restorer {restorer.name} returned {out.shape[0]} frames "
                                       f"for {len(window.core)}")
                for frame, image in zip(window.core, out):
                    writer.put((image, frame.pts, frame.time_base))
                frames += len(window.core)
                pbar.update(len(window.core))
        writer.put(_END)
        writer.join()
        if writer.error is not None:
            raise writer.error
        final = muxer.close()
        ok = True
    finally:
        if not ok:
            writer.stop.set()
            try:
                writer.q.put_nowait(_END)
            except queue.Full:
                pass
            muxer.abort()  # kills ffmpeg, so a writer blocked on its pipe returns
            writer.join(timeout=10)
            muxer.abort()  # in case the writer started it meanwhile
        reader.close()
    if muxer.frames != frames:
        raise RuntimeError(f"encoded {muxer.frames} frames but produced {frames}")
    return EnhanceResult(output=str(final) if final else None, frames=frames, seconds=time.perf_counter() - t0,
                         warnings=reader.warnings + muxer.warnings)
