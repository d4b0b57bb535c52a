"""Edits in and out: an edit file read with OpenTimelineIO (and the adapter its format needs),
what it calls each clip's media, and the relinked edit written back in the format it came in.

OpenTimelineIO reads ``.otio`` itself; CMX 3600 EDL, FCP 7 XML and FCPXML come from adapter
packages (``pip install 'enhancer[conform]'`` brings all three). An EDL holds no frame rate: it is
read at its media's rate, once the media are found (see
:func:`~enhancer.conform.plan.plan_conform`), and relinked in its own text.
"""
from __future__ import annotations

import os
import re
import urllib.parse
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from enhancer.errors import ArgumentError, UsageError, escape
from enhancer.media.temps import atomic_write
from enhancer.media.timecode import Timecode

# suffix: (OpenTimelineIO adapter, the PyPI package that brings it (None: OTIO itself), what it is)
FORMATS = {".edl": ("cmx_3600", "otio-cmx3600-adapter", "a CMX 3600 EDL"),
           ".xml": ("fcp_xml", "otio-fcp-adapter", "an FCP 7 XML"),
           ".fcpxml": ("fcpx_xml", "otio-fcpx-xml-adapter", "an FCPXML"),
           ".otio": ("otio_json", None, "an OpenTimelineIO file")}
# an EDL is first read at the finest rate its timecodes can be written in (59.94 drop-frame takes
# ';' and any frame number below 60), only to learn which media it names
_ANY_RATE = 60000 / 1001


def otio_module():
    """OpenTimelineIO, or a one-line error saying how to install it."""
    try:
        import opentimelineio
    except ImportError:
        raise UsageError("conform reads edits with OpenTimelineIO, which is not installed",
                         hint="pip install 'enhancer[conform]'") from None
    return opentimelineio


