"""From an edit to the ranges of source frames it uses, each an ordinary batch job, and back.

Each clip of the edit's video tracks is found by name or reel under the media folders; the
frames it shows (a transition's overlap included), with ``handles`` frames either side cut to the
media's ends, become a range; the ranges of one media that overlap or touch are merged into one.
A range is the source's span as ``--start``/``--duration`` seconds (frame k of a constant-rate
source starts k/fps after its first), which the reader seeks frame-exactly; its output carries
the timecode of its first frame. The relinked edit keeps every source and record timecode and
points each event at the range that holds its frames.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from enhancer.conform.edit import Edit, clip_names, otio_module, parse_edit, reel_of
from enhancer.errors import EnhancerError, UsageError, escape, option, shown
from enhancer.media.files import VIDEO_EXTENSIONS
from enhancer.media.timecode import Timecode
from enhancer.batch.naming import Job

DEFAULT_HANDLES = 12


@dataclass(frozen=True)
class Media:
    """A source file an edit uses: its rate, length and the timecode of its first frame."""

    path: str
    fps: Fraction
    frames: int
    start: Timecode | None
    reel: str | None
    container: str = ""  # as ffmpeg names it (mov,mp4,..., matroska,webm, mpegts)

    def label(self, k: int) -> str:
        """Frame ``k`` (0: the first) as its timecode, or as a frame number where it has none."""
        return str(self.start.shifted(k)) if self.start is not None else f"frame {k}"

    def span(self) -> str:
        return f"{self.label(0)}-{self.label(self.frames - 1)}"


@dataclass(frozen=True)
class Use:
    """The frames one event shows of its media: ``frames`` from frame ``first`` (0: the media's first)."""

    event: int  # 1-based, in the order of the edit's video clips
    clip: str
    media: Media
    first: int
    frames: int
    base: int  # the edit's source time (in frames) of the media's first frame


@dataclass
class Range:
    """One output: ``frames`` frames of ``media`` from frame ``first``."""

    media: Media
    first: int
    frames: int
    uses: list[Use] = field(default_factory=list)
    output: str = ""

    @property
    def timecode(self) -> str:
        return self.media.label(self.first)

    @property
    def start(self) -> float | None:
        """Where the range begins, in seconds after the source's first frame (None: at it)."""
        return float(Fraction(self.first) / self.media.fps) if self.first else None

    @property
    def duration(self) -> float:
        """How long the range is, a millisecond short: Matroska's millisecond clock rounds a frame's
        time up to half a millisecond, and a span of exactly ``frames`` frames measured from the first
        frame's rounded time then took the next frame too (measured: 42 of 340 spans at 29.97)."""
        return float(Fraction(self.frames) / self.media.fps) - min(0.001, 0.25 / float(self.media.fps))

    def describe(self) -> dict:
        """What the range is, for the JSON result lines: its source in and out as an EDL writes
        them (out: the frame after its last), its frames, and the events it serves."""
        return {"source_in": self.timecode, "source_out": self.media.label(self.first + self.frames),
                "range_frames": self.frames, "events": sorted({u.event for u in self.uses})}

    def line(self) -> str:
        events = sorted({u.event for u in self.uses})
        which = f"event{'s' if len(events) > 1 else ''} {', '.join(map(str, events))}"
        return f"{self.timecode}-{self.media.label(self.first + self.frames - 1)}, {self.frames} frames, {which}"


class MediaIndex:
    """The video files under the media folders, found by file name, name without extension, or
    reel (the name itself, or the reel a file's metadata names)."""

    def __init__(self, folders: list[str], exclude: list[str]):
        from enhancer.batch.naming import discover

        for folder in folders:
            if not os.path.isdir(folder):
                raise UsageError("is not a folder", path=folder,
                                 hint=f"{option('media')} takes folders that hold the edit's media")
        self.folders = folders
        self.files = [p for p, _ in discover(folders, recursive=True, exclude=exclude)]
        self._media: dict[str, Media] = {}

    def media(self, path: str) -> Media:
        if path not in self._media:
            from enhancer.media.probe import probe

            info = probe(path)
            if not info.fps:
                raise UsageError("has no frame rate conform can count frames at", path=path)
            frames = info.frame_count or round((info.duration or 0) * info.fps)
            start = Timecode.parse(info.timecode, info.fps) if info.timecode else None
            self._media[path] = Media(path, info.fps, frames, start, info.reel_name, info.container)
        return self._media[path]

    def find(self, clip, event: int, edl: bool = False) -> Media:
        names = clip_names(clip, edl)
        for name in names:
            key = name.lower()
            # the file itself, else one of that name without its extension, else (an edit cut on
            # proxies names srcA.mxf where the online media is srcA.mov) one of the name's stem
            stem = Path(key).stem if Path(key).suffix in VIDEO_EXTENSIONS else None
            hits = [p for p in self.files if Path(p).name.lower() == key] or \
                   [p for p in self.files if Path(p).stem.lower() == key] or \
                   [p for p in self.files if stem and Path(p).stem.lower() == stem]
            if len(hits) > 1:
                raise UsageError(f"clip {_clip(clip, event)}: {len(hits)} files are called {name!r}: "
                                 f"{', '.join(shown(h) for h in hits[:3])}",
                                 hint=f"give {option('media')} the one folder that holds the right one")
            if hits:
                return self.media(hits[0])
        reel = reel_of(clip)
        if reel:
            hits = [p for p in self.files if self._reel(p) == reel]
            if len(hits) == 1:
                return self.media(hits[0])
            if len(hits) > 1:
                raise UsageError(f"clip {_clip(clip, event)}: {len(hits)} files carry the reel {reel!r}: "
                                 f"{', '.join(shown(h) for h in hits[:3])}",
                                 hint=f"give {option('media')} the one folder that holds the right one")
        looked = " or ".join(repr(n) for n in names) or "no name"
        raise UsageError(f"clip {_clip(clip, event)}: no media named {escape(looked)} under "
                         f"{', '.join(shown(f) for f in self.folders)}",
                         hint=f"give {option('media')} the folder that holds it")

    def _reel(self, path: str) -> str | None:
        try:
            return self.media(path).reel
        except EnhancerError:  # not a video this tool reads: it is not the clip's media either
            return None


def _clip(clip, event: int) -> str:
    # the adapter names an EDL event without a clip name by its number: no name of the clip's own
    return f"{escape(clip.name)!r} (event {event})" if clip.name and not clip.name.isdigit() else f"event {event}"


def _same_rate(rate: float, fps: Fraction) -> bool:
    """Whether an edit's rate is the media's, written to fewer digits (23.976 for 24000/1001)."""
    return abs(rate - float(fps)) <= 1e-3 * rate


def _frames(t, fps: Fraction) -> int:
    """A time of the edit in frames of the media: its own count where the rates are one (rescaling
    23.976 to 23.976024 would move ten hours of timecode by a frame), else rescaled (audio's 48000)."""
    return round(t.value) if _same_rate(t.rate, fps) else round(t.value_rescaled_to(float(fps)))


def _time(frames: int, rate: float, fps: Fraction):
    """``frames`` of the media as a time of the edit at ``rate``."""
    rt = otio_module().opentime.RationalTime
    return rt(frames, rate) if _same_rate(rate, fps) else rt(frames, float(fps)).rescaled_to(rate)


def _use(clip, event: int, media: Media, edit: Edit) -> Use:
    """The frames ``clip`` shows of ``media``; a one-line error for a rate that disagrees or a
    range outside the media."""
    shown_range = clip.visible_range()
    rate = shown_range.start_time.rate
    if not _same_rate(rate, media.fps):
        raise UsageError(f"clip {_clip(clip, event)}: the edit counts it at {rate:g} fps, its media "
                         f"{shown(media.path)} runs at {float(media.fps):g} fps",
                         hint=f"conform the edit made for this media, or give {option('media')} the media it was cut from")
    if edit.adapter == "cmx_3600" and media.start is not None and media.start.drop != edit.drop_frame:
        counts = ("drop-frame", "non-drop-frame") if edit.drop_frame else ("non-drop-frame", "drop-frame")
        raise UsageError(f"clip {_clip(clip, event)}: the edit counts {counts[0]} timecode, its media "
                         f"{shown(media.path)} {counts[1]} ({media.start})",
                         hint="an EDL's FCM and separators (; for drop-frame) must match its media's timecode")
    ref = clip.media_reference
    available = getattr(ref, "available_range", None)
    if available is not None:  # the edit says where the media's first frame lies on its clock
        base = _frames(available.start_time, media.fps)
    else:  # an EDL's source timecodes: the media's own timecode
        base = media.start.frame if media.start is not None else 0
    first = _frames(shown_range.start_time, media.fps) - base
    if available is None and media.start is not None and first < 0:
        # timecode goes on at 00:00:00:00 after 23:59:59: an EDL names a tape's frames after midnight so
        first += Timecode._day(media.start.rate, media.start.drop)
    frames = _frames(shown_range.duration, media.fps)
    otio = otio_module()
    for effect in clip.effects:  # a clip's duration is what the record shows: a speed change reads more or less
        if isinstance(effect, otio.schema.FreezeFrame):
            frames = 1
        elif isinstance(effect, otio.schema.LinearTimeWarp) and effect.time_scalar:
            frames = max(1, math.ceil(frames * abs(effect.time_scalar) - 1e-9))
    if first < 0 or first + frames > media.frames:
        tc = Timecode(0, media.start.rate, media.start.drop) if media.start is not None else None
        label = (lambda k: str(tc.shifted(base + k))) if tc is not None else (lambda k: f"frame {k}")
        raise UsageError(f"clip {_clip(clip, event)}: its source {label(first)}-{label(first + frames - 1)} lies "
                         f"outside its media {shown(media.path)} ({label(0)}-{label(media.frames - 1)})",
                         hint="is this the media the edit was cut from?")
    return Use(event, clip.name or "", media, first, frames, base)


def merge(uses: list[Use], handles: int) -> list[Range]:
    """The ranges the uses need: each with ``handles`` frames either side, cut to its media's
    ends; ranges of one media that overlap or touch become one."""
    by_media: dict[str, list[Use]] = {}
    for u in uses:
        by_media.setdefault(u.media.path, []).append(u)
    ranges: list[Range] = []
    for path, group in by_media.items():
        spans = sorted((max(0, u.first - handles), min(u.media.frames, u.first + u.frames + handles), u.event, k)
                       for k, u in enumerate(group))
        current: Range | None = None
        for lo, hi, _, k in spans:
            u = group[k]
            if current is not None and lo <= current.first + current.frames:
                current.frames = max(current.frames, hi - current.first)
                current.uses.append(u)
            else:
                current = Range(u.media, lo, hi - lo, [u])
                ranges.append(current)
    return ranges


def _name(r: Range, ext: str) -> str:
    from enhancer.media.temps import fit_name

    stem = Path(r.media.path).stem
    mark = r.timecode.replace(":", "-").replace(";", "-") if r.media.start is not None else f"f{r.first:06d}"
    return fit_name(f"{stem}.{mark}{ext}")


@dataclass
class Conform:
    """What a conform will do: the edit, the uses of its events, the ranges to enhance (each
    named in ``output``), and where the relinked edit goes."""

    edit: Edit
    uses: list[Use]
    ranges: list[Range]
    output: str
    relinked: str

    def jobs(self) -> list[Job]:
        return [Job(r.media.path, r.output) for r in self.ranges]

    def options(self, opts) -> list:
        """Each range's own :class:`~enhancer.pipeline.engine.EnhanceOptions`: ``opts`` over its span."""
        return [dataclasses.replace(opts, start=r.start, duration=r.duration) for r in self.ranges]

    def range_of(self, path: str, first: int, frames: int) -> Range | None:
        return next((r for r in self.ranges if r.media.path == path and r.first <= first
                     and first + frames <= r.first + r.frames), None)

    def relinked_timeline(self):
        """A copy of the edit's timeline, each clip whose frames a range holds pointing at that
        range's output, at the same source (and record) times."""
        otio = otio_module()
        timeline = copy.deepcopy(self.edit.timeline)
        used = {u.event: u for u in self.uses}
        originals = self.edit.video_clips()  # held: the ids below are of these objects
        events = {id(c): k + 1 for k, c in enumerate(originals)}
        for mine, theirs in zip(_clips(timeline), _clips(self.edit.timeline)):
            use = used.get(events.get(id(theirs), -1))
            if use is None:  # an audio track's clip: the media of the video clip it names, where one is known
                use = self._audio_use(theirs)
            if use is None:
                continue
            r = self.range_of(use.media.path, use.first, use.frames)
            if r is None:
                continue
            rate = mine.visible_range().start_time.rate
            start, duration = _time(use.base + r.first, rate, use.media.fps), _time(r.frames, rate, use.media.fps)
            name = Path(r.output).name
            url = Path(os.path.abspath(r.output)).as_uri() if self.edit.adapter in ("fcp_xml", "fcpx_xml") else name
            mine.media_reference = otio.schema.ExternalReference(
                target_url=url, available_range=otio.opentime.TimeRange(start, duration))
            mine.media_reference.name = name
            if self.edit.adapter == "cmx_3600":  # an EDL names a clip's file only in its clip name
                mine.name = name
        return timeline

    def picture_files(self) -> list[tuple[str, int] | None]:
        """The enhanced file of each clip of the edit's video tracks, black and bars included (None
        where no range holds its frames): what an EDL's picture events are relinked to. With it,
        where its source has no timecode, the frames the file begins into it: the file has none
        either, so an EDL counts it from 00:00:00:00 and its events' source times move by as much."""
        otio = otio_module()
        clips = self.edit.video_clips()  # held: the ids below are of these objects
        events = {id(c): k + 1 for k, c in enumerate(clips)}
        used = {u.event: u for u in self.uses}
        files: list[tuple[str, int] | None] = []
        for clip in (c for track in self.edit.timeline.video_tracks() for c in track.find_clips()):
            use = used.get(events.get(id(clip), -1))
            r = self.range_of(use.media.path, use.first, use.frames) if use is not None else None
            generator = isinstance(clip.media_reference, otio.schema.GeneratorReference)
            files.append((Path(r.output).name, 0 if r.media.start is not None else r.first)
                         if r is not None and not generator else None)
        return files

    def _audio_use(self, clip) -> Use | None:
        """The frames an audio track's clip takes from a media a video clip uses (found by the
        same names), so that it follows the picture to the enhanced file where a range holds it."""
        names = {n.lower() for n in clip_names(clip, self.edit.adapter == "cmx_3600")}
        for u in self.uses:
            p = Path(u.media.path)
            if p.name.lower() in names or p.stem.lower() in names or (u.media.reel or "").lower() in names:
                try:
                    shown_range = clip.visible_range()
                except Exception:  # noqa: BLE001 - a clip outside any track: nothing to relink
                    return None
                first = _frames(shown_range.start_time, u.media.fps) - u.base
                return Use(0, clip.name or "", u.media, first, _frames(shown_range.duration, u.media.fps), u.base)
        return None


def _clips(timeline) -> list:
    otio = otio_module()
    return [c for c in timeline.find_clips() if not isinstance(c.media_reference, otio.schema.GeneratorReference)]


def plan_conform(edit_path: str, media: list[str], output: str, *, handles: int = DEFAULT_HANDLES,
                 codec: str = "prores", container: str | None = None) -> Conform:
    """Read the edit, find its media, and plan the ranges; one-line errors (:class:`UsageError`)
    for an edit that does not parse, media not found, a rate that disagrees, a range outside
    its media, or outputs whose names collide."""
    from enhancer.media.encode import IMAGE_CODECS, default_extension

    if handles < 0:
        raise UsageError(f"handles must be 0 frames or more, not {handles}")
    if codec in IMAGE_CODECS:
        raise UsageError(f"{option('codec')} {codec} writes image sequences; an edit's events point at video files",
                         hint="use prores, dnxhr, ffv1, h264 or h265")
    if not os.path.isfile(edit_path):
        raise UsageError("no such edit file", path=edit_path)
    if not media:
        raise UsageError(f"conform needs at least one {option('media')} folder to find the edit's media in")
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise UsageError("is a file; conform writes its ranges and the relinked edit into a folder", path=output)
    edit = parse_edit(edit_path)
    index = MediaIndex(list(media), exclude=[output])
    clips = edit.video_clips()
    if not clips:
        raise UsageError("has no clips on its video tracks to conform", path=edit_path)
    found = [index.find(c, k + 1, edit.adapter == "cmx_3600") for k, c in enumerate(clips)]
    for m in found:
        # measured: a seek into MPEG-TS or program-stream media lands a key frame or a few frames
        # off the one asked for (the same media rewrapped in .mov or .mkv seeks exactly)
        if m.container.split(",")[0] in ("mpegts", "mpeg"):
            raise UsageError("conform cannot cut MPEG transport or program streams frame-exactly", path=m.path,
                             hint="rewrap it first, e.g. ffmpeg -i IN -map 0 -c copy OUT.mov, and conform from that")
    if edit.adapter == "cmx_3600":  # read it again at its media's rate, now that it is known
        rates = sorted({m.fps for m in found})
        if len(rates) > 1:
            a = next(m for m in found if m.fps == rates[0])
            b = next(m for m in found if m.fps == rates[1])
            raise UsageError(f"its media run at {float(rates[0]):g} fps ({shown(a.path)}) and {float(rates[1]):g} fps "
                             f"({shown(b.path)}): an EDL counts every timecode at one rate", path=edit_path,
                             hint="conform the clips of each rate from an edit of their own")
        try:
            edit = parse_edit(edit_path, float(rates[0]))
        except UsageError as e:
            raise UsageError(f"its timecodes do not fit its media's {float(rates[0]):g} fps: {e.reason}",
                             path=edit_path, hint="an EDL is counted at its media's rate: correct that line, or "
                                                  f"give {option('media')} the media the edit was cut from") from None
        clips = edit.video_clips()
    uses = [_use(c, k + 1, m, edit) for k, (c, m) in enumerate(zip(clips, found))]
    ranges = merge(uses, handles)
    names: dict[str, Range] = {}
    for r in ranges:
        ext = "." + container.lstrip(".") if container else default_extension(codec, Path(r.media.path).suffix)
        r.output = str(out / _name(r, ext))
        other = names.get(os.path.normcase(r.output))
        if other is not None:
            raise UsageError(f"{shown(other.media.path)} and {shown(r.media.path)} would both be written to "
                             f"{shown(r.output)}", hint="rename one of the media files")
        names[os.path.normcase(r.output)] = r
    suffix = Path(edit_path).suffix
    relinked = str(out / f"{Path(edit_path).stem}.enhanced{suffix}")
    if os.path.abspath(relinked) == os.path.abspath(edit_path):
        raise UsageError("the relinked edit would replace the edit", path=edit_path, hint="choose another -o")
    return Conform(edit, uses, ranges, output, relinked)
