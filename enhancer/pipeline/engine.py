"""Run a restorer over one whole video: decode, compute and encode overlap.

The reader decodes on its own thread into a bounded queue, the restorer runs on the calling
thread, and a writer thread feeds the muxer from another bounded queue. While the restorer works
on chunk k, chunk k+1 is being decoded and chunk k-1 encoded; memory holds a few chunks, whatever
the length of the video.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import queue
import shutil
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from enhancer.errors import EnhancerError, InputError, ModelError, OutputError, UsageError
from enhancer.restore.restorer import Restorer
from enhancer.media.encode import IMAGE_CODECS, EncodeOptions
from enhancer.media.geometry import check_frame_size
from enhancer.media.join import assemble, short_join
from enhancer.media.muxer import PART_NAME, Encoder, Muxer
from enhancer.media.probe import count_frames
from enhancer.media.reader import Frame, FrameReader, windows
from enhancer.media.segment import Segment
from enhancer.media.temps import hidden_sibling, sweep, temp_path_for
from enhancer.media.videoinfo import VideoInfo
from enhancer.progress import bar, settle

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
        out = restorer.restore(np.stack(window.images))
        if out.shape[0] != len(window.core):
            raise ModelError(f"the model {restorer.name} returned {out.shape[0]} frames for {len(window.core)}")
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


def _expected_frames(info: VideoInfo, opts: EnhanceOptions) -> int | None:
    expected = info.frame_count
    if expected and (opts.start or opts.duration) and info.fps:
        span = opts.duration or max(0.0, (info.duration or 0) - (opts.start or 0))
        expected = max(1, int(round(span * float(info.fps))))
    return expected


# x264 at its default preset holds about 200-220 bytes per output pixel once its lookahead is full
# (measured on 2 cores at 1440p and 4320p, benchmarks/memory.py --encoder): 6.8 GB for 4320p.
ENCODER_BYTES_PER_PIXEL = {"h264": 210, "h265": 210}
# shorter lookaheads (no sync lookahead, fewer frame threads: muxer.lean_threads), tried in turn,
# with the bytes per output pixel x264 then holds: 3,592 and 2,476 MiB measured at 4320p
# (2 cores), against 6,832 MiB at the preset's lookahead; even no lookahead and one thread
# holds 2,280 MiB there, so an 8K H.264 output needs about 2.5 GB whatever is done
LEAN = ((10, 120), (5, 80))
# the encoder may plan on this share of the memory available (the model's buffers get half)
ENCODER_SHARE = 0.25


def encoder_bytes(info: VideoInfo, scale: int, encode: EncodeOptions) -> int:
    """About how much memory the encoder of this output will hold."""
    pixels = info.display_width * info.display_height * scale * scale
    if encode.lookahead is not None and encode.codec in ENCODER_BYTES_PER_PIXEL:
        return pixels * dict(LEAN).get(encode.lookahead, LEAN[0][1])
    return pixels * ENCODER_BYTES_PER_PIXEL.get(encode.codec, 24)


def fit_encoder(info: VideoInfo, scale: int, encode: EncodeOptions) -> EncodeOptions:
    """``encode``, with a shorter x264/x265 lookahead where the encoder at its preset's would take
    more than its share of the memory available (an 8K output on a machine with less than about
    28 GB): the first of :data:`LEAN` that fits, else the leanest."""
    if encode.codec not in ENCODER_BYTES_PER_PIXEL or encode.lookahead is not None:
        return encode
    from enhancer.restore.memory import host_available

    share = host_available() * ENCODER_SHARE
    if encoder_bytes(info, scale, encode) <= share:
        return encode
    for lookahead, _ in LEAN:
        lean = dataclasses.replace(encode, lookahead=lookahead)
        if encoder_bytes(info, scale, lean) <= share:
            return lean
    return lean


def _chunk(restorer: Restorer, info: VideoInfo, opts: EnhanceOptions, encode: EncodeOptions) -> int:
    """Core frames per restorer call: the user's, else what fits the restorer's memory budget
    beside the encoder's."""
    fit = getattr(restorer, "chunk_for", None)
    if fit is None:
        return max(1, opts.chunk or restorer.chunk)
    planned = fit(info.display_height, info.display_width, reserve=encoder_bytes(info, restorer.scale, encode))
    return max(1, opts.chunk or planned)


