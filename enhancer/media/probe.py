"""A media file to a :class:`VideoInfo`: with ffprobe where it is found, else from ffmpeg alone."""
from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import asdict, dataclass, field
from fractions import Fraction

from enhancer.errors import ArgumentError, FFmpegError, InputError
from enhancer.media import ffmpeg as ff


@dataclass
class AudioStream:
    index: int  # absolute stream index in the file
    codec: str
    sample_rate: int | None = None
    channels: str | None = None  # layout as ffmpeg names it: mono, stereo, 5.1 ...
    language: str | None = None
    title: str | None = None  # an MP4/MOV track's own name (udta/name), given back to it explicitly


@dataclass
class SubtitleStream:
    index: int
    codec: str
    language: str | None = None
    title: str | None = None  # as AudioStream.title

    @property
    def is_text(self) -> bool:
        return self.codec in TEXT_SUBTITLE_CODECS


@dataclass
class Attachment:
    """A file carried in the container (Matroska fonts for styled subtitles, cover art files)."""

    index: int
    filename: str | None = None
    mimetype: str | None = None


TEXT_SUBTITLE_CODECS = {"subrip", "srt", "ass", "ssa", "mov_text", "webvtt", "text", "microdvd", "subviewer"}


@dataclass
class VideoInfo:
    """What enhancer needs to know about a file before decoding it."""

    path: str
    container: str
    codec: str
    width: int  # as stored (before rotation)
    height: int
    pix_fmt: str
    bit_depth: int
    fps: Fraction  # average frame rate (0 if unknown)
    time_base: Fraction | None
    duration: float | None  # seconds: the video stream's own where the container says, else the file's
    start_time: float
    frame_count: int | None
    frame_count_exact: bool
    sar: Fraction = Fraction(1)
    color_range: str | None = None  # tv | pc
    color_space: str | None = None  # matrix: bt709, bt470bg, smpte170m, bt2020nc ...
    color_primaries: str | None = None
    color_transfer: str | None = None
    rotation: int = 0  # degrees counter-clockwise a player rotates by (as ffprobe reports), 0/90/180/270
    field_order: str = "unknown"  # progressive | tt | bb | tb | bt | unknown
    video_index: int = 0  # absolute index of the video stream decoded
    audio: list[AudioStream] = field(default_factory=list)
    subtitles: list[SubtitleStream] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    chapters: int = 0
    image_sequence: bool = False
    input_args: list[str] = field(default_factory=list)  # ffmpeg options before -i (image sequences)
    probed_with: str = "ffmpeg"
    # the container gave the video stream's own duration (not only the file's, which includes audio)
    stream_duration: bool = False
    video_tags: dict[str, str] = field(default_factory=dict)  # the video stream's tags (language, title ...)
    fps_from: str | None = None  # image sequences: where the rate came from (--fps, fps.txt or assumed)
    timecode: str | None = None  # the start timecode (MOV/MP4 tmcd track, MXF/MKV timecode tag)
    reel_name: str | None = None  # the tape or reel the timecode belongs to, where the file names it
    profile: str | None = None  # the video codec's profile as ffmpeg names it (High, HQ, DNXHR HQX ...)
    # AVI ticks of the video clock whose packet is empty: "show the frame before again" (a VfW
    # capture's dropped frame, Cinepak's unchanged one); the reader shows it again, as players do
    repeats: int = 0
    # the other video streams, left out of the output: "cover art (stream 2, mjpeg)", "video stream 3 (...)"
    others: list[str] = field(default_factory=list)

    @property
    def display_width(self) -> int:
        return self.height if self.rotation in (90, 270) else self.width

    @property
    def display_height(self) -> int:
        return self.width if self.rotation in (90, 270) else self.height

    @property
    def interlaced(self) -> bool | None:
        """True/False where the stream says, None where it does not."""
        if self.field_order == "unknown":
            return None
        return self.field_order != "progressive"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["fps"] = f"{self.fps.numerator}/{self.fps.denominator}"
        d["fps_float"] = round(float(self.fps), 6)
        d["time_base"] = (f"{self.time_base.numerator}/{self.time_base.denominator}"
                          if self.time_base else None)
        d["sar"] = f"{self.sar.numerator}:{self.sar.denominator}"
        d["display_width"], d["display_height"] = self.display_width, self.display_height
        return d


