"""Spans: one file made by several workers at once (a cluster's per-part tasks).

A span is the frames whose times lie in [lo, hi) on the source's clock. Each is made on its own
(resumably, in parts of its own) with the real frames on either side as the model's context, so
the joined spans are the frames one process would have made; :func:`merge_spans` then hands them
to the ordinary join of parts (:mod:`enhancer.pipeline.parts`).
"""
from __future__ import annotations

import json
import math
import os
import shutil
from fractions import Fraction
from pathlib import Path

from enhancer.errors import InputError, OutputError, option
from enhancer.restore.restorer import Restorer
from enhancer.media.encode import EncodeOptions
from enhancer.media.videoinfo import VideoInfo
from enhancer.media.reader import Frame, FrameReader
from enhancer.media.segment import Segment
from enhancer.media.temps import atomic_write
from enhancer.pipeline.budget import _chunk, fit_encoder
from enhancer.pipeline.engine import EnhanceOptions, _pump, alpha_frames, planar_frames, _stop, _Writer
from enhancer.pipeline.notes import _unique
from enhancer.pipeline.parts import (_PART_KEYS, _PART_NAME, _PARTS_LAYOUT, SPLICE_PREROLL, _load_parts, _Parts,
                                     parts_folder)
from enhancer.progress import bar

SPAN_PREROLL = 2.0  # seconds a span is read from before its first frame (the model's context)


def span_folder(output: str | Path, index: int) -> Path:
    return parts_folder(output) / "spans" / f"span_{index:04d}"


def _span_key(key: str, index: int, lo: Fraction, hi: Fraction | None) -> str:
    return f"{key}#span{index}:{lo}:{hi}"


class _SpanStream:
    """The frames a span's model run needs from a reader: up to ``margin`` frames before the first
    one to make (context only: :meth:`open` returns their count), the frames to make (after
    ``after``, or from ``lo``), and ``margin`` frames at or after ``hi`` (context for the last
    ones; made, then dropped by :class:`_Before`)."""

    def __init__(self, reader: FrameReader, lo: Fraction, hi: Fraction | None, after: Fraction | None,
                 margin: int):
        self.reader, self.lo, self.hi, self.after, self.margin = reader, lo, hi, after, margin
        self.saw_before = False  # a frame before the first to make came (else the seek may have landed late)
        self.context_short = False  # fewer context frames than the margin before the first to make
        self.empty = False  # nothing of the span in the file (its container outlasts its picture)

    def open(self):
        """(frames, context count)."""
        it = iter(self.reader)
        context: list[Frame] = []
        try:
            for fr in it:
                t = fr.pts * fr.time_base
                if (t <= self.after) if self.after is not None else (t < self.lo):
                    self.saw_before = True
                    context = (context + [fr])[-self.margin:] if self.margin else []
                    continue
                if self.hi is not None and t >= self.hi:  # nothing of this span is left
                    break
                self.context_short = len(context) < self.margin
                return self._rest(context + [fr], it), len(context)
        except InputError:
            # a seek past the last frame decodes nothing, which the reader reports as an error
            if self.reader.frames_read or self.reader.stopped:
                raise
        self.empty = True
        return iter([]), 0

    def _rest(self, head: list[Frame], it):
        yield from head
        past = 0
        for fr in it:
            if self.hi is not None and fr.pts * fr.time_base >= self.hi:
                past += 1
                if past > self.margin:
                    break
            yield fr


class _Before:
    """A part writer that keeps only frames before ``hi`` (the span's trailing context is made,
    since the frames before it need it, but belongs to the next span)."""

    def __init__(self, parts: _Parts, hi: Fraction | None):
        self.parts, self.hi = parts, hi

    def write(self, image, pts: int, time_base: Fraction) -> None:
        if self.hi is None or pts * time_base < self.hi:
            self.parts.write(image, pts, time_base)