def edit_format(path: str) -> tuple[str, str | None, str]:
    """(adapter, package, description) of an edit file, by its extension; a one-line error for a
    format conform does not read, or whose adapter package is missing."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise UsageError("is not an edit conform reads", path=path,
                         hint="give a CMX 3600 .edl, an FCP 7 .xml, an .fcpxml or an .otio file")
    otio = otio_module()
    adapter, package, what = fmt
    if adapter not in otio.adapters.available_adapter_names():
        raise UsageError(f"reading {what} needs the {package} package, which is not installed", path=path,
                         hint=f"pip install {package} (or pip install 'enhancer[conform]' for every format)")
    return fmt


@dataclass
class Edit:
    """An edit as read: its timeline (OpenTimelineIO), where it came from, and the rate an EDL was
    read at (None for formats that carry their own)."""

    path: str
    adapter: str
    timeline: object  # opentimelineio.schema.Timeline
    rate: float | None = None
    drop_frame: bool = False  # an EDL written in drop-frame timecode (';')
    text: str = ""  # the file as it was read (an EDL is relinked in its own text)
    encoding: str = "utf-8"  # what its bytes were (an EDL is written back in it)

    def video_clips(self) -> list:
        """The clips of the video tracks that show media (not gaps, black or bars), in order."""
        otio = otio_module()
        return [c for track in self.timeline.video_tracks() for c in track.find_clips()
                if not isinstance(c.media_reference, otio.schema.GeneratorReference)]


def _parse(path: str, adapter: str, text: str, rate: float | None, names_only: bool = False):
    otio = otio_module()
    if adapter == "cmx_3600":
        # read at a rate not yet known (``names_only``), a source and a record span of one length can
        # count differently across a second: only which media it names is wanted of that reading
        if not names_only:  # the adapter says so in RationalTime(...) terms; this names the line and frames
            _check_lengths(text, rate)
        try:
            result = otio.adapters.read_from_string(text, adapter, rate=rate, ignore_timecode_mismatch=names_only)
        except Exception as e:  # noqa: BLE001 - what the adapter's parser raises
            if names_only or "Overlapping record" not in str(e):
                raise
            # events sorted by source (C-mode), or whose record times overlap, still say which frames
            # each shows (the relinked EDL is the text itself, in its order): read them as they come,
            # each event's source and record lengths checked above, as the strict reading does
            result = otio.adapters.read_from_string(text, adapter, rate=rate, ignore_timecode_mismatch=True)
    else:
        result = otio.adapters.read_from_string(text, adapter)
    if isinstance(result, otio.schema.SerializableCollection):
        timelines = [t for t in result.find_children(descended_from_type=otio.schema.Timeline)] \
            if hasattr(result, "find_children") else [t for t in result if isinstance(t, otio.schema.Timeline)]
        if len(timelines) != 1:
            raise UsageError(f"holds {len(timelines)} sequences; conform takes an edit of one", path=path,
                             hint="export the one sequence to conform")
        result = timelines[0]
    if not isinstance(result, otio.schema.Timeline):
        raise UsageError(f"holds no timeline ({type(result).__name__})", path=path)
    return result


def _check_lengths(text: str, rate: float) -> None:
    """Raise (naming the line) where an EDL event's source and record spans differ in length and
    no speed change (M2) or freeze frame says why."""
    fps = Fraction(rate).limit_denominator(1001)
    lines = text.splitlines()
    starts = _edl_events(lines) + [len(lines)]
    for k in range(len(starts) - 1):
        block = lines[starts[k]:starts[k + 1]]
        if any(re.match(r"\s*(M2\b|\*\s*\*\s*FREEZE FRAME)", x, re.I) for x in block):
            continue
        for i, line in enumerate(block):
            tcs = [Timecode.parse(m.group(0), fps) for m in _TC.finditer(line)] if _EVENT.match(line) else []
            if len(tcs) == 4 and None not in tcs and tcs[1].frame < tcs[0].frame:
                raise ArgumentError(f"line {starts[k] + i + 1}: its source runs across midnight ({tcs[0]} to "
                                    f"{tcs[1]}), which the EDL reader cannot follow: split the event at its 00:00:00:00")
            if len(tcs) == 4 and None not in tcs and (tcs[1].frame - tcs[0].frame) != (tcs[3].frame - tcs[2].frame):
                raise ArgumentError(f"line {starts[k] + i + 1}: its source and record durations do not match "
                                    f"({tcs[1].frame - tcs[0].frame} and {tcs[3].frame - tcs[2].frame} frames)")


def _edl_events(lines: list[str]) -> list[int]:
    """Indices of the lines that begin an EDL event (a new event number)."""
    starts, last = [], None
    for i, line in enumerate(lines):
        m = re.match(r"\s*(\d+)\s", line)
        if m and m.group(1) != last:
            starts.append(i)
            last = m.group(1)
    return starts


def _failing_line(path: str, adapter: str, text: str, rate: float | None, message: str,
                  names_only: bool) -> int | None:
    """The 1-based line where an edit stops parsing: the one an error names or quotes, else (EDLs)
    the first event whose addition makes the rest fail."""
    m = re.search(r"line (\d+)", message)
    if m:
        return int(m.group(1))
    lines = text.splitlines()
    quoted = [i for i, line in enumerate(lines) if line.strip() and len(line.strip()) > 8 and line.strip() in message]
    if quoted:
        return quoted[0] + 1
    if adapter != "cmx_3600":
        return None
    starts = _edl_events(lines)
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(lines)
        try:
            _parse(path, adapter, "\n".join(lines[:end]), rate, names_only)
        except Exception:  # noqa: BLE001 - any failure: this event is where it begins
            return start + 1
    return None


def parse_edit(path: str, rate: float | None = None) -> Edit:
    """Read ``path`` (an EDL at ``rate`` frames a second, else at any rate its timecodes allow);
    a one-line error naming the line where it does not parse."""
    adapter, _, what = edit_format(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read the edit: {e.strerror or e}", path=path) from None
    text, encoding = _decoded(raw)
    drop, original = False, text
    if adapter == "cmx_3600":
        text, drop = _drop_frame(text, rate)
        text = _for_adapter(text)
    try:
        timeline = _parse(path, adapter, text, rate or _ANY_RATE, names_only=rate is None)
    except UsageError:
        raise
    except Exception as e:  # noqa: BLE001 - the adapters raise what their parsers raise
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        line = _failing_line(path, adapter, text, rate or _ANY_RATE, message, rate is None)
        named = re.match(r"line (\d+): (.*)", message)
        if named:
            line, message = int(named.group(1)), named.group(2)
        where = f"line {line}: " if line and f"line {line}" not in message else ""
        raise UsageError(f"{where}not {what} that can be read: {escape(message)[:300]}", path=path,
                         hint="correct that line, or export the edit again from its application") from None
    return Edit(path, adapter, timeline, rate, drop, original, encoding)


def _decoded(raw: bytes) -> tuple[str, str]:
    """An edit's text and its encoding: UTF-8 where it is, else what older systems write EDLs in
    (Windows' Latin-1, or ISO Latin-1, which any byte is)."""
    for encoding in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            return raw.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise AssertionError("latin-1 decodes every byte")


_EVENT = re.compile(r"\s*\d+\s")
_TC = re.compile(r"\b(\d\d:\d\d:\d\d)[:;](\d\d)\b")
_FIELDS = re.compile(r"(\s*\d+\s+)(\S+)(\s+)(\S+)(\s+)(\S+)(.*)")
# the comments the adapter reads, which it matches in capitals only
_KNOWN = re.compile(r"\s*\*?\s*(FROM CLIP NAME|TO CLIP NAME|FROM CLIP|FROM FILE|LOC|ASC_SOP|ASC_SAT|M2|"
                    r"\* FREEZE FRAME)\b", re.I)


def _for_adapter(text: str) -> str:
    """An EDL's text as the adapter reads it, line for line (a line's number stays the one an error
    names): the adapter takes only capital keywords (TITLE, FCM, channels, edit types, BL, its
    comments) and nothing but TITLE and FCM before the first event, where older tools write
    lower case and notes. Only the reading changes; the relinked EDL is the file's own text."""
    out, started = [], False
    for line in text.splitlines():
        m = _FIELDS.match(line) if _EVENT.match(line) else None
        if m:
            started = True
            reel = m.group(2).upper() if m.group(2).upper() in ("BL", "BLACK", "BARS", "AX") else m.group(2)
            line = m.group(1) + reel + m.group(3) + m.group(4).upper() + m.group(5) + m.group(6).upper() + m.group(7)
        elif not started and line.strip().upper().startswith(("TITLE:", "FCM", "SPLIT")):
            key = "TITLE:" if line.strip().upper().startswith("TITLE:") else "FCM"
            line = key + line.strip()[len(key):] if key == "TITLE:" else line.strip().upper()
        elif not started:
            line = ""  # a note before the first event: the adapter takes it for an event it cannot read
        elif (k := _KNOWN.match(line)) is not None:
            line = line[:k.start(1)] + k.group(1).upper() + line[k.end(1):]
        out.append(line)
    return "\n".join(out) + "\n"


def _drop_frame(text: str, rate: float | None = None) -> tuple[str, bool]:
    """An EDL's text with its event timecodes in drop-frame form where its FCM line says DROP
    FRAME (OpenTimelineIO reads the counting from the ';' alone), and whether it counts drop-frame.
    At a ``rate`` that cannot drop (25, 24: only 29.97 and 59.94 do) an FCM line saying so is
    a template's leftover, and the times are read as they are written."""
    lines = text.splitlines()
    fcm = [line.upper() for line in lines if line.strip().upper().startswith("FCM")]
    can_drop = rate is None or (round(rate) % 30 == 0 and abs(rate - round(rate)) > 1e-3)
    drop = any(";" in m.group(0) for line in lines if _EVENT.match(line) for m in _TC.finditer(line)) or (
        can_drop and bool(fcm) and all("NON-DROP" not in f and "DROP" in f for f in fcm))
    if drop:
        lines = [_TC.sub(r"\1;\2", line) if _EVENT.match(line) else line for line in lines]
    return "\n".join(lines) + "\n", drop


def _relabel(text: str, rate: float, drop: bool) -> str:
    """The adapter writes 29.97 and 59.94 timecodes drop-frame whatever the edit counted: an edit
    that counted non-drop-frame gets its own labels (of the same frames) back."""
    fps = Fraction(rate).limit_denominator(1001)
    if drop or fps.denominator != 1001:
        return text

    def ndf(m: re.Match) -> str:
        tc = Timecode.parse(m.group(0), fps)
        return str(Timecode(tc.frame, tc.rate, False)) if tc is not None else m.group(0)

    return "\n".join(_TC.sub(ndf, line) if _EVENT.match(line) else line for line in text.splitlines()) + "\n"


def clip_names(clip, edl: bool = False) -> list[str]:
    """What an edit calls a clip's media, most specific first: the file its reference names,
    the reference's and the clip's own name (not an EDL's event number, which the adapter gives
    a clip that has no name), the reel. An EDL's clip name comes first: the adapter gives the B
    side of a dissolve the A side's file (the event's ``FROM CLIP`` line), but its own name."""
    names: list[str] = []
    ref = clip.media_reference
    url = getattr(ref, "target_url", None)
    if url:
        parsed = urllib.parse.urlparse(url)
        url = os.path.basename(urllib.parse.unquote(parsed.path) if parsed.scheme == "file" else url)
    own = clip.name if clip.name and not clip.name.isdigit() else None
    order = (own, url, getattr(ref, "name", None)) if edl or not url else (url, getattr(ref, "name", None), own)
    for name in (*order, source_file(clip), reel_of(clip)):
        if name and name not in names:
            names.append(name)
    return names


_SOURCE_FILE = re.compile(r"\s*\*?\s*SOURCE FILE\s*:\s*(.*\S)", re.I)


def source_file(clip) -> str | None:
    """The file name an EDL's ``* SOURCE FILE:`` comment gives (Avid writes it; the adapter keeps
    it as a comment it does not read), without its folder."""
    for comment in (clip.metadata.get("cmx_3600") or {}).get("comments") or []:
        m = _SOURCE_FILE.match(str(comment))
        if m:
            return re.split(r"[\\/]", m.group(1))[-1] or None
    return None


def reel_of(clip) -> str | None:
    """The tape or reel an edit names for a clip (an EDL's reel column, FCP XML's reel)."""
    meta = clip.metadata
    reel = (meta.get("cmx_3600") or {}).get("reel")
    if not reel:
        fcp = meta.get("fcp_xml") or {}
        reel = fcp.get("reel", {}).get("name") if isinstance(fcp.get("reel"), dict) else None
    return str(reel) if reel else None


_EVENT_LINE = re.compile(r"\s*(\d+)\s+(\S+)\s+(\S+)\s+(C|D|W\d+|K[BO]?)\s", re.I)
_NAMING = re.compile(r"\s*\*\s*(FROM|TO) (CLIP NAME|CLIP|FILE)\s*:", re.I)


def _shift_source(line: str, frames: int, fps: Fraction | None) -> str:
    """An event line with its source in and out ``frames`` earlier (its record times as they are)."""
    if not frames or fps is None:
        return line
    found = list(_TC.finditer(line))[:2]  # source in, source out; then record in, record out
    for m in reversed(found):
        tc = Timecode.parse(m.group(0), fps)
        if tc is not None:
            line = line[:m.start()] + str(tc.shifted(-frames)) + line[m.end():]
    return line


def relink_edl(text: str, files: list[tuple[str, int] | None], rate: float | None = None) -> str | None:
    """``text`` (an EDL) with each event that shows a picture naming its enhanced file (``files``,
    one per such event in order: the file's name, and how many frames into its source it begins
    where the source has no timecode, so the event's source times are moved by as much; None
    leaves an event as it is): its clip name and file comments rewritten, every other line
    (title, FCM, record times, audio events, notes) as it was. A dissolve names its A side (the
    picture event before) FROM and its B side TO. None where the events do not pair with ``files``."""
    fps = Fraction(rate).limit_denominator(1001) if rate else None
    header: list[str] = []
    blocks: list[tuple[list[str], list[str]]] = []  # (event lines, comments), one per event number
    number = None
    for line in text.splitlines():
        m = _EVENT_LINE.match(line)
        if m and m.group(1) == number:
            blocks[-1][0].append(line)
        elif m:
            number = m.group(1)
            blocks.append(([line], []))
        elif blocks:
            blocks[-1][1].append(line)
        else:
            header.append(line)
    channels = lambda block: [_EVENT_LINE.match(e).group(3).upper() for e in block[0]]  # noqa: E731
    pictures = [k for k, b in enumerate(blocks) if any("V" in c or c == "B" for c in channels(b))]
    if len(pictures) != len(files):
        return None
    out = list(header)
    k, before = 0, None  # the previous picture event's reel and file
    for index, (events, comments) in enumerate(blocks):
        if index not in pictures:
            out += events + comments
            continue
        f, k = files[k], k + 1
        reel = _EVENT_LINE.match(events[-1]).group(2)
        named: list[str] = []
        # a transition (its last line a dissolve, wipe or key): the cut line is its A side; two cut
        # lines of one number are a split edit's audio and picture, one cut
        if len(events) > 1 and _EVENT_LINE.match(events[-1]).group(4).upper() != "C":
            a = before[1] if before and before[0] == _EVENT_LINE.match(events[0]).group(2) else None
            if a:
                named += [f"* FROM CLIP NAME:  {a[0]}", f"* FROM CLIP: {a[0]}"]
                events = [_shift_source(events[0], a[1], fps)] + events[1:]
            if f:
                named += [f"* TO CLIP NAME:  {f[0]}", f"* TO CLIP: {f[0]}"]
                events = events[:-1] + [_shift_source(events[-1], f[1], fps)]
            drop = ({"FROM"} if a else set()) | ({"TO"} if f else set())
        else:
            named = [f"* FROM CLIP NAME:  {f[0]}", f"* FROM CLIP: {f[0]}"] if f else []
            events = [_shift_source(e, f[1], fps) for e in events] if f else events
            drop = {"FROM", "TO"} if f else set()
        kept = [c for c in comments if not ((m := _NAMING.match(c)) and m.group(1).upper() in drop)]
        # Avid's note of the event's file: an application relinking by it would find the source again
        kept = [f"* SOURCE FILE: {f[0]}" if f and _SOURCE_FILE.match(c) else c for c in kept]
        out += events + named + kept
        before = (reel, f)
    return "\n".join(out) + "\n"


def write_edit(edit: Edit, timeline, path: str, files: list[tuple[str, int] | None] | None = None) -> None:
    """Write the relinked edit (:func:`edit_bytes`) to ``path``, under a temporary name first."""
    atomic_write(path, edit_bytes(edit, timeline, files))


def edit_bytes(edit: Edit, timeline, files: list[tuple[str, int] | None] | None = None) -> bytes:
    """The relinked edit in the edit's own format: an EDL as its own text (in its own encoding)
    with each picture event naming ``files``' entry, else ``timeline`` (the relinked copy of
    ``edit``'s) through the adapter."""
    otio = otio_module()
    text = relink_edl(edit.text, files, edit.rate) if edit.adapter == "cmx_3600" and files is not None else None
    if text is None and edit.adapter == "cmx_3600":  # the adapter writes one video track, no audio events
        text = otio.adapters.write_to_string(timeline, "cmx_3600", rate=edit.rate)
        # the adapter writes no FCM line; an editing application reads the counting from it
        fcm = "FCM: DROP FRAME" if edit.drop_frame else "FCM: NON-DROP FRAME"
        lines = text.splitlines()
        at = 1 if lines and lines[0].startswith("TITLE:") else 0
        text = _relabel("\n".join(lines[:at] + [fcm] + lines[at:]) + "\n", edit.rate, edit.drop_frame)
    elif text is None:
        text = otio.adapters.write_to_string(timeline, edit.adapter)
    encoding = "utf-8"
    if edit.adapter == "cmx_3600" and edit.encoding in ("cp1252", "latin-1"):
        try:  # its own encoding, where the enhanced files' names can be written in it
            text.encode(edit.encoding)
            encoding = edit.encoding
        except UnicodeEncodeError:
            pass
    return text.encode(encoding)
