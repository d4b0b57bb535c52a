"""File outputs made in resumable parts.

The frames are encoded into numbered parts (NUT files, each a closed encode) in a hidden folder
beside the output, each finished part recorded in its ``manifest.json``; an interrupted run
leaves them, and the next run with the same recipe checks them one by one and continues after
the last that checks out. The parts are then joined (with the rest of the file, for a splice)
under a hidden name, counted, and only then given the output's name.
"""
from __future__ import annotations

import collections
import dataclasses
import itertools
import json
import shutil
import time
from fractions import Fraction
from pathlib import Path

from enhancer.errors import EnhancerError, InputError, OutputError
from enhancer.restore.restorer import Restorer
from enhancer.media import ffmpeg as ff
from enhancer.media.encode import EncodeOptions, IMAGE_CODECS
from enhancer.media.muxer import Encoder, PART_NAME, went_back_warning
from enhancer.media.join import assemble, short_join
from enhancer.media.videoinfo import VideoInfo
from enhancer.media.probe import count_frames
from enhancer.media.reader import Frame, FrameReader
from enhancer.media.segment import Segment
from enhancer.media.temps import atomic_write, hidden_sibling, publish, sweep, temp_path_for
from enhancer.pipeline.budget import _chunk
from enhancer.pipeline.engine import EnhanceOptions, EnhanceResult, _pump, alpha_frames, planar_frames, _stop, _Writer, finished
from enhancer.pipeline.notes import _expected_frames, _incomplete_warning, _unique, input_notes, shortfall
from enhancer.progress import bar

_PART_NAME = PART_NAME
_PART_KEYS = {"file", "frames", "first", "last"}
# how parts are written: 2 = each part's timeline starts at its own first frame (parts of an
# earlier layout would join at the wrong times, so they are not reused); 3 = parts keep the
# source's alpha plane where the output can hold one, and a mid-stream size change is fitted with
# bars (a layout-2 part, opaque or stretched, must not be joined to them)
_PARTS_LAYOUT = 3


def _resumable(info: VideoInfo, output: str, encode: EncodeOptions, opts: EnhanceOptions) -> bool:
    """Whether this output is made in parts (every file output the parts can be joined into)."""
    if output == "-" or encode.codec in IMAGE_CODECS or info.image_sequence or opts.preview:
        return False
    return Path(output).suffix.lower() in (".mp4", ".m4v", ".mov", ".mkv") and bool(info.fps)


class _Parts:
    """Writes frames into numbered parts (NUT files, each a closed encode starting on a key
    frame) and records each finished part in ``manifest.json``. A part is closed once
    ``part_seconds`` of processing went into it, at a frame boundary, so a kill never loses
    more than that much work, whatever the speed of the machine."""

    def __init__(self, folder: Path, info: VideoInfo, encode: EncodeOptions, colour, opts: EnhanceOptions,
                 key: str, done: list[dict], clock=time.monotonic, label: str | None = None, restarts: bool = False):
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
        # the encoders' warnings (what the picture lost: chroma, depth, alpha), an earlier run's
        # parts' too, so a run that only joins still says them
        self._said: list[str] = list(dict.fromkeys(
            w for p in self.done for w in (p.get("warnings") or []) if isinstance(w, str)))
        # the source's clock went back (recordings joined end to end): a resume cannot find its
        # place by time, so it counts frames from the start instead (_resumed_by_count)
        self.restarts = restarts
        # times handed to the encoders only go forward, across parts: a frame whose time went back
        # follows on one frame period after the one before (as one encoder does within a file), so
        # parts join at increasing times however many the file takes
        self._t_last: Fraction | None = Fraction(done[-1]["last"]) if done else None
        self._period = 1 / info.fps if getattr(info, "fps", None) else Fraction(1, 25)
        self._went_back = 0  # in the current part

    @property
    def warnings(self) -> list[str]:
        went_back = sum(p.get("went_back", 0) for p in self.done) + self._went_back
        return self._said + ([went_back_warning(went_back)] if went_back else [])

    def write(self, image, pts: int, time_base: Fraction) -> None:
        if self.current is None:
            path = self.folder / _PART_NAME.format(len(self.done))
            self.current = Encoder(str(path), self.info, self.encode, self.colour, segment=self.opts.segment,
                                   label=self.label)
            self.count = 0
        t = pts * time_base
        if self._t_last is not None and t < self._t_last:
            # on the frames' own clock (the encoder keeps the first frame's time base)
            pts = round((self._t_last + self._period) / time_base)
            t = pts * time_base
            self._went_back += 1
            if not self.restarts:
                self.restarts = True
                self.save()
        if self.count == 0:
            self.first = t
        self.current.write(image, pts, time_base)
        self.last = self._t_last = t
        self.count += 1
        self.frames += 1
        if self.clock() - self.since >= self.part_seconds:
            self.close_part()

    def close_part(self) -> None:
        if self.current is None:
            return
        path = self.current.close()
        said = self.current.warnings
        self._said += [w for w in said if w not in self._said]
        self.done.append({"file": path.name, "frames": self.count, "first": str(self.first), "last": str(self.last),
                          "warnings": said} | ({"went_back": self._went_back} if self._went_back else {}))
        self._went_back = 0
        self.current = None
        self.save()
        self.since = self.clock()

    def save(self) -> None:
        atomic_write(self.folder / "manifest.json", json.dumps(
            {"key": self.key, "layout": _PARTS_LAYOUT, "parts": self.done} | ({"restarts": True} if self.restarts else {}),
            indent=1), hidden=False)

    def abort(self) -> None:
        if self.current is not None:
            self.current.abort()
            self.current = None