# ---------------------------------------------------------------------------------------------
def bit_depth_of(pix_fmt: str) -> int:
    """Bits per component of an ffmpeg pixel format name (yuv420p10le -> 10, rgb48le -> 16)."""
    m = re.search(r"p(\d{2})(?:le|be)?$", pix_fmt) or re.search(r"(?:y|x|v|ayuv)(\d{2})\d*(?:le|be)$", pix_fmt)
    if m:
        return int(m.group(1))
    if re.match(r"(rgb|bgr)(48|64)|rgba64|bgra64|gray16|ya16|gbrap?16|yuva?4\d\dp16|p016|xyz12", pix_fmt):
        return 16
    if re.match(r"gray(9|10|12|14)", pix_fmt):
        return int(re.match(r"gray(\d+)", pix_fmt).group(1))
    if re.match(r"(p010|y210|xv30|x2rgb10|x2bgr10|v30x)", pix_fmt):
        return 10
    if re.match(r"(p012|y212|xv36)", pix_fmt):
        return 12
    if re.match(r"(grayf32|gbrpf32|gbrapf32|rgbf32|rgbaf32)", pix_fmt):
        return 16
    return 8


_FIELD_ORDERS = {"progressive": "progressive", "top first": "tt", "bottom first": "bb",
                 "top coded first (swapped)": "tb", "bottom coded first (swapped)": "bt",
                 "tt": "tt", "bb": "bb", "tb": "tb", "bt": "bt"}
_COMMON_RATES = {"23.98": Fraction(24000, 1001), "23.976": Fraction(24000, 1001), "29.97": Fraction(30000, 1001),
                 "59.94": Fraction(60000, 1001), "119.88": Fraction(120000, 1001), "47.95": Fraction(48000, 1001)}


def _rate(text: str | None) -> Fraction:
    if not text:
        return Fraction(0)
    text = text.strip()
    if "/" in text:
        num, den = text.split("/", 1)
        return Fraction(int(num), int(den)) if int(den) else Fraction(0)
    if text in _COMMON_RATES:
        return _COMMON_RATES[text]
    mult = 1000 if text.endswith("k") else 1
    try:
        return Fraction(text.rstrip("k")).limit_denominator(1001) * mult
    except ValueError:
        return Fraction(0)


MAX_FPS = 1000  # above this an average frame rate is a container's clock, not a frame rate


def _plausible_rate(avg: Fraction, guessed: Fraction) -> Fraction:
    """The average frame rate, unless it is missing or absurd (raw DV reports its 60 kHz clock as
    "60k fps"); then the rate ffmpeg guessed from the stream (tbr / r_frame_rate)."""
    if avg and avg <= MAX_FPS:
        return avg
    return guessed if guessed and guessed <= MAX_FPS else avg


def _split_top(text: str) -> list[str]:
    """Split on ', ' outside parentheses and brackets."""
    out, depth, cur = [], 0, []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if depth == 0 and text.startswith(", ", i):
            out.append("".join(cur))
            cur = []
            i += 2
            continue
        cur.append(ch)
        i += 1
    out.append("".join(cur))
    return [s.strip() for s in out]


def _check_readable(path: str) -> None:
    if path in ("-", "pipe:", "pipe:0"):
        return
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError("no such file", path=path) from None
    except PermissionError:
        raise InputError("permission denied", path=path, hint="check the file's permissions") from None
    except OSError as e:
        raise InputError(f"cannot open: {e.strerror}", path=path) from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError("is a folder, not a video file", path=path,
                         hint="give a video file (enhance also takes folders, written into an output folder)")
    if st.st_size == 0:
        raise InputError("empty file (0 bytes)", path=path)
    if not os.access(path, os.R_OK):
        raise InputError("permission denied", path=path, hint="check the file's permissions")


def _main_video(videos: list, size):
    """The video stream to enhance where a file holds several (cover art aside): the largest
    picture, the first of equals, as ffmpeg itself picks one. A thumbnail or preview track
    stored first never displaces the film."""
    return max(videos, key=lambda v: size(v)[0] * size(v)[1])