def shortfall(info: VideoInfo, opts: EnhanceOptions, reader: FrameReader, frames: int,
              last_times: list[Fraction]) -> str | None:
    """Why the input gave fewer frames than its container announced, or None when it gave them
    all. Announced: an exact frame count, or the video stream's own duration; a duration of the
    whole file counts only where ffmpeg also reported damage (audio may outlast the picture), and
    so does a frame count the picture reaches the end without (an edit list can drop frames)."""
    if info.image_sequence:
        return None
    if reader.stopped:
        expected = _expected_frames(info, opts)
        return (f"decoding stopped after {frames} frames" + (f" of about {expected}" if expected else "")
                + f" ({reader.stopped})")
    fps = float(info.fps) if info.fps else 0.0
    damage = reader.damage[0] if reader.damage else None
    short = 0.0
    wanted_end = origin = 0.0
    if fps and info.duration and last_times:
        origin = (info.start_time or 0.0) + (opts.start or 0.0)
        wanted_end = (info.start_time or 0.0) + info.duration
        if opts.duration:
            wanted_end = min(wanted_end, origin + opts.duration)
        frame_len = 1 / fps
        if len(last_times) == 2 and last_times[1] > last_times[0]:
            frame_len = max(frame_len, float(last_times[1] - last_times[0]))
        short = wanted_end - (float(last_times[-1]) + frame_len)
    # a whole frame short at least: a stream-copy cut's edit list may end its last frame early by
    # a fraction of one (a cut at 0.3 s of a 25 fps file: 12 frames over its 0.5 s), which is no damage
    ends_early = fps > 0 and short > 0.99 / fps
    whole = not opts.start and not opts.duration
    if info.frame_count_exact and info.frame_count and whole and frames < info.frame_count \
            and (damage or ends_early):
        return (f"decoded {frames} of the {info.frame_count} frames its container lists"
                + (f" ({damage})" if damage else ""))
    if not ends_early or not (info.stream_duration or damage):
        return None
    expected = max(frames + 1, int(round((wanted_end - origin) * fps)))
    return (f"decoded {frames} of about {expected} frames: the picture ends {short:.2f} s before the "
            f"{wanted_end - origin:.2f} s its container announces" + (f" ({damage})" if damage else ""))


def _incomplete_warning(why: str) -> str:
    return f"incomplete input: {why}; the output holds what decoded"


def _resumable(info: VideoInfo, output: str, encode: EncodeOptions, opts: EnhanceOptions) -> bool:
    """Whether this output is made in parts (every file output the parts can be joined into)."""
    if output == "-" or encode.codec in IMAGE_CODECS or info.image_sequence or opts.preview:
        return False
    return Path(output).suffix.lower() in (".mp4", ".m4v", ".mov", ".mkv") and bool(info.fps)


def _unique(warnings: list[str]) -> list[str]:
    return list(dict.fromkeys(warnings))


def input_notes(info: VideoInfo) -> list[str]:
    """What the output's warnings say about how the input was read (an image sequence's rate, an
    AVI's empty packets) and what of it is left out (cover art, other video streams)."""
    notes = []
    if info.repeats:
        notes.append(f"{info.repeats} of the {info.frame_count} frames are empty packets (in AVI: the frame before, "
                     f"shown again); each was made as a repeat of that frame, so timing and the "
                     f"{float(info.fps):g} fps rate stay the source's")
    if info.others:
        notes.append(f"{' and '.join(info.others)} left out: only the video enhanced is written")
    if not info.image_sequence:
        return notes
    from enhancer.media.sequence import FPS_SIDECAR

    rate = f"{float(info.fps):g}" if info.fps else "unknown"
    if info.fps_from == "assumed":
        return notes + [f"image sequence: no frame rate given, {rate} fps assumed "
                        f"(give --fps, or put the rate in {FPS_SIDECAR} beside the images)"]
    return notes + ([f"image sequence: {rate} fps, from {info.fps_from}"] if info.fps_from else [])


