"""Run a restorer over one whole video: decode, compute and encode overlap.

The reader decodes on its own thread into a bounded queue, the restorer runs on the calling
thread, and a writer thread feeds the muxer from another bounded queue. While the restorer works
on chunk k, chunk k+1 is being decoded and chunk k-1 encoded; memory holds a few chunks, whatever
the length of the video.
"""
from __future__ import annotations

import dataclasses
import json
import os
import queue
import shutil
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from enhancer.infer.restorer import Restorer
from enhancer.io.muxer import IMAGE_CODECS, EncodeOptions, Muxer, assemble
from enhancer.io.probe import VideoInfo
from enhancer.io.reader import Frame, FrameReader, windows
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
    segment_seconds: float = 60.0  # long outputs are encoded in parts this long, so a rerun resumes


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


def _pump(stream, skip: int, restorer: Restorer, writer: _Writer, chunk: int, pbar) -> int:
    """Windows from ``stream`` through the restorer into the writer thread; returns the frames
    produced once the writer has encoded them all."""
    frames = 0
    for window in windows(stream, restorer.margin, chunk, skip=skip):
        out = restorer.restore(np.stack(window.images))
        if out.shape[0] != len(window.core):
            raise RuntimeError(f"restorer {restorer.name} returned {out.shape[0]} frames for {len(window.core)}")
        for frame, image in zip(window.core, out):
            writer.put((image, frame.pts, frame.time_base))
        frames += len(window.core)
        pbar.update(len(window.core))
    writer.put(_END)
    writer.join()
    if writer.error is not None:
        raise writer.error
    return frames


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


def _expected_frames(info: VideoInfo, opts: EnhanceOptions) -> int | None:
    expected = info.frame_count
    if expected and (opts.start or opts.duration) and info.fps:
        span = opts.duration or max(0.0, (info.duration or 0) - (opts.start or 0))
        expected = max(1, int(round(span * float(info.fps))))
    return expected


def _segmentable(info: VideoInfo, output: str, encode: EncodeOptions, opts: EnhanceOptions) -> int | None:
    """Frames per part when this output is long enough to be encoded in resumable parts."""
    if output == "-" or encode.codec in IMAGE_CODECS or info.image_sequence or opts.preview:
        return None
    if Path(output).suffix.lower() not in (".mp4", ".m4v", ".mov", ".mkv") or not info.fps:
        return None
    per_part = max(1, int(round(opts.segment_seconds * float(info.fps))))
    expected = _expected_frames(info, opts) or 0
    return per_part if expected > 2 * per_part else None


def enhance_video(info: VideoInfo, output: str, restorer: Restorer, encode: EncodeOptions,
                  opts: EnhanceOptions | None = None, *, desc: str | None = None) -> EnhanceResult:
    """Enhance ``info.path`` into ``output``. Raises an :class:`~enhancer.errors.EnhancerError`
    on failure, after removing any partial output. Long outputs are encoded in parts kept in a
    hidden folder beside the output: an interrupted run leaves them, and the next run on the
    same input and options continues after the last finished part."""
    opts = opts or EnhanceOptions()
    per_part = _segmentable(info, output, encode, opts)
    if per_part:
        return _enhance_in_parts(info, output, restorer, encode, opts, per_part, desc)
    t0 = time.perf_counter()
    chunk = max(1, opts.chunk or restorer.chunk)
    reader = FrameReader(info, deinterlace=opts.deinterlace, start=opts.start, duration=opts.duration,
                         buffer=max(8, chunk + 2 * restorer.margin))
    muxer = Muxer(output, info, encode, reader.colour, segment_start=opts.start, segment_duration=opts.duration)
    writer = _Writer(muxer, depth=max(4, chunk))
    expected = _expected_frames(info, opts)
    ok = False
    try:
        reader.start()
        writer.start()
        with bar(total=expected, desc=desc, unit="frame", enabled=opts.progress) as pbar:
            frames = _pump(iter(reader), 0, restorer, writer, chunk, pbar)
        final = muxer.close()
        ok = True
    finally:
        if not ok:
            _stop(writer, muxer.abort)
        reader.close()
    if muxer.frames != frames:
        raise RuntimeError(f"encoded {muxer.frames} frames but produced {frames}")
    return EnhanceResult(output=str(final) if final else None, frames=frames, seconds=time.perf_counter() - t0,
                         warnings=reader.warnings + muxer.warnings)


# ---- long outputs in resumable parts --------------------------------------------------------
def _run_key(info: VideoInfo, restorer: Restorer, encode: EncodeOptions, opts: EnhanceOptions, per_part: int) -> dict:
    """Everything the parts depend on: a part made under another key is never reused."""
    st = os.stat(info.path)
    desc = {k: v for k, v in restorer.describe().items() if k in ("model", "kind", "scale", "precision")}
    return {"source": [os.path.abspath(info.path), st.st_size, st.st_mtime_ns], "restorer": desc,
            "encode": dataclasses.asdict(encode), "deinterlace": opts.deinterlace, "start": opts.start,
            "duration": opts.duration, "per_part": per_part, "margin": restorer.margin}