def _no_video(path: str, info_audio: list) -> InputError:
    if info_audio:
        return InputError("has no video stream (an audio-only file)", path=path)
    return InputError("has no video stream", path=path)


# ---------------------------------------------------------------------------------------------
def _banner_tags(block: str) -> dict[str, str]:
    """The ``Metadata:`` section of one stream in ffmpeg's listing, as a dict (side data, such
    as a display matrix, is not metadata and is left out)."""
    tags: dict[str, str] = {}
    indent = None
    for line in block.splitlines()[1:]:
        depth = len(line) - len(line.lstrip())
        if line.strip() == "Metadata:":
            indent = depth
            continue
        if indent is None:
            continue
        if depth <= indent:
            indent = None
            continue
        m = re.match(r"\s*(\S.*?)\s*:\s(.*)$", line)
        if m and m.group(1):
            tags[m.group(1)] = m.group(2).strip()
    return tags


def _parse_ffmpeg_banner(path: str, text: str) -> VideoInfo:
    """Parse the stream listing that ``ffmpeg -i FILE`` prints."""
    container = ""
    m = re.search(r"^Input #0, (.+?), from ", text, re.M)
    if m:
        container = m.group(1)
    duration = None
    start = 0.0
    m = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", text)
    if m:
        duration = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    m = re.search(r"start: (-?\d+(?:\.\d+)?)", text)
    if m:
        start = float(m.group(1))
    chapters = len(re.findall(r"^\s+Chapter #0:\d+", text, re.M))

    # Split into per-stream blocks so side data and metadata stay with their stream.
    blocks = re.split(r"^(?=\s*Stream #0:)", text, flags=re.M)
    videos: list[dict] = []
    audio: list[AudioStream] = []
    subs: list[SubtitleStream] = []
    attachments: list[Attachment] = []
    pics: list[str] = []
    for block in blocks:
        m = re.match(r"\s*Stream #0:(\d+)(?:\[0x[0-9a-fA-F]+\])?(?:\((\w+)\))?: (Video|Audio|Subtitle|Data|Attachment): "
                     r"(.*)", block)
        if not m:
            continue
        idx, lang, kind, rest = int(m.group(1)), m.group(2), m.group(3), m.group(4)
        tokens = _split_top(rest)
        codec = tokens[0].split()[0] if tokens and tokens[0] else "unknown"
        if kind == "Audio":
            sr = next((int(t.split()[0]) for t in tokens if t.endswith(" Hz")), None)
            layout = tokens[2] if len(tokens) > 2 else None
            audio.append(AudioStream(idx, codec, sr, layout, lang if lang != "und" else None))
        elif kind == "Subtitle":
            subs.append(SubtitleStream(idx, codec, lang if lang != "und" else None))
        elif kind == "Attachment":
            fm = re.search(r"^\s+filename\s*:\s*(.*)$", block, re.M)
            mm = re.search(r"^\s+mimetype\s*:\s*(.*)$", block, re.M)
            attachments.append(Attachment(idx, fm.group(1).strip() if fm else None,
                                          mm.group(1).strip() if mm else None))
        elif kind == "Video":
            if "(attached pic)" in rest:
                pics.append(f"cover art (stream {idx}, {codec})")
                continue
            v: dict = {"index": idx, "codec": codec}
            # "prores (HQ) (apch / 0x68637061)": the first bracket that is not the codec tag
            prof = re.match(r"\S+ \(([^()]*)\)", tokens[0] if tokens else "")
            if prof and " / 0x" not in prof.group(1):
                v["profile"] = prof.group(1)
            for t in tokens[1:]:
                sm = re.match(r"(\d+)x(\d+)(?:\s*\[SAR (\d+):(\d+) DAR \d+:\d+\])?", t)
                if sm and "width" not in v:
                    v["width"], v["height"] = int(sm.group(1)), int(sm.group(2))
                    if sm.group(3) and int(sm.group(4)):
                        v["sar"] = Fraction(int(sm.group(3)), int(sm.group(4)))
                    continue
                am = re.match(r"SAR (\d+):(\d+) DAR \d+:\d+$", t)
                if am:  # the container's aspect, where it differs from the codec's: what players use
                    if int(am.group(2)):
                        v["sar"] = Fraction(int(am.group(1)), int(am.group(2)))
                    continue
                pm = re.match(r"([a-z0-9_]+)(?:\((.*)\))?$", t)
                if pm and "pix_fmt" not in v and not re.match(r"\d", t):
                    v["pix_fmt"] = pm.group(1)
                    for part in _split_top(pm.group(2) or ""):
                        if part in ("tv", "pc"):
                            v["color_range"] = part
                        elif part in _FIELD_ORDERS:
                            v["field_order"] = _FIELD_ORDERS[part]
                        elif re.match(r"^[a-z0-9_\-]+(/[a-z0-9_\-]+){0,2}$", part):
                            bits = part.split("/")
                            if len(bits) == 1:
                                bits = bits * 3
                            for key, val in zip(("color_space", "color_primaries", "color_transfer"), bits):
                                if val != "unknown":
                                    v[key] = val
                    continue
                fm = re.match(r"([\d.]+k?) (fps|tbr|tbn)\b", t)
                if fm:
                    v[fm.group(2)] = fm.group(1)
            rm = re.search(r"rotation of (-?\d+(?:\.\d+)?) degrees", block, re.I)
            if rm:
                v["rotation"] = int(round(float(rm.group(1)))) % 360
            v["tags"] = _banner_tags(block)
            if lang:
                v["tags"].setdefault("language", lang)
            nm = re.search(r"^\s+NUMBER_OF_FRAMES(?:-\w+)?\s*:\s*(\d+)", block, re.M)
            if nm:
                v["nb_frames"] = int(nm.group(1))
            dm = re.search(r"^\s+DURATION(?:-\w+)?\s*:\s*(\d+):(\d+):(\d+(?:\.\d+)?)", block, re.M)
            if dm:
                v["duration"] = int(dm.group(1)) * 3600 + int(dm.group(2)) * 60 + float(dm.group(3))
            videos.append(v)
    video = _main_video(videos, lambda v: (v.get("width", 0), v.get("height", 0))) if videos else None
    if video is None or "width" not in video:
        raise _no_video(path, audio)
    fps = _plausible_rate(_rate(video.get("fps")), _rate(video.get("tbr")))
    tbn = _rate(video.get("tbn"))
    vdur = video.get("duration", duration)
    own_duration = "duration" in video
    count = video.get("nb_frames")
    exact = count is not None
    if count is None and vdur and fps:
        count = max(1, int(round(vdur * float(fps))))
    pix_fmt = video.get("pix_fmt", "unknown")
    return VideoInfo(
        path=path, container=container, codec=video["codec"], width=video["width"], height=video["height"],
        pix_fmt=pix_fmt, bit_depth=bit_depth_of(pix_fmt), fps=fps,
        time_base=(1 / tbn) if tbn else None, duration=vdur, start_time=start, frame_count=count,
        frame_count_exact=exact, sar=video.get("sar", Fraction(1)), color_range=video.get("color_range"),
        color_space=video.get("color_space"), color_primaries=video.get("color_primaries"),
        color_transfer=video.get("color_transfer"), rotation=video.get("rotation", 0),
        field_order=video.get("field_order", "unknown"), video_index=video["index"], audio=audio,
        subtitles=subs, attachments=attachments, chapters=chapters, probed_with="ffmpeg",
        stream_duration=own_duration, video_tags=video.get("tags", {}),
        timecode=_banner_value("timecode", text), reel_name=_banner_value("reel_name", text),
        profile=video.get("profile"),
        others=pics + [_other_video(v["index"], v["codec"], v.get("width"), v.get("height"))
                       for v in videos if v is not video])