def enhance_video(info: VideoInfo, output: str, restorer: Restorer, encode: EncodeOptions,
                  opts: EnhanceOptions | None = None, *, desc: str | None = None,
                  recipe_key: str | None = None, started: float | None = None,
                  on_staged: Callable[[Path, int], None] | None = None) -> EnhanceResult:
    """Enhance ``info.path`` into ``output``. Raises an :class:`~enhancer.errors.EnhancerError`
    on failure, after removing any partial output. File outputs are made in parts (a short file
    is one part) kept in a hidden folder beside the output: an interrupted run leaves them, and
    the next run with the same recipe (``recipe_key``, by default this call's
    :class:`~enhancer.pipeline.recipe.Recipe`) continues after the last finished part. ``started``
    (a ``time.perf_counter()`` reading, default now) is when the work on this file began: the
    result's seconds and the progress bar's rate both count from it. ``on_staged`` (path, frames)
    sees the joined file, checked, just before it takes the output's name: the batch records it
    there, so no crash leaves an output that no record knows."""
    opts = opts or EnhanceOptions()
    t0 = time.perf_counter() if started is None else started
    splan = None
    if opts.splice:
        from enhancer.pipeline import splice

        splice.check(info, output, opts.segment, preview=opts.preview)
        if opts.deinterlace == "on":
            raise UsageError("--splice keeps the rest of the file as it is, fields and all: --deinterlace on "
                             "cannot be combined with it", path=info.path)
        opts = dataclasses.replace(opts, deinterlace="off")
        splan = splice.plan_splice(info, encode, restorer.scale, output)
        encode = splan.encode
    encode = fit_encoder(info, restorer.scale, encode)
    check_frame_size(info, encode, info.display_width * restorer.scale, info.display_height * restorer.scale, output)
    if _resumable(info, output, encode, opts):
        if recipe_key is None:
            from enhancer.pipeline.recipe import Recipe

            recipe_key = Recipe.of(info.path, restorer, encode, opts).key()
        return _enhance_in_parts(info, output, restorer, encode, opts, recipe_key, desc, t0, splan=splan,
                                 on_staged=on_staged)
    chunk = _chunk(restorer, info, opts, encode)
    reader = FrameReader(info, deinterlace=opts.deinterlace, segment=opts.segment,
                         buffer=max(8, chunk + 2 * restorer.margin))
    muxer = Muxer(output, info, encode, reader.colour, segment=opts.segment)
    writer = _Writer(muxer, depth=max(4, chunk))
    expected = _expected_frames(info, opts)
    ok = False
    try:
        reader.start()
        writer.start()
        with bar(total=expected, desc=desc, unit="frame", enabled=opts.progress, start=t0) as pbar:
            frames = _pump(iter(reader), 0, restorer, writer, chunk, pbar)
            final = muxer.close()
            finished(pbar)
        ok = True
    finally:
        if not ok:
            _stop(writer, muxer.abort)
        reader.close()
    if muxer.frames != frames:
        raise OutputError(f"encoded {muxer.frames} frames but the model produced {frames}", path=output)
    why = shortfall(info, opts, reader, frames, list(reader.last_times))
    notes = [_incomplete_warning(why)] if why else []
    return EnhanceResult(output=str(final) if final else None, frames=frames, seconds=time.perf_counter() - t0,
                         warnings=_unique(input_notes(info) + reader.warnings + notes + muxer.warnings),
                         incomplete=why)


# ---- outputs made in resumable parts ----------------------------------------------------------
_PART_NAME = PART_NAME
_PART_KEYS = {"file", "frames", "first", "last"}
# how parts are written: 2 = each part's timeline starts at its own first frame (parts of an
# earlier layout would join at the wrong times, so they are not reused)
_PARTS_LAYOUT = 2


class _Parts:
    """Writes frames into numbered parts (NUT files, each a closed encode starting on a key
    frame) and records each finished part in ``manifest.json``. A part is closed once
    ``part_seconds`` of processing went into it, at a frame boundary, so a kill never loses
    more than that much work, whatever the speed of the machine."""

    def __init__(self, folder: Path, info: VideoInfo, encode: EncodeOptions, colour, opts: EnhanceOptions,
                 key: str, done: list[dict], clock=time.monotonic, label: str | None = None):
        self.folder, self.info, self.colour, self.opts = folder, info, colour, opts
        self.label = label  # the output the parts are for: what errors name
        self.encode = dataclasses.replace(encode, audio="none", subtitles=False)
        self.key, self.done = key, list(done)
        self.part_seconds = opts.part_seconds
        self.clock = clock
        self.current: Encoder | None = None
        self.since = clock()  # the last checkpoint: work since then is lost if the run is killed
        self.first: Fraction | None = None
        self.last: Fraction | None = None
        self.count = 0
        self.frames = 0
        self.warnings: list[str] = []

    def write(self, image, pts: int, time_base: Fraction) -> None:
        if self.current is None:
            path = self.folder / _PART_NAME.format(len(self.done))
            self.current = Encoder(str(path), self.info, self.encode, self.colour, segment=self.opts.segment,
                                   label=self.label)
            self.first, self.count = pts * time_base, 0
        self.current.write(image, pts, time_base)
        self.last = pts * time_base
        self.count += 1
        self.frames += 1
        if self.clock() - self.since >= self.part_seconds:
            self.close_part()

    def close_part(self) -> None:
        if self.current is None:
            return
        path = self.current.close()
        self.warnings = self.current.warnings
        self.done.append({"file": path.name, "frames": self.count, "first": str(self.first), "last": str(self.last)})
        self.current = None
        self.save()
        self.since = self.clock()

    def save(self) -> None:
        tmp = self.folder / f"manifest.json.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"key": self.key, "layout": _PARTS_LAYOUT, "parts": self.done}, indent=1))
        os.replace(tmp, self.folder / "manifest.json")

    def abort(self) -> None:
        if self.current is not None:
            self.current.abort()
            self.current = None