def _span_done(folder: Path, skey: str) -> dict | None:
    """The summary of a finished span made with this key, if its parts are all still there."""
    try:
        summary = json.loads((folder / "complete.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict) or summary.get("key") != skey or not isinstance(summary.get("parts"), list):
        return None
    if not all(isinstance(p, dict) and (folder / str(p.get("file"))).is_file() for p in summary["parts"]):
        return None
    return summary


def enhance_span(info: VideoInfo, output: str, restorer: Restorer, encode: EncodeOptions, opts: EnhanceOptions,
                 key: str, index: int, lo: Fraction, hi: Fraction | None) -> dict:
    """Make span ``index`` (frames in [lo, hi) of the source's clock) of ``output`` into parts in
    its own folder; a span finished before with the same ``key`` (the recipe's) is not made
    again, one begun before continues after its last finished part. Returns its summary: frames,
    parts, warnings, and the decoder's damage lines and why it stopped, if it did."""
    folder = span_folder(output, index)
    skey = _span_key(key, index, lo, hi)
    summary = _span_done(folder, skey)
    if summary is not None:
        return summary
    (folder / "complete.json").unlink(missing_ok=True)
    done, _ = _load_parts(folder, skey) if folder.exists() else ([], None)
    folder.mkdir(parents=True, exist_ok=True)
    encode = fit_encoder(info, restorer.scale, encode)
    chunk = _chunk(restorer, info, opts, encode)
    after = Fraction(done[-1]["last"]) if done else None
    fps = float(info.fps) if info.fps else 25.0
    for preroll in (max(SPAN_PREROLL, (restorer.margin + 3) / fps), SPLICE_PREROLL, None):
        if preroll is None:
            raise InputError("seeking in this file lands too late to split it into parts", path=info.path,
                             hint=f"remux it first (ffmpeg -i IN -c copy OUT.mkv), or give {option('ray_split')} 0")
        seek = max(0.0, float(after if after is not None else lo) - (info.start_time or 0.0) - preroll)
        reader = FrameReader(info, deinterlace=opts.deinterlace, segment=Segment(seek or None, None),
                             buffer=max(8, chunk + 2 * restorer.margin), planar=planar_frames(restorer, opts),
                             alpha=alpha_frames(info, encode, opts))
        stream = _SpanStream(reader, lo, hi, after, restorer.margin)
        parts = _Parts(folder, info, encode, reader.colour, opts, skey, done, label=output)
        writer = _Writer(_Before(parts, hi), depth=max(4, chunk))
        ok = False
        try:
            reader.start()
            writer.start()
            frames, skip = stream.open()
            # a seek that landed after the span's start (MPEG-TS does): the first frames, or the
            # model's context before them, are missing; read again from further back
            late = seek > 0 and not stream.empty and (not stream.saw_before or stream.context_short)
            if not late:
                with bar(total=None, enabled=False) as pbar:
                    _pump(frames, skip, restorer, writer, chunk, pbar)
                parts.close_part()
                ok = True
        finally:
            if not ok:
                _stop(writer, parts.abort)
            reader.close()
        if ok:
            break
    summary = {"key": skey, "index": index, "frames": sum(p["frames"] for p in parts.done), "parts": parts.done,
               "warnings": _unique(reader.warnings + parts.warnings), "damage": reader.damage,
               "stopped": reader.stopped, "time_base": str(reader.time_base) if reader.time_base else None}
    atomic_write(folder / "complete.json", json.dumps(summary, indent=1), hidden=False)
    return summary


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:  # a filesystem without hard links
        shutil.copy2(src, dst)


def merge_spans(output: str | Path, key: str, spans: list[tuple[Fraction, Fraction | None]]) -> int:
    """Hand the spans of ``output`` made with the recipe ``key`` to the ordinary join: the parts
    of the finished spans, in order from the first up to the first span that is missing (not
    finished, or made with other settings: another precision on another kind of node), become the
    output's parts (``part_00000.nut`` ...) under a manifest with that key, so that
    :func:`~enhancer.pipeline.enhance.enhance_video` makes only what is left after them (nothing,
    when every span is there), checking every part on the way. The parts are linked (or copied),
    never moved, and the spans are removed only once the manifest is written, so a merge cut short
    is simply done again. For the caller that holds the output's lock. Returns the frames handed
    over."""
    folder = parts_folder(output)
    merged: list[dict] = []
    sources: list[Path] = []
    warnings: list[str] = []
    damage: list[str] = []
    stopped = None
    time_base = None
    complete = True
    for index, (lo, hi) in enumerate(spans):
        sfolder = span_folder(output, index)
        summary = _span_done(sfolder, _span_key(key, index, lo, hi))
        if summary is None:
            complete = False
            break
        for part in summary["parts"]:
            sources.append(sfolder / part["file"])
            merged.append({k: part[k] for k in _PART_KEYS} | {"file": _PART_NAME.format(len(merged))})
        warnings += summary.get("warnings") or []
        damage += summary.get("damage") or []
        time_base = time_base or summary.get("time_base")
        if summary.get("stopped"):  # decoding stopped in this span: one process would have stopped here too
            stopped = summary["stopped"]
            break
    if not merged:
        return 0
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for child in folder.iterdir():  # an earlier run's own parts and manifest give way to the spans'
            if child.name != "spans":
                shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)
        for src, part in zip(sources, merged):
            _link_or_copy(src, folder / part["file"])
        atomic_write(folder / "manifest.json",
                     json.dumps({"key": key, "layout": _PARTS_LAYOUT, "parts": merged,
                                 "merged": {"complete": complete or stopped is not None, "damage": damage[:3],
                                            "stopped": stopped, "warnings": _unique(warnings),
                                            "time_base": time_base}}, indent=1), hidden=False)
    except OSError as e:
        raise OutputError(f"cannot gather the parts the cluster made: {e.strerror or e}", path=str(output),
                          hint="run the same command again") from None
    shutil.rmtree(folder / "spans", ignore_errors=True)
    return sum(p["frames"] for p in merged)


def plan_spans(info: VideoInfo, seconds: float) -> list[tuple[Fraction, Fraction | None]]:
    """[lo, hi) spans of ``seconds`` each on the source's clock, the last open-ended."""
    from enhancer.media.segment import _exact

    origin = _exact(info.start_time)
    step = _exact(seconds)
    n = max(1, math.ceil((info.duration or 0) / seconds))
    return [(origin + k * step, origin + (k + 1) * step if k < n - 1 else None) for k in range(n)]