class _Parts:
    """Writes frames into numbered parts (NUT files, each a closed encode starting on a key
    frame) and records each finished part in ``manifest.json``."""

    def __init__(self, folder: Path, info: VideoInfo, encode: EncodeOptions, colour, opts: EnhanceOptions,
                 per_part: int, key: dict, done: list[dict]):
        self.folder, self.info, self.colour, self.opts = folder, info, colour, opts
        self.encode = dataclasses.replace(encode, audio="none", subtitles=False)
        self.per_part, self.key, self.done = per_part, key, list(done)
        self.current: Muxer | None = None
        self.first: Fraction | None = None
        self.last: Fraction | None = None
        self.count = 0
        self.frames = 0
        self.warnings: list[str] = []

    def write(self, image, pts: int, time_base: Fraction) -> None:
        if self.current is None:
            path = self.folder / f"part_{len(self.done):05d}.nut"
            self.current = Muxer(str(path), self.info, self.encode, self.colour, segment_start=self.opts.start,
                                 video_only=True)
            self.first, self.count = pts * time_base, 0
        self.current.write(image, pts, time_base)
        self.last = pts * time_base
        self.count += 1
        self.frames += 1
        if self.count >= self.per_part:
            self.close_part()

    def close_part(self) -> None:
        if self.current is None:
            return
        path = self.current.close()
        self.warnings = self.current.warnings
        self.done.append({"file": path.name, "frames": self.count, "first": str(self.first), "last": str(self.last)})
        self.current = None
        self.save()

    def save(self) -> None:
        tmp = self.folder / "manifest.json.tmp"
        tmp.write_text(json.dumps({"key": self.key, "parts": self.done}, indent=1))
        os.replace(tmp, self.folder / "manifest.json")

    def abort(self) -> None:
        if self.current is not None:
            self.current.abort()
            self.current = None


def _load_parts(folder: Path, key: dict) -> list[dict]:
    """Finished parts of an earlier run with the same key (else start afresh)."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        manifest = None
    if manifest and manifest.get("key") == key and all((folder / p["file"]).is_file() for p in manifest["parts"]):
        return manifest["parts"]
    shutil.rmtree(folder, ignore_errors=True)
    return []


def _resumed_frames(reader: FrameReader, last: Fraction, margin: int, done_frames: int):
    """Frames after ``last``, preceded by up to ``margin`` frames at or before it as context.
    Returns (iterator, context count) or None when the seek landed too late to give the context."""
    it = iter(reader)
    context: list[Frame] = []
    for fr in it:
        if fr.pts * fr.time_base <= last:
            context.append(fr)
            context = context[-margin:] if margin else []
            continue
        if len(context) < min(margin, done_frames):
            return None

        def chain(first=fr, ctx=context):
            yield from ctx
            yield first
            yield from it

        return chain(), len(context)
    return iter([]), 0  # nothing after the last finished part: only the join is left


def _enhance_in_parts(info: VideoInfo, output: str, restorer: Restorer, encode: EncodeOptions,
                      opts: EnhanceOptions, per_part: int, desc: str | None) -> EnhanceResult:
    t0 = time.perf_counter()
    final = Path(output)
    folder = final.with_name(f".{final.name}.parts")
    key = _run_key(info, restorer, encode, opts, per_part)
    done = _load_parts(folder, key)
    folder.mkdir(parents=True, exist_ok=True)
    chunk = max(1, opts.chunk or restorer.chunk)
    done_frames = sum(p["frames"] for p in done)
    start, duration = opts.start, opts.duration
    if done:
        last = Fraction(done[-1]["last"])
        fps = float(info.fps)
        seek = float(last) - (info.start_time or 0) - (restorer.margin + 3) / fps
        if seek > (opts.start or 0):
            if opts.duration:
                duration = (opts.start or 0) + opts.duration - seek
            start = seek
    reader = FrameReader(info, deinterlace=opts.deinterlace, start=start, duration=duration,
                         buffer=max(8, chunk + 2 * restorer.margin))
    parts = _Parts(folder, info, encode, reader.colour, opts, per_part, key, done)
    writer = _Writer(parts, depth=max(4, chunk))
    expected = _expected_frames(info, opts)
    frames = done_frames
    ok = False
    interrupted = False
    try:
        reader.start()
        writer.start()
        if done:
            resumed = _resumed_frames(reader, Fraction(done[-1]["last"]), restorer.margin, done_frames)
            if resumed is None:  # could not find the context again: start this file over
                reader.close()
                shutil.rmtree(folder, ignore_errors=True)
                return _enhance_in_parts(info, output, restorer, encode, opts, per_part, desc)
            stream, skip = resumed
        else:
            stream, skip = iter(reader), 0
        with bar(total=expected, desc=desc, unit="frame", enabled=opts.progress) as pbar:
            pbar.update(done_frames)
            frames += _pump(stream, skip, restorer, writer, chunk, pbar)
        parts.close_part()
        origin = Fraction(info.start_time or 0).limit_denominator(1_000_000) + \
            Fraction(opts.start or 0).limit_denominator(1_000_000)
        starts = [Fraction(p["first"]) - origin for p in parts.done]
        warnings = assemble([folder / p["file"] for p in parts.done], starts, final, info, encode, reader.colour,
                            reader.time_base or Fraction(1, 1000), segment_start=opts.start,
                            segment_duration=opts.duration)
        shutil.rmtree(folder, ignore_errors=True)
        ok = True
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        if not ok:
            _stop(writer, parts.abort)
            if not interrupted:
                shutil.rmtree(folder, ignore_errors=True)
        reader.close()
    notes = [f"resumed: {done_frames} frames were already encoded by an earlier run"] if done_frames else []
    return EnhanceResult(output=str(final), frames=frames, seconds=time.perf_counter() - t0,
                         warnings=notes + reader.warnings + parts.warnings + warnings)