def _valid_part(folder: Path, k: int, part, after: Fraction | None) -> bool:
    """Whether manifest entry ``k`` is exactly what this tool writes: the k-th part file by its
    own name (no paths, no repeats), a positive frame count that the file really holds, and
    times that follow the part before."""
    if not isinstance(part, dict) or set(part) != _PART_KEYS or part["file"] != _PART_NAME.format(k):
        return False
    frames = part["frames"]
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        return False
    try:
        first, last = Fraction(str(part["first"])), Fraction(str(part["last"]))
    except (ValueError, ZeroDivisionError):
        return False
    if first > last or (after is not None and first <= after):
        return False
    path = folder / part["file"]
    if not path.is_file() or path.is_symlink():
        return False
    try:
        return count_frames(str(path)) == frames
    except EnhancerError:
        return False


def _load_parts(folder: Path, key: str) -> tuple[list[dict], str | None]:
    """Finished parts of an earlier run with the same recipe key, checked one by one: the parts
    that check out from the first on are kept, the rest is removed. Returns (parts, note)."""
    sweep(folder)
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except FileNotFoundError:  # killed before its first part was finished: nothing to reuse
        shutil.rmtree(folder, ignore_errors=True)
        return [], None
    except (OSError, ValueError, RecursionError, UnicodeDecodeError):
        manifest = None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("parts"), list):
        shutil.rmtree(folder, ignore_errors=True)
        return [], "the parts list of an earlier run was unreadable; those parts were discarded"
    if manifest.get("key") != key or manifest.get("layout") != _PARTS_LAYOUT:  # another recipe or layout
        shutil.rmtree(folder, ignore_errors=True)
        return [], None
    good: list[dict] = []
    after = None
    for k, part in enumerate(manifest["parts"]):
        if not _valid_part(folder, k, part, after):
            break
        good.append(part)
        after = Fraction(str(part["last"]))
    keep = {p["file"] for p in good}
    for child in folder.iterdir():
        if child.name not in keep and child.name != "manifest.json":
            shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)
    note = None
    if len(good) < len(manifest["parts"]):
        note = (f"{len(manifest['parts']) - len(good)} of {len(manifest['parts'])} parts of an earlier run did not "
                "check out and were made again")
        tmp = folder / f"manifest.json.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"key": key, "layout": _PARTS_LAYOUT, "parts": good}, indent=1))
        os.replace(tmp, folder / "manifest.json")
    return good, note