def _other_video(index: int, codec: str, width: int | None, height: int | None) -> str:
    size = f" {width}x{height}" if width and height else ""
    return f"video stream {index} ({codec}{size})"


def _banner_value(key: str, text: str) -> str | None:
    """A metadata value from ffmpeg's banner: the first anywhere (the video stream and a tmcd track carry the same)."""
    m = re.search(rf"^\s+{key}\s*:\s*(.+?)\s*$", text, re.M | re.I)
    return m.group(1) if m else None


def _probe_ffmpeg(path: str, input_args: list[str]) -> VideoInfo:
    argv = [ff.tools().ffmpeg, "-hide_banner", "-nostdin", *input_args, "-i", _url(path, input_args)]
    try:
        proc = ff.run(argv, path=path, what="probing failed", timeout=120, check=False)
    except FFmpegError as e:
        raise InputError(e.reason, path=path) from None
    text = proc.stderr.decode("utf-8", "replace")
    if not re.search(r"^Input #0", text, re.M):
        reason = ff.crashed(proc.returncode) or ff.summarize(text.splitlines()[-10:])
        raise InputError(f"not a readable video ({reason})", path=path)
    return _parse_ffmpeg_banner(path, text)


def _probe_ffprobe(path: str, ffprobe: str, input_args: list[str]) -> VideoInfo:
    argv = [ffprobe, "-v", "error", *input_args, "-show_format", "-show_streams", "-show_chapters", "-of", "json",
            _url(path, input_args)]
    try:
        proc = ff.run(argv, path=path, what="ffprobe failed", timeout=120)
    except FFmpegError as e:
        reason = ff.summarize(e.stderr_tail) if e.stderr_tail else e.reason
        raise InputError(f"not a readable video ({reason})", path=path) from None
    return from_ffprobe_json(path, json.loads(proc.stdout.decode("utf-8", "replace") or "{}"))