def _valid_part(folder: Path, k: int, part, after: Fraction | None) -> bool:
    """Whether manifest entry ``k`` is exactly what this tool writes: the k-th part file by its
    own name (no paths, no repeats), a positive frame count that the file really holds, and
    times that follow the part before."""
    if not isinstance(part, dict) or set(part) - {"warnings", "went_back"} != _PART_KEYS \
            or part["file"] != _PART_NAME.format(k):
        return False
    said = part.get("warnings", [])  # the part's encoder's warnings (optional)
    if not isinstance(said, list) or not all(isinstance(w, str) for w in said):
        return False
    went_back = part.get("went_back", 0)  # its frames whose time went back (optional)
    if isinstance(went_back, bool) or not isinstance(went_back, int) or went_back < 0:
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
        atomic_write(folder / "manifest.json", json.dumps(
            {"key": key, "layout": _PARTS_LAYOUT, "parts": good} | ({"restarts": True} if _restarts(folder) else {}),
            indent=1), hidden=False)
    return good, note


def _restarts(folder: Path) -> bool:
    """Whether an earlier run saw the source's clock go back (its manifest says so)."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("restarts") is True


def _merged(folder: Path, done: list[dict]) -> dict:
    """What :func:`~enhancer.pipeline.spans.merge_spans` noted in the manifest of the parts
    ``done`` (every part kept): whether the spans made every frame, the decoder's damage lines and
    why it stopped, their warnings."""
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
    try:
        fr = next(it, None)
    except InputError:  # the seek found no frames at all (a file whose clock restarts, joined end to end)
        return None
    for fr in itertools.chain([fr] if fr is not None else [], it):
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


def _clock_goes_back(info: VideoInfo) -> bool:
    """Whether the video's decoding times ever go back (recordings joined end to end): a seek by
    time cannot find a place in such a file (an accurate seek drops every frame of a later
    recording whose clock reads less). Read from the packets alone (no decoding), and only when a
    run resumes: the file is read through once (0.3 s for a 139 s, 3 MB clip here)."""
    # (-copyts: else ffmpeg mends MPEG-TS discontinuities; its muxer then holds a time that went back
    # at the one before, so a time that does not go forward counts)
    argv = [ff.tools().ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-copyts", *info.input_args,
            "-i", ff.file_arg(info.path), "-map", f"0:{info.video_index}", "-c", "copy", "-f", "framecrc", "-"]
    try:
        out = ff.run(argv, path=info.path, what="reading the packet times failed", timeout=600).stdout
    except EnhancerError:
        return False
    last = None
    for line in out.decode("ascii", "replace").splitlines():
        fields = line.split(",")
        if line.startswith("#") or len(fields) < 3:
            continue
        try:
            dts = int(fields[1])
        except ValueError:
            continue
        if last is not None and dts <= last:
            return True
        last = dts
    return False


def _resumed_by_count(reader, margin: int, done_frames: int):
    """For a source whose clock goes back (where a seek by time is lost): read from the start, skip
    the ``done_frames`` frames the finished parts hold, keeping the last ``margin`` of them as
    context. Returns (iterator, context count); decoding is deterministic, so the frames are the
    ones a straight run gives at those places."""
    it = iter(reader)
    context: collections.deque = collections.deque(maxlen=margin or None)
    for _ in range(done_frames):
        fr = next(it, None)
        if fr is None:
            break
        if margin:
            context.append(fr)
    ctx = list(context) if margin else []
    return itertools.chain(ctx, it), len(ctx)


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
    restarts = bool(done) and (_restarts(folder) or _clock_goes_back(info))
    if done and not restarts:  # read again from a few frames before the last finished one (context for the model)
        last = Fraction(done[-1]["last"])
        back = max(_preroll, (restorer.margin + 3) / float(info.fps))
        segment = segment.from_(float(last) - (info.start_time or 0) - back)
    reader = FrameReader(info, deinterlace=opts.deinterlace, segment=segment,
                         buffer=max(8, chunk + 2 * restorer.margin), planar=planar_frames(restorer, opts),
                         alpha=alpha_frames(info, encode, opts))
    source = _Within(reader, *bounds) if bounds else reader
    parts = _Parts(folder, info, encode, reader.colour, opts, key, done, label=output, restarts=restarts)
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
        elif done and restarts:  # the clock goes back somewhere: find the place by counting frames
            stream, skip = _resumed_by_count(source, restorer.margin, done_frames)
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
                publish(staged, final)
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