def _merged(folder: Path, done: list[dict]) -> dict:
    """What :func:`merge_spans` noted in the manifest of the parts ``done`` (every part kept): whether
    the spans made every frame, the decoder's damage lines and why it stopped, their warnings."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    merged = manifest.get("merged") if isinstance(manifest, dict) else None
    if not isinstance(merged, dict) or not done or len(manifest.get("parts") or []) != len(done):
        return {}
    return merged


def _resumed_frames(reader: FrameReader, last: Fraction, margin: int, done_frames: int):
    """Frames after ``last``, preceded by up to ``margin`` frames at or before it as context.
    Returns (iterator, context count) or None when the seek landed too late to give the context
    (or, for a model without context, landed after ``last``: frames would be lost)."""
    it = iter(reader)
    context: list[Frame] = []
    seen = False
    for fr in it:
        if fr.pts * fr.time_base <= last:
            seen = True
            context.append(fr)
            context = context[-margin:] if margin else []
            continue
        if len(context) < min(margin, done_frames) or (done_frames and not seen):
            return None

        def chain(first=fr, ctx=context):
            yield from ctx
            yield first
            yield from it

        return chain(), len(context)
    return iter([]), 0  # nothing after the last finished part: only the join is left


class _Within:
    """The frames of a reader that lie in [lo, hi) on the source's clock: a splice's segment,
    read from some seconds before it, so that a seek landing on a later key frame (MPEG-TS does)
    cannot move the segment. Notes whether any frame came before ``lo``."""

    def __init__(self, reader: FrameReader, lo: Fraction, hi: Fraction | None):
        self.reader, self.lo, self.hi = reader, lo, hi
        self.before = False
        self.first: Fraction | None = None

    def __iter__(self):
        for fr in self.reader:
            t = fr.pts * fr.time_base
            if t < self.lo:
                self.before = True
                continue
            if self.hi is not None and t >= self.hi:
                return
            if self.first is None:
                self.first = t
            yield fr


SPLICE_PREROLL = 10.0  # seconds a splice's segment is read from before its start
RESUME_PREROLLS = (10.0, 60.0)  # seconds a resume reads from before its last part when a nearer seek lands late


def parts_folder(output: str | Path) -> Path:
    """The hidden folder beside an output that holds its finished parts until they are joined."""
    return hidden_sibling(Path(output), ".parts")


def _enhance_in_parts(info: VideoInfo, output: str, restorer: Restorer, encode: EncodeOptions,
                      opts: EnhanceOptions, key: str, desc: str | None, t0: float,
                      _retry: bool = True, splan=None, _preroll: float = 0.0, on_staged=None) -> EnhanceResult:
    final = Path(output)
    folder = parts_folder(final)
    done, note = _load_parts(folder, key) if folder.exists() else ([], None)
    merged = _merged(folder, done)
    folder.mkdir(parents=True, exist_ok=True)
    chunk = _chunk(restorer, info, opts, encode)
    done_frames = sum(p["frames"] for p in done)
    segment = opts.segment
    bounds = None
    if splan is not None:  # read from before the segment; _Within keeps exactly its frames
        from enhancer.media.segment import _exact

        lo = opts.segment.origin(info.start_time)
        bounds = (lo, lo + _exact(opts.duration) if opts.duration else None)
        read_from = max(0.0, (opts.start or 0) - SPLICE_PREROLL)
        segment = Segment(read_from or None,
                          (opts.start or 0) - read_from + opts.duration + 1.0 if opts.duration else None)
    if done:  # read again from a few frames before the last finished one (context for the model)
        last = Fraction(done[-1]["last"])
        back = max(_preroll, (restorer.margin + 3) / float(info.fps))
        segment = segment.from_(float(last) - (info.start_time or 0) - back)
    reader = FrameReader(info, deinterlace=opts.deinterlace, segment=segment,
                         buffer=max(8, chunk + 2 * restorer.margin))
    source = _Within(reader, *bounds) if bounds else reader
    parts = _Parts(folder, info, encode, reader.colour, opts, key, done, label=output)
    writer = _Writer(parts, depth=max(4, chunk))
    expected = _expected_frames(info, opts)
    frames = done_frames
    ok = False
    interrupted = False
    try:
        if not merged.get("complete"):
            reader.start()
        writer.start()
        if merged.get("complete"):  # a cluster's spans made every frame: only the join is left
            stream, skip = iter([]), 0
            reader.damage, reader.stopped = list(merged.get("damage") or []), merged.get("stopped")
            reader.warnings += list(merged.get("warnings") or [])
            if merged.get("time_base"):  # the decoder's clock (bwdif's field rate), as a reading run has it
                reader.time_base = Fraction(merged["time_base"])
        elif done:
            resumed = _resumed_frames(source, Fraction(done[-1]["last"]), restorer.margin, done_frames)
            if resumed is None:  # the seek landed after the context (MPEG-TS does): from further back,
                reader.close()   # and if that fails too, start this file over
                for preroll in RESUME_PREROLLS:
                    if preroll > _preroll:
                        return _enhance_in_parts(info, output, restorer, encode, opts, key, desc, t0, _retry=_retry,
                                                 splan=splan, _preroll=preroll, on_staged=on_staged)
                if not _retry:
                    raise InputError("cannot resume: seeking does not find the frames before the last part",
                                     path=info.path)
                shutil.rmtree(folder, ignore_errors=True)
                return _enhance_in_parts(info, output, restorer, encode, opts, key, desc, t0, _retry=False,
                                         splan=splan, on_staged=on_staged)
            stream, skip = resumed
        else:
            stream, skip = iter(source), 0
        with bar(total=expected, desc=desc, unit="frame", enabled=opts.progress, start=t0,
                 initial=done_frames) as pbar:
            frames += _pump(stream, skip, restorer, writer, chunk, pbar)
            if bounds and not done and segment.start and not source.before and source.first is not None \
                    and source.first > bounds[0]:
                raise InputError("seeking in this file lands after the segment's start, so the segment cannot be "
                                 "put back frame-exactly", path=info.path,
                                 hint="remux it first (ffmpeg -i IN -c copy OUT.mkv) and splice that")
            parts.close_part()
            if not parts.done:
                raise OutputError("no frame of the video lies in the segment" if bounds else "no frames to encode",
                                  path=str(final))
            # the decoder's clock (or the probe's where this run decoded nothing: only the join was left)
            time_base = reader.time_base or info.time_base
            outside = 0
            # joined under a hidden name and checked there: the output's own name only ever holds a
            # file whose every frame was counted
            staged = temp_path_for(final)
            try:
                if splan is not None:
                    from enhancer.pipeline import splice

                    if not pbar.disable:
                        pbar.set_postfix_str("joining the rest of the file")
                    size = (info.display_width * restorer.scale, info.display_height * restorer.scale)
                    outside, warnings = splice.join(parts.done, folder, staged, info, splan, reader.colour, time_base,
                                                    size, bounds)
                    warnings = [splan.note] + warnings
                else:
                    origin = opts.segment.origin(info.start_time)
                    starts = [Fraction(p["first"]) - origin for p in parts.done]
                    warnings = assemble([folder / p["file"] for p in parts.done], starts, staged, info, encode,
                                        reader.colour, time_base, segment=opts.segment)
                try:
                    joined = count_frames(str(staged)) - outside
                except EnhancerError:  # cut short (a full disk, most often)
                    joined = None
                if joined != frames:  # never report a join that lost or repeated frames as done
                    raise short_join(final, joined, frames)
                if on_staged is not None:
                    on_staged(staged, frames)
                os.replace(staged, final)
            finally:
                staged.unlink(missing_ok=True)
            shutil.rmtree(folder, ignore_errors=True)
            finished(pbar)
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
    last_times = list(reader.last_times)
    if not last_times and done:  # everything was encoded before: the join was all that was left
        last_times = [Fraction(done[-1]["last"])]
    why = shortfall(info, opts, reader, frames, last_times)
    notes = [note] if note else []
    if merged:  # the cluster's normal path is no news; a join that had to make frames itself is
        if not merged.get("complete"):
            notes.append(f"{done_frames} frames came from the cluster's part tasks; the rest was made here")
    elif done_frames:
        notes.append(f"resumed: {done_frames} frames were already encoded by an earlier run")
    notes += [_incomplete_warning(why)] if why else []
    return EnhanceResult(output=str(final), frames=frames, seconds=time.perf_counter() - t0,
                         warnings=_unique(notes + input_notes(info) + reader.warnings + parts.warnings + warnings),
                         incomplete=why, resumed=done_frames)


# ---- spans: one file made by several workers at once (a cluster's per-part tasks) ---------------
# A span is the frames whose times lie in [lo, hi) on the source's clock. Each is made on its own
# (resumably, in parts of its own) with the real frames on either side as the model's context, so
# the joined spans are the frames one process would have made; merge_spans() then hands them to
# the ordinary join of parts.
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
                             hint="remux it first (ffmpeg -i IN -c copy OUT.mkv), or give --ray-split 0")
        seek = max(0.0, float(after if after is not None else lo) - (info.start_time or 0.0) - preroll)
        reader = FrameReader(info, deinterlace=opts.deinterlace, segment=Segment(seek or None, None),
                             buffer=max(8, chunk + 2 * restorer.margin))
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
    tmp = folder / f"complete.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(summary, indent=1))
    os.replace(tmp, folder / "complete.json")
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
    :func:`enhance_video` makes only what is left after them (nothing, when every span is there),
    checking every part on the way. The parts are linked (or copied), never moved, and the spans
    are removed only once the manifest is written, so a merge cut short is simply done again. For
    the caller that holds the output's lock. Returns the frames handed over."""
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
        tmp = folder / f"manifest.json.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"key": key, "layout": _PARTS_LAYOUT, "parts": merged,
                                   "merged": {"complete": complete or stopped is not None, "damage": damage[:3],
                                              "stopped": stopped, "warnings": _unique(warnings),
                                              "time_base": time_base}}, indent=1))
        os.replace(tmp, folder / "manifest.json")
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