def from_ffprobe_json(path: str, data: dict) -> VideoInfo:
    """A VideoInfo from ffprobe's ``-show_format -show_streams -show_chapters -of json``."""
    fmt = data.get("format", {})
    streams = data.get("streams", [])
    audio = [AudioStream(s["index"], s.get("codec_name", "unknown"), int(s["sample_rate"]) if s.get("sample_rate") else None,
                         s.get("channel_layout"), (s.get("tags") or {}).get("language"))
             for s in streams if s.get("codec_type") == "audio"]
    subs = [SubtitleStream(s["index"], s.get("codec_name", "unknown"), (s.get("tags") or {}).get("language"))
            for s in streams if s.get("codec_type") == "subtitle"]
    attachments = [Attachment(s["index"], (s.get("tags") or {}).get("filename"), (s.get("tags") or {}).get("mimetype"))
                   for s in streams if s.get("codec_type") == "attachment"]
    vids = [s for s in streams if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")]
    if not vids:
        raise _no_video(path, audio)
    v = _main_video(vids, lambda s: (s.get("width") or 0, s.get("height") or 0))
    rotation = 0
    for sd in v.get("side_data_list", []) or []:
        if "rotation" in sd:
            rotation = int(round(float(sd["rotation"]))) % 360
    if not rotation and (v.get("tags") or {}).get("rotate"):
        rotation = (-int((v["tags"])["rotate"])) % 360
    fps = _plausible_rate(_rate(v.get("avg_frame_rate")), _rate(v.get("r_frame_rate")))
    tb = _rate(v.get("time_base")) or None
    own = v.get("duration") not in (None, "N/A")
    dur = v.get("duration") if own else fmt.get("duration")
    dur = float(dur) if dur not in (None, "N/A") else None
    tags = v.get("tags") or {}
    nb = v.get("nb_frames") or next((tags[k] for k in tags if k.upper().startswith("NUMBER_OF_FRAMES")), None)
    count = int(nb) if nb not in (None, "N/A") and str(nb).isdigit() else None
    exact = count is not None and count > 0
    if not exact:
        count = max(1, int(round(dur * float(fps)))) if dur and fps else None
    pix_fmt = v.get("pix_fmt") or "unknown"
    depth = int(v["bits_per_raw_sample"]) if str(v.get("bits_per_raw_sample", "")).isdigit() else bit_depth_of(pix_fmt)
    sar = _rate((v.get("sample_aspect_ratio") or "1:1").replace(":", "/")) or Fraction(1)

    def known(key):
        val = v.get(key)
        return None if val in (None, "unknown", "reserved") else val

    return VideoInfo(
        path=path, container=fmt.get("format_name", ""), codec=v.get("codec_name", "unknown"),
        width=int(v.get("width", 0)), height=int(v.get("height", 0)), pix_fmt=pix_fmt,
        bit_depth=max(depth, bit_depth_of(pix_fmt)), fps=fps, time_base=tb, duration=dur,
        start_time=float(fmt.get("start_time", 0) or 0), frame_count=count, frame_count_exact=exact, sar=sar,
        color_range=known("color_range"), color_space=known("color_space"), color_primaries=known("color_primaries"),
        color_transfer=known("color_transfer"), rotation=rotation,
        field_order=_FIELD_ORDERS.get(v.get("field_order", ""), "unknown"), video_index=int(v["index"]),
        audio=audio, subtitles=subs, attachments=attachments, chapters=len(data.get("chapters", [])),
        probed_with="ffprobe", stream_duration=own, video_tags={str(k): str(val) for k, val in tags.items()},
        timecode=_first_tag("timecode", [v, *streams, fmt]), reel_name=_first_tag("reel_name", [v, *streams, fmt]),
        profile=v.get("profile") if v.get("profile") not in (None, "unknown") else None,
        others=[f"cover art (stream {s['index']}, {s.get('codec_name', 'unknown')})" for s in streams
                if s.get("codec_type") == "video" and (s.get("disposition") or {}).get("attached_pic")]
        + [_other_video(int(s["index"]), s.get("codec_name", "unknown"), s.get("width"), s.get("height"))
           for s in vids if s is not v])


def _first_tag(key: str, holders: list[dict]) -> str | None:
    """The first value of tag ``key`` (any case) among the holders' tags, in order."""
    for h in holders:
        for k, val in (h.get("tags") or {}).items():
            if str(k).lower() == key and str(val).strip():
                return str(val).strip()
    return None


def parse_rate(text: str) -> Fraction:
    """A frame rate as people write it (``25``, ``23.976``, ``30000/1001``); :class:`ArgumentError`
    (a ValueError) if it is not one."""
    try:
        rate = _rate(text)
    except (ValueError, ZeroDivisionError):  # "x/1", "1/y"
        rate = Fraction(0)
    if not 0 < rate <= MAX_FPS:
        raise ArgumentError(f"{text.strip()!r} is not a frame rate: use frames per second such as 25, 23.976 "
                         "or 30000/1001")
    return rate


def sequence_rate(path: str, fps: Fraction | None = None) -> tuple[Fraction, str]:
    """An image sequence's frame rate and where it came from: ``fps`` (``--fps``), else the
    ``fps.txt`` beside the images, else 25 (assumed)."""
    from enhancer.media.sequence import FPS_SIDECAR, sidecar_path

    if fps:
        return Fraction(fps), "--fps"
    sidecar = sidecar_path(path)
    try:
        text = sidecar.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return Fraction(25), "assumed"
    try:
        return parse_rate(text.split()[0] if text else ""), FPS_SIDECAR
    except ArgumentError:
        raise InputError(f"{FPS_SIDECAR} does not hold a frame rate ({text[:40]!r})", path=str(sidecar),
                         hint="write one rate such as 25, 23.976 or 30000/1001, or give --fps") from None


def probe(path: str, *, input_args: list[str] | None = None, use_ffprobe: bool = True,
          fps: Fraction | None = None) -> VideoInfo:
    """Describe the first video stream of ``path`` (and list its audio and subtitle streams).

    ``input_args`` are ffmpeg input options that must precede ``-i`` (image sequences use them).
    ``fps`` is the frame rate of an image sequence (default: its ``fps.txt``, else 25); videos
    keep their own. Raises :class:`InputError` with a one-line reason for anything that is not a
    usable video.
    """
    from enhancer.media.sequence import is_image_sequence, sequence_input

    path = os.fspath(path)
    input_args = list(input_args or [])
    sequence = is_image_sequence(path)
    if sequence:
        rate, rate_from = sequence_rate(path, fps)
        url, input_args = sequence_input(path, f"{rate.numerator}/{rate.denominator}")
    else:
        _check_readable(path)
        url = path
    tools = ff.tools()
    if tools.ffprobe and use_ffprobe:
        info = _probe_ffprobe(url, tools.ffprobe, input_args)
    else:
        info = _probe_ffmpeg(url, input_args)
    if sequence:
        info.image_sequence, info.input_args, info.path = True, input_args, url
        info.fps, info.fps_from = rate, rate_from
        info.frame_count = count_frames(url, input_args=input_args)
        info.frame_count_exact = True
        info.duration = info.frame_count / float(info.fps) if info.fps else None
    if info.width <= 0 or info.height <= 0:
        raise InputError("video stream has no frame size (damaged or unsupported codec)", path=path)
    if not sequence and "mov" in info.container.split(","):
        _add_track_titles(info)
    if not sequence and info.container == "avi":
        _count_repeats(info)
    return info


def _avi_length(path: str) -> int | None:
    """The length, in frames, of an AVI's first video stream as its header ('strh' dwLength) says:
    the ticks of its clock, empty packets included (ffmpeg's banner does not show it)."""
    import struct

    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return None
    at = head.find(b"strh")
    while 0 <= at <= len(head) - 40:
        kind = head[at + 8:at + 12]
        if kind == b"vids":  # fccType, fccHandler, flags, priority+language, initial frames, scale, rate, start, length
            return struct.unpack_from("<I", head, at + 8 + 32)[0]
        at = head.find(b"strh", at + 4)
    return None


def _count_repeats(info: VideoInfo) -> None:
    """An AVI's clock ticks once a frame, and an empty packet on a tick means "the frame before,
    again": decoders give no picture for it, so a film of 444 ticks may decode to 68 pictures.
    Counts those ticks (one read of the packets, no decoding) into ``repeats``, and the frame
    count becomes the ticks', exact: the reader shows each such frame again, as players do."""
    tools = ff.tools()
    argv = [tools.ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-v", "error", "-i", ff.file_arg(info.path),
            "-map", f"0:{info.video_index}", "-c", "copy", "-f", "framecrc", "pipe:1"]
    try:
        proc = ff.run(argv, path=info.path, what="reading the packets failed", timeout=3600)
    except FFmpegError:
        return  # a damaged file: decoding says what is wrong, with the frames it has
    tb, ends = None, []  # "stream, dts, pts, duration, size, checksum": ffmpeg leaves empty packets out
    for line in proc.stdout.splitlines():
        if line.startswith(b"#tb"):
            num, den = line.split(b":")[1].strip().split(b"/")
            tb = Fraction(int(num), int(den))
        elif line.strip() and not line.startswith(b"#"):
            parts = line.split(b",")
            ends.append(int(parts[2]) + max(1, int(parts[3])))
    if not ends or not info.fps or not tb:
        return
    # the last picture's tick, or the stream header's length where empty packets follow it
    total = max(int(round(max(ends) * tb * info.fps)), _avi_length(info.path) or 0)
    if total > len(ends):
        info.repeats = total - len(ends)
        info.frame_count, info.frame_count_exact = total, True


def _add_track_titles(info: VideoInfo) -> None:
    """MP4/MOV track titles, read from the file itself: ffmpeg 5.1's demuxer ignores a track's
    ``udta/name`` and later ones report it as a ``name`` tag, which other containers do not
    know. The output gives each track its title explicitly (see the muxer), whichever ffmpeg."""
    titles = mov_track_titles(info.path)
    if not titles:
        return
    keys = {k.lower() for k in info.video_tags}
    if info.video_index in titles and not keys & {"title", "name"}:
        info.video_tags["title"] = titles[info.video_index]
    for stream in [*info.audio, *info.subtitles]:
        stream.title = titles.get(stream.index)


_CONTAINER_BOXES = {b"moov", b"trak", b"udta"}
_MOOV_LIMIT = 64 << 20  # a moov box larger than this is not read (titles are only a nicety)


def _boxes(buf: bytes, start: int, end: int):
    """(type, payload start, payload end) of the ISO-BMFF boxes in buf[start:end]."""
    off = start
    while off + 8 <= end:
        size = int.from_bytes(buf[off:off + 4], "big")
        kind = buf[off + 4:off + 8]
        head = 8
        if size == 1 and off + 16 <= end:
            size, head = int.from_bytes(buf[off + 8:off + 16], "big"), 16
        elif size == 0:
            size = end - off
        if size < head or off + size > end:
            return
        yield kind, off + head, off + size
        off += size


def mov_track_titles(path: str) -> dict[int, str]:
    """Each MP4/MOV track's title (its ``udta/name``, or a QuickTime ``udta/\xa9nam``), by the
    stream index ffmpeg gives the track (tracks in file order). Empty where there are none or the
    file cannot be read as MP4/MOV."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            total = f.tell()
            off = 0
            moov = None
            while off + 8 <= total:
                f.seek(off)
                head = f.read(16)
                if len(head) < 8:
                    return {}
                size, kind = int.from_bytes(head[:4], "big"), head[4:8]
                hlen = 8
                if size == 1 and len(head) == 16:
                    size, hlen = int.from_bytes(head[8:16], "big"), 16
                elif size == 0:
                    size = total - off
                if size < hlen:
                    return {}
                if kind == b"moov":
                    if size > _MOOV_LIMIT:
                        return {}
                    f.seek(off)
                    moov = f.read(size)
                    break
                off += size
    except OSError:
        return {}
    if moov is None:
        return {}
    titles: dict[int, str] = {}
    index = 0
    for kind, a, b in _boxes(moov, 8, len(moov)):
        if kind != b"trak":
            continue
        for k2, a2, b2 in _boxes(moov, a, b):
            if k2 != b"udta":
                continue
            for k3, a3, b3 in _boxes(moov, a2, b2):
                raw = moov[a3:b3]
                encoding = "utf-8"
                if k3 == b"\xa9nam" and len(raw) >= 4:  # QuickTime: length, language, text
                    if int.from_bytes(raw[2:4], "big") < 0x400:  # a Macintosh language code: Mac Roman text
                        encoding = "mac_roman"
                    raw = raw[4:4 + int.from_bytes(raw[:2], "big")]
                elif k3 != b"name":
                    continue
                text = raw.split(b"\0", 1)[0].decode(encoding, "replace")
                if text.strip():
                    titles.setdefault(index, text)
        index += 1
    return titles


def count_frames(path: str, *, input_args: list[str] | None = None, stream: int | None = None) -> int:
    """Count the video packets of a file without decoding (exact for nearly every container):
    ffprobe's JSON packet count where ffprobe is there, else one line per packet of ffmpeg's
    ``framecrc`` muxer (a documented format every version writes the same way)."""
    input_args = list(input_args or [])
    tools = ff.tools()
    if tools.ffprobe:
        sel = str(stream) if stream is not None else "v:0"
        argv = [tools.ffprobe, "-v", "error", *input_args, "-select_streams", sel, "-count_packets",
                "-show_entries", "stream=nb_read_packets", "-of", "json", _url(path, input_args)]
        proc = ff.run(argv, path=path, what="counting frames failed")
        try:
            streams = json.loads(proc.stdout.decode("utf-8", "replace") or "{}").get("streams") or [{}]
            return int(streams[0]["nb_read_packets"])
        except (ValueError, KeyError, TypeError, AttributeError):
            raise InputError("could not count frames (ffprobe gave no packet count)", path=path) from None
    sel = f"0:{stream}" if stream is not None else "0:v:0"
    argv = [tools.ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-v", "error", *input_args,
            "-i", _url(path, input_args), "-map", sel, "-c", "copy", "-f", "framecrc", "pipe:1"]
    proc = ff.run(argv, path=path, what="counting frames failed")
    # "#tb 0: 1/25" headers, then "stream, dts, pts, duration, size, checksum" per packet
    lines = [line for line in proc.stdout.splitlines() if line.strip() and not line.startswith(b"#")]
    if _is_avi(path):  # ffmpeg leaves an AVI's empty packets out: count its ticks, as ffprobe does
        ends = [int(line.split(b",")[2]) + max(1, int(line.split(b",")[3])) for line in lines]
        return max(len(lines), max(ends, default=0), _avi_length(path) or 0)
    return len(lines)


def _is_avi(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return head[:4] == b"RIFF" and head[8:12] == b"AVI "


def _url(path: str, input_args: list[str]) -> str:
    """Image sequences are read by name pattern (absolute already); files as file: URLs."""
    return path if "image2" in input_args else ff.file_arg(path)
