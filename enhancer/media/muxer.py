"""Enhanced frames in, an encoded file out, with everything else taken from the source.

One path for every video output: an :class:`Encoder` encodes the picture into parts (a short
file is one part), and :func:`assemble` joins the parts without re-encoding and maps the source's
audio and subtitle streams (copied, not re-encoded, where the container allows), its chapters,
metadata and timecode. Frames travel to the encoder as raw RGB inside a tiny Matroska stream (see
:mod:`matroska`), so each keeps its original timestamp (constant and variable frame rate alike).
Files are written under hidden temporary names beside the output and renamed into place only
after ffmpeg succeeded and the frames were counted.
"""
from __future__ import annotations

import dataclasses
import errno
import os
import re
import shutil
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from enhancer.errors import ArgumentError, EnhancerError, FFmpegError, OutputError, UsageError
from enhancer.media import ffmpeg as ff
from enhancer.media.colour import Colour, is_rgb_format
from enhancer.media.matroska import RawMatroskaWriter
from enhancer.media.probe import VideoInfo, bit_depth_of
from enhancer.media.segment import Segment
from enhancer.media.temps import hidden_sibling, publish, temp_path_for

CODECS = ("h264", "h265", "prores", "dnxhr", "ffv1", "mpeg2", "png", "tiff")
IMAGE_CODECS = ("png", "tiff")
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".nut": "nut"}
_VIDEO_OK = {"mp4": {"h264", "h265", "mpeg2"}, "mov": {"h264", "h265", "prores", "dnxhr", "mpeg2"},
             "matroska": {"h264", "h265", "prores", "dnxhr", "ffv1", "mpeg2"},
             "nut": {"h264", "h265", "prores", "dnxhr", "ffv1", "mpeg2"}}
# audio codecs each container takes as they are; others are re-encoded (see _audio_args)
# (ffmpeg's mov muxer cannot write FLAC or Opus, nor its mp4 muxer TrueHD: "Could not write header")
_AUDIO_OK = {"mp4": {"aac", "mp3", "mp2", "ac3", "eac3", "alac", "flac", "opus", "dts"},
             "mov": {"aac", "mp3", "mp2", "ac3", "eac3", "alac", "dts", "pcm_s16le", "pcm_s16be", "pcm_s24le",
                     "pcm_s24be", "pcm_s32le", "pcm_f32le", "pcm_u8", "pcm_mulaw", "pcm_alaw"},
             "matroska": None, "nut": None}  # None: anything
_ATTACHMENTS_OK = {"matroska"}
_LOSSLESS_AUDIO = ("pcm_", "flac", "alac", "truehd", "wavpack", "tta", "ape")
# what each YUV encoder holds (chroma formats, bits per sample): the default output keeps the
# source's chroma and depth where its codec can, and says what it chose where not
_YUV_CAN = {"h264": (("420", "422", "444"), (8, 10)), "h265": (("420", "422", "444"), (8, 10, 12)),
            "prores": (("422", "444"), (10,)), "dnxhr": (("422", "444"), (8, 10)),
            "mpeg2": (("420", "422"), (8,))}
DNXHR_MIN = (256, 120)  # the smallest frame DNxHR encodes (width, height)
_CHROMA_ORDER = ("420", "422", "444")
# stream tags that describe the source's own encoding or container, not the stream: never copied
# (ffmpeg writes its own; a stale frame count or duration would be read back as the truth)
_STALE_TAGS = re.compile(r"(duration|number_of_frames|number_of_bytes|bps|_statistics_\w*|encoder|rotate|"
                         r"vendor_id|timecode)(-\w+)?", re.I)


def check_container(codec: str, output: str | Path) -> None:
    """Refuse, before any work, a codec the output's container cannot hold (FFV1 or ProRes in
    MP4): the encode would otherwise fail at the join, after the whole file was made."""
    container = CONTAINERS.get(Path(output).suffix.lower())
    if container is None or codec in IMAGE_CODECS or codec in _VIDEO_OK[container]:
        return
    fits = sorted(ext for ext, c in CONTAINERS.items() if codec in _VIDEO_OK[c] and ext not in (".m4v", ".nut"))
    raise UsageError(f"{Path(output).suffix.lower()} cannot hold {codec} video", path=str(output),
                     hint=f"name the output {' or '.join(fits)}, or choose another --codec")


def default_extension(codec: str, source_ext: str | None = None) -> str:
    """The container an output gets when the user did not name one: the source's own where it
    can hold the codec, else .mov for ProRes and .mkv otherwise."""
    if codec in IMAGE_CODECS:
        return ""
    src = (source_ext or "").lower()
    if src in CONTAINERS and codec in _VIDEO_OK[CONTAINERS[src]] and src != ".nut":
        return src
    return ".mov" if codec in ("prores", "dnxhr") else ".mkv"


@dataclass
class EncodeOptions:
    """What the user chose about the output encoding."""

    codec: str = "h264"
    crf: int | None = None
    preset: str | None = None
    pix_fmt: str | None = None
    audio: str = "copy"  # copy | aac | none
    subtitles: bool = True
    square_pixels: bool = False  # resample a source with non-square pixels to square ones, same display shape
    # frames x264/x265 look ahead (None: the preset's, 40 at medium), with no sync lookahead and
    # few frame threads (see lean_threads): set by the engine where the encoder would not
    # otherwise fit the memory available (very large outputs); not a choice of the user's, so
    # not part of an output's recipe
    lookahead: int | None = None
    encoder_args: tuple[str, ...] = ()  # the user's own options for the video encoder (check_encoder_args)
    # an exact output size (width, height; either may be None: from the aspect): the model's
    # output is resized to it (lanczos), aspect kept, padded (with a warning) where both are given
    size: tuple[int | None, int | None] | None = None
    # set for --splice (see enhancer.pipeline.splice), not by the user: the encoder's profile
    # (prores_ks/dnxhd names: hq, lt, dnxhr_hqx ...) so a segment matches the source it is put
    # back into, and a mathematically lossless h264/h265 encode
    profile: str | None = None
    lossless: bool = False
    field_order: str | None = None  # tt | bb | tb | bt: encode interlaced (--splice of an interlaced source)

    def __post_init__(self) -> None:
        if self.codec not in CODECS:
            raise ArgumentError(f"codec must be one of {', '.join(CODECS)}")
        if self.audio not in ("copy", "aac", "none"):
            raise ArgumentError("audio must be copy, aac or none")
        if self.crf is not None:  # checked here, not by the encoder once frames are flowing
            low, high = (1, 31) if self.codec == "mpeg2" else (0, 51)  # mpeg2 takes it as -qscale:v
            if isinstance(self.crf, bool) or not isinstance(self.crf, int) or not low <= self.crf <= high:
                raise ArgumentError(f"crf {self.crf!r} is outside {self.codec}'s {low}..{high}")


@dataclass
class MuxPlan:
    """The resolved encoding for one output (computed once the frame size is known)."""

    pix_fmt: str
    video_args: list[str]
    stream_args: list[str]
    pad: tuple[int, int] = (0, 0)  # columns, rows replicated at the right/bottom edge
    warnings: list[str] = field(default_factory=list)


def _needs_even(pix_fmt: str) -> tuple[bool, bool]:
    """(width must be even, height must be even) for a pixel format."""
    if "420" in pix_fmt or pix_fmt in ("nv12", "p010le", "p016le"):
        return True, True
    if "422" in pix_fmt or "411" in pix_fmt:
        return True, False
    return False, False


def chroma_of(pix_fmt: str) -> str:
    """The chroma format of an ffmpeg pixel format: 444 (RGB included), 422, 420, 411, 410, 440,
    or gray (no chroma)."""
    if is_rgb_format(pix_fmt):
        return "444"
    if pix_fmt.startswith(("gray", "ya", "monob", "monow")):
        return "gray"
    m = re.match(r"yuva?j?(4\d\d)", pix_fmt)
    if m:
        return m.group(1)
    if pix_fmt.startswith(("nv16", "nv20", "p21", "y21", "yuyv422", "uyvy422", "yvyu422")):
        return "422"
    if pix_fmt.startswith(("nv24", "nv42", "p41", "xv", "ayuv", "vuya", "vuyx", "v30x")):
        return "444"
    return "420"


# codecs for delivery: 4:2:0 unless --pix-fmt says otherwise, as players and browsers play little
# else (an RGB or 4:4:4 source made 4:4:4 H.264, High 4:4:4, which most cannot)
DELIVERY_CODECS = ("h264", "h265")


def _yuv_format(codec: str, source_pix: str, source_depth: int) -> tuple[str, str | None]:
    """The pixel format that keeps the source's chroma and depth in ``codec``, or the nearest it
    can hold, with a warning saying what was chosen; 4:2:0 (at the source's depth) for delivery
    codecs."""
    chromas, depths = _YUV_CAN[codec]
    src = chroma_of(source_pix)
    # the least chroma that loses nothing: 4:1:1 fits in 4:2:2, 4:1:0 in 4:2:0, 4:4:0 in 4:4:4
    want = {"gray": "420", "411": "422", "410": "420", "440": "444"}.get(src, src)
    if codec in DELIVERY_CODECS:
        src = want = "420"
    chroma = next((c for c in _CHROMA_ORDER[_CHROMA_ORDER.index(want):] if c in chromas), chromas[-1])
    depth = next((d for d in depths if d >= max(8, source_depth)), depths[-1])
    if codec == "dnxhr" and chroma == "444":
        depth = 10  # DNxHR 444 is 10-bit only
    pix = f"yuv{chroma}p" + (f"{depth}le" if depth > 8 else "")
    lost = []
    if _CHROMA_ORDER.index(chroma) < _CHROMA_ORDER.index(want):
        lost.append(f"{src[0]}:{src[1]}:{src[2]} chroma")
    if depth < source_depth:
        lost.append(f"{source_depth}-bit samples")
    if not lost:
        return pix, None
    keep = [c for c, (cs, ds) in _YUV_CAN.items()
            if _CHROMA_ORDER.index(want) <= _CHROMA_ORDER.index(cs[-1]) and ds[-1] >= source_depth] + ["ffv1"]
    choices = ", ".join(keep[:-1]) + f" or {keep[-1]}" if len(keep) > 1 else keep[0]
    return pix, (f"{codec} cannot hold the source's {' and '.join(lost)} ({source_pix}); the output is {pix} "
                 f"(--codec {choices} would keep {'them' if len(lost) > 1 else 'it'})")


# options --encoder-args may not hold: they would change inputs, outputs, timing, length, the
# picture's size, format or colour tags, other streams, or the log enhancer reads its errors from
# (each is enhancer's to set, through its own option or not at all)
_DENIED_OPTIONS = re.compile(
    r"^-(i|f|y|n|map\w*|vf|filter(_complex\w*|_script)?|lavfi|af|an|sn|dn|vn|ss|sseof|t|to|fs|fpsmax|shortest|"
    r"frames\w*|vframes|aframes|fps_mode|vsync|r|s|aspect|pix_fmt|c|codec|vcodec|acodec|scodec|c:[^v].*|codec:[^v].*|"
    r"a[rcq]|b:a\w*|q:a|progress|stdin|nostdin|dump\w*|attach|timecode|metadata\w*|itsoffset|copyts|"
    r"enc_time_base\w*|bitexact|color_\w+|colorspace|streamid|program|v|loglevel|report|pass\w*|vstats\w*|"
    r"h|help|\?|version|buildconf|formats|muxers|demuxers|devices|codecs|decoders|encoders|bsfs|protocols|filters|"
    r"pix_fmts|layouts|sample_fmts|L|sources|sinks|hwaccels)(:.*)?$")
# options that take no value: a word after one of them would be an output file name
_FLAGS = {"-psnr", "-hide_banner", "-stats", "-nostats", "-benchmark", "-benchmark_all", "-copyinkf", "-apad",
          "-re", "-dn", "-xerror", "-ignore_unknown", "-copytb", "-intra", "-deinterlace", "-debug_ts",
          "-qphist", "-shortest_buf_duration", "-autorotate", "-noautorotate", "-autoscale", "-noautoscale",
          "-accurate_seek", "-noaccurate_seek", "-fix_sub_duration"}


def check_encoder_args(args: list[str]) -> tuple[str, ...]:
    """``--encoder-args`` split into options, each followed by one value (or none, for the few
    flags ffmpeg has); raises ValueError (the message names the token) for what enhancer cannot
    allow: an option it manages itself, an option missing its value, or a word that is no
    option's value (ffmpeg would take it for another output file)."""
    out: list[str] = []
    expect_value = False
    for tok in args:
        if not isinstance(tok, str):
            raise ArgumentError(f"{tok!r} is not text")
        is_option = len(tok) > 1 and tok[0] == "-" and (tok[1].isalpha() or tok[1] in "_/?")
        if is_option:
            if expect_value:
                raise ArgumentError(f"{out[-1]} needs a value before {tok}")
            if any(ch.isspace() for ch in tok):
                raise ArgumentError(f"{tok!r}: an option and its value are two words")
            name = "-" + tok[1:].lstrip("/")  # -/opt reads opt's value from a file
            base = name.split(":")[0] if not name.startswith(("-c:", "-codec:")) else name
            if _DENIED_OPTIONS.match(name) or _DENIED_OPTIONS.match(base):
                raise ArgumentError(f"{tok} is set by enhancer itself (see enhancer enhance --help for the option that "
                                 "controls it)")
            expect_value = base not in _FLAGS
        elif expect_value:
            expect_value = False
        else:
            raise ArgumentError(f"{tok!r} is not the value of an option (ffmpeg would write another output file)")
        out.append(tok)
    if expect_value:
        raise ArgumentError(f"{out[-1]} needs a value")
    return tuple(out)


def _merged_params(vargs: list[str], extra: list[str]) -> tuple[list[str], list[str]]:
    """The user's -x264-params / -x265-params appended to enhancer's own (ffmpeg keeps only the last
    of a repeated option, which would drop the memory fitting and x265's quiet log): later keys win
    in x264 and x265, so the user's choices still override enhancer's."""
    extra = list(extra)
    for key in ("-x264-params", "-x265-params"):
        while key in extra:
            k = extra.index(key)
            theirs = extra[k + 1]
            del extra[k:k + 2]
            if key in vargs:
                j = vargs.index(key)
                vargs = vargs[:j + 1] + [f"{vargs[j + 1]}:{theirs}"] + vargs[j + 2:]
            else:
                vargs = vargs + [key, theirs]
    return vargs, extra


def lean_threads(lookahead: int) -> int:
    """Encoder threads beside a shortened lookahead: every frame thread holds frames too (an
    output this large is made far slower by the model than by one encoder thread)."""
    return 4 if lookahead >= 10 else 1


def _video_args(opts: EncodeOptions, depth: int, container: str, source_pix: str = "yuv420p",
                source_depth: int = 8) -> tuple[str, list[str], list[str]]:
    """(pixel format, encoder options, warnings). YUV codecs keep the source's chroma format and
    bit depth where they can (``source_pix``, ``source_depth``); RGB outputs hold every source."""
    c = opts.codec
    notes: list[str] = []
    pix = opts.pix_fmt
    if pix is None and c in _YUV_CAN:
        pix, note = _yuv_format(c, source_pix, source_depth)
        notes += [note] if note else []
    if c == "h264":
        quality = ["-qp", "0"] if opts.lossless else ["-crf", str(opts.crf if opts.crf is not None else 18)]
        args = ["-c:v", "libx264", *quality, "-preset", opts.preset or "medium"]
        if opts.lookahead is not None:
            args += ["-x264-params", f"rc-lookahead={opts.lookahead}:sync-lookahead=0",
                     "-threads:v", str(lean_threads(opts.lookahead))]
    elif c == "h265":
        lean = (f":rc-lookahead={opts.lookahead}:frame-threads={lean_threads(opts.lookahead)}"
                if opts.lookahead is not None else "")
        quality = [] if opts.lossless else ["-crf", str(opts.crf if opts.crf is not None else 20)]
        args = ["-c:v", "libx265", *quality, "-preset", opts.preset or "medium",
                "-x265-params", "log-level=error" + (":lossless=1" if opts.lossless else "") + lean]
        if container in ("mp4", "mov"):
            args += ["-tag:v", "hvc1"]

    elif c == "prores":
        # 4444 for 4:4:4, else 422 HQ
        args = ["-c:v", "prores_ks", "-profile:v", opts.profile or ("4" if chroma_of(pix) == "444" else "3"),
                "-vendor", "apl0"]
        if opts.crf is not None:
            args += ["-qscale:v", str(opts.crf)]
    elif c == "dnxhr":
        pix = pix or "yuv422p"
        profile = "dnxhr_444" if chroma_of(pix) == "444" else ("dnxhr_hqx" if bit_depth_of(pix) > 8 else "dnxhr_hq")
        args = ["-c:v", "dnxhd", "-profile:v", opts.profile or profile]
    elif c == "mpeg2":
        args = ["-c:v", "mpeg2video", "-q:v", str(opts.crf if opts.crf is not None else 4)]
    elif c == "ffv1":
        pix = pix or {8: "gbrp", 10: "gbrp10le", 12: "gbrp12le"}.get(depth, "gbrp16le")
        args = ["-c:v", "ffv1", "-level", "3", "-g", "1", "-slicecrc", "1"]
    elif c == "png":
        pix = pix or ("rgb48be" if depth > 8 else "rgb24")
        args = ["-c:v", "png"]
    else:  # tiff
        pix = pix or ("rgb48le" if depth > 8 else "rgb24")
        args = ["-c:v", "tiff", "-compression_algo", "deflate"]
    if opts.field_order and c in ("h264", "prores", "dnxhr", "mpeg2", "ffv1"):
        # interlaced coding where the codec has it, and the field order on the stream either way
        # (not for x264: its interlaced coding is not lossless at qp 0)
        coding = {"mpeg2": "+ildct+ilme", "prores": "+ildct", "dnxhr": "+ildct"}.get(c)
        args += (["-flags", coding] if coding else []) + ["-field_order", opts.field_order]
    return pix, args, notes


def output_sar(info: VideoInfo) -> Fraction:
    """The pixel aspect ratio of the output's frames: the source's (an upscale scales both axes
    alike, so it does not change), turned with the picture where rotation is applied."""
    sar = info.sar if info.sar and info.sar > 0 else Fraction(1)
    return 1 / sar if info.rotation in (90, 270) else sar


def setsar_filter(sar: Fraction) -> str:
    """The filter that gives frames this pixel aspect ratio, exactly (no rounding to 255ths)."""
    return f"setsar=r={sar.numerator}/{sar.denominator}:max={max(sar.numerator, sar.denominator, 100)}"


def fitted_size(width: int, height: int, aspect: Fraction, want: tuple[int | None, int | None],
                even: tuple[bool, bool]) -> tuple[tuple[int, int], tuple[int, int]]:
    """((picture width, height), (frame width, height)) for ``want``: the picture keeps
    ``aspect`` (display width / height of the stored frame, with the output's pixel shape) inside
    the frame asked for; one side missing follows from the aspect (the frame is then the picture)."""
    def fit(v: Fraction, must_be_even: bool) -> int:
        return max(2, 2 * round(v / 2)) if must_be_even else max(1, round(v))

    ww, wh = want
    if ww and wh:
        if Fraction(ww, wh) > aspect:  # a wider frame: full height, bars left and right
            pic = (fit(wh * aspect, even[0]), wh)
        else:
            pic = (ww, fit(ww / aspect, even[1]))
        return (min(pic[0], ww), min(pic[1], wh)), (ww, wh)
    pic = (ww, fit(ww / aspect, even[1])) if ww else (fit(wh * aspect, even[0]), wh)
    return pic, pic


def encoded_size(info: VideoInfo, opts: EncodeOptions, width: int, height: int,
                 even: tuple[bool, bool] = (False, False)) -> tuple[int, int]:
    """The frame size the encoder is given for a ``width`` x ``height`` picture: the size asked
    for (--size, bars included), else the square-pixel size, else the picture padded to the
    even sizes the pixel format may need (as :func:`plan` makes it)."""
    sar = output_sar(info)
    if opts.size:
        square = opts.square_pixels and sar != 1
        aspect = Fraction(width, height) * (sar if square else 1)
        return fitted_size(width, height, aspect, opts.size, even)[1]
    if opts.square_pixels and sar != 1:
        return square_size(width, height, sar, even)
    return width + (1 if even[0] and width % 2 else 0), height + (1 if even[1] and height % 2 else 0)


# the largest side each encoder takes (x264: 16384; MPEG-2: 14 bits, of which the lower 12 may not
# all be 0, so 4096, 8192 and 12288 are refused too); the others take far larger frames
_MAX_SIDE = {"h264": 16384, "mpeg2": 16383}


def check_frame_size(info: VideoInfo, opts: EncodeOptions, width: int, height: int, path: str | None) -> None:
    """Refuse, before any work, a frame the chosen codec cannot encode: DNxHR's smallest is
    256x120, x264's largest side 16384, MPEG-2's 16383, judged on the size the encoder will be
    given (after --size)."""
    most = _MAX_SIDE.get(opts.codec)
    if most:
        w, h = encoded_size(info, opts, width, height, (True, True))
        if max(w, h) > most or (opts.codec == "mpeg2" and (w % 4096 == 0 or h % 4096 == 0)):
            raise OutputError(f"{opts.codec} cannot encode a {w}x{h} frame (its largest side is {most})", path=path,
                              hint="choose --codec h265, prores or ffv1, a smaller --scale, or a --size")
    if opts.codec != "dnxhr":
        return
    w, h = encoded_size(info, opts, width, height, (True, False))  # DNxHR is 4:2:2 (or 4:4:4)
    if w < DNXHR_MIN[0] or h < DNXHR_MIN[1]:
        larger = "a larger --size, or " if opts.size else ""
        raise OutputError(f"DNxHR needs frames of at least {DNXHR_MIN[0]}x{DNXHR_MIN[1]}; this output is {w}x{h}",
                          path=path, hint=f"choose {larger}--codec prores or ffv1 for a frame this small")


def square_size(width: int, height: int, sar: Fraction, even: tuple[bool, bool]) -> tuple[int, int]:
    """The frame size that shows ``width`` x ``height`` pixels of aspect ``sar`` with square
    pixels: wide pixels widen the frame, tall ones heighten it (no detail is dropped)."""
    w, h = (width * sar, Fraction(height)) if sar >= 1 else (Fraction(width), height / sar)

    def fit(v: Fraction, must_be_even: bool) -> int:
        return max(2, 2 * round(v / 2)) if must_be_even else max(1, round(v))
    return fit(w, even[0]), fit(h, even[1])


def video_tag_args(info: VideoInfo) -> list[str]:
    """Output options that give the video stream the source's own tags (language, title,
    handler ...). Rotation is applied to the picture, so it is not copied, nor are tags that
    describe the source's encoding (its encoder, frame count, duration, statistics)."""
    args: list[str] = []
    keys = {k.lower() for k in info.video_tags}
    for key, value in info.video_tags.items():
        if _STALE_TAGS.fullmatch(key) or "=" in key:
            continue
        if key.lower() == "name" and "title" not in keys:
            key = "title"  # MP4/MOV keep a track's title as its "name", which other muxers do not know
        args += ["-metadata:s:v:0", f"{key}={value}"]
    return args


def _audio_args(info: VideoInfo, opts: EncodeOptions, container: str, warnings: list[str]) -> list[str]:
    args: list[str] = []
    if opts.audio == "none" or container == "image2":
        if info.audio and container == "image2":
            warnings.append("image sequences carry no audio; the audio was left out")
        return args
    ok = _AUDIO_OK.get(container)
    for out_i, a in enumerate(info.audio):
        args += ["-map", f"1:{a.index}"]
        if opts.audio == "aac":
            args += [f"-c:a:{out_i}", "aac", f"-b:a:{out_i}", "256k"]
        elif ok is None or a.codec in ok:
            args += [f"-c:a:{out_i}", "copy"]
        elif a.codec.startswith(_LOSSLESS_AUDIO) and container in ("mp4", "mov"):
            args += [f"-c:a:{out_i}", "alac"]
            warnings.append(f"audio stream {a.index} ({a.codec}) cannot be copied into {container}; "
                            "re-encoded losslessly to ALAC (use .mkv to copy it as it is)")
        else:
            args += [f"-c:a:{out_i}", "aac", f"-b:a:{out_i}", "256k"]
            warnings.append(f"audio stream {a.index} ({a.codec}) cannot be copied into {container}; "
                            "re-encoded to AAC 256k (use .mkv to copy it as it is)")
        args += _title_args("a", out_i, a.title)
    if container == "mp4" and opts.audio != "aac" and any(a.codec in ("flac", "opus") for a in info.audio):
        # ffmpeg before 6 writes FLAC and Opus into MP4 only as an "experimental feature"
        args += ["-strict", "experimental"]
    return args


def _title_args(kind: str, out_i: int, title: str | None) -> list[str]:
    """An MP4/MOV track's title given explicitly (ffmpeg 5.1 does not read it), and the ``name``
    tag that later ffmpegs copy from it removed (it would be a second title in Matroska)."""
    if not title:
        return []
    return [f"-metadata:s:{kind}:{out_i}", f"title={title}", f"-metadata:s:{kind}:{out_i}", "name="]


def _subtitle_args(info: VideoInfo, opts: EncodeOptions, container: str, warnings: list[str]) -> list[str]:
    args: list[str] = []
    if not opts.subtitles or container == "image2":
        if info.subtitles and container == "image2":
            warnings.append("image sequences carry no subtitles; they were left out")
        return args
    if container == "nut" and info.subtitles:
        # NUT keeps a subtitle's start but not its duration (each line would flash, or last to the
        # next), and has no tag at all for SubRip, WebVTT or plain text
        warnings.append(f"{len(info.subtitles)} subtitle stream(s) left out: NUT cannot hold subtitles with their "
                        "durations (use .mkv to keep them)")
        return args
    out_i = 0
    for s in info.subtitles:
        if container in ("mp4", "mov"):
            if not s.is_text:
                warnings.append(f"subtitle stream {s.index} ({s.codec}) is a picture format {container} cannot "
                                "hold; left out (use .mkv to keep it)")
                continue
            codec = "copy" if s.codec == "mov_text" else "mov_text"
        else:
            codec = "srt" if s.codec == "mov_text" else "copy"
        args += ["-map", f"1:{s.index}", f"-c:s:{out_i}", codec] + _title_args("s", out_i, s.title)
        out_i += 1
    return args


def _attachment_args(info: VideoInfo, opts: EncodeOptions, container: str, warnings: list[str]) -> list[str]:
    """Attachments (fonts for styled subtitles, mostly) go into Matroska as they are; other
    containers cannot hold them, which a warning says."""
    if not info.attachments:
        return []
    if container in _ATTACHMENTS_OK:
        args: list[str] = []
        for a in info.attachments:
            args += ["-map", f"1:{a.index}"]
        return args + ["-c:t", "copy"]
    if container != "image2":
        names = ", ".join(a.filename or f"#{a.index}" for a in info.attachments[:3])
        more = f" and {len(info.attachments) - 3} more" if len(info.attachments) > 3 else ""
        warnings.append(f"{len(info.attachments)} attachment(s) ({names}{more}) cannot be held by {container}; "
                        "left out (use .mkv to keep them)")
    return []


def plan(info: VideoInfo, opts: EncodeOptions, container: str, colour: Colour, width: int, height: int,
         depth: int) -> MuxPlan:
    """Decide encoder, pixel format, padding and stream mapping for one output."""
    warnings: list[str] = []
    if container != "image2" and opts.codec not in _VIDEO_OK.get(container, set()):
        raise OutputError(f"the {container} container cannot hold {opts.codec} video",
                          hint="choose another --codec or output extension (.mkv holds them all)")
    pix, vargs, notes = _video_args(opts, depth, container, info.pix_fmt, info.bit_depth)
    warnings += notes
    if opts.codec in ("h264", "h265") and opts.lookahead is not None:
        warnings.append(f"the encoder looks ahead {opts.lookahead} frames (not its preset's 40) to fit the memory "
                        "available for an output this large (a slightly larger file at the same quality)")
    even_w, even_h = _needs_even(pix)
    sar = output_sar(info)
    resize = ""
    pad = (0, 0)
    if opts.size:
        # the model's output resized to the size asked for, aspect kept (the display aspect where
        # pixels are made square), bars only where both sides were given and the aspects differ
        square = opts.square_pixels and sar != 1
        aspect = Fraction(width, height) * (sar if square else 1)
        (pw, ph), (fw, fh) = fitted_size(width, height, aspect, opts.size, (even_w, even_h))
        if (fw % 2 and even_w) or (fh % 2 and even_h):
            raise OutputError(f"{pix} needs an even size; {fw}x{fh} was asked for",
                              hint="give even numbers to --size, or --pix-fmt yuv444p")
        resize = f"scale={pw}:{ph}:flags=lanczos+accurate_rnd+full_chroma_int,"
        if (pw, ph) != (fw, fh):
            resize += f"pad={fw}:{fh}:{(fw - pw) // 2}:{(fh - ph) // 2}:black,"
            warnings.append(f"the picture ({pw}x{ph}) keeps its aspect inside the {fw}x{fh} asked for: black "
                            f"bars fill the rest (give only --width or --height for no bars)")
        if square:
            sar = Fraction(1)
    elif opts.square_pixels and sar != 1:
        # resampled to square pixels (to an even size where the format needs one: no padding)
        sw, sh = square_size(width, height, sar, (even_w, even_h))
        resize = f"scale={sw}:{sh}:flags=lanczos+accurate_rnd+full_chroma_int,"
        sar = Fraction(1)
    else:
        pad = (1 if even_w and width % 2 else 0, 1 if even_h and height % 2 else 0)
    if any(pad):
        warnings.append(f"{pix} needs even dimensions: {width}x{height} padded to "
                        f"{width + pad[0]}x{height + pad[1]} by repeating the edge "
                        "(use --pix-fmt yuv444p to keep the exact size)")
    # the pixel aspect ratio travels as a frame property (the raw pipe carries none)
    setsar = setsar_filter(sar)
    rgb_out = pix.startswith(("gbr", "rgb", "bgr"))
    if not rgb_out and opts.codec not in IMAGE_CODECS:
        # any YUV output: the exact conversion with the source's matrix and range, whatever the codec
        conv = (f"{resize}scale=out_color_matrix={colour.sws_matrix}:out_range={colour.range}"
                f":flags=bicubic+accurate_rnd+full_chroma_int,format={pix},{colour.setparams()},{setsar}")
        vargs = ["-vf", conv, *vargs, "-pix_fmt", pix, *colour.tag_args()]
    else:
        vargs = ["-vf", resize + setsar, *vargs, "-pix_fmt", pix]
        if container != "image2":
            tags = ["-color_primaries", colour.primaries] if colour.primaries else []
            tags += ["-color_trc", colour.trc_option] if colour.transfer else []
            vargs += tags + ["-colorspace", "rgb"]
    streams = (_audio_args(info, opts, container, warnings) + _subtitle_args(info, opts, container, warnings)
               + _attachment_args(info, opts, container, warnings))
    vargs, extra = _merged_params(vargs, list(opts.encoder_args))
    vargs += extra  # last: the user's options override the defaults above
    return MuxPlan(pix_fmt=pix, video_args=vargs, stream_args=streams, pad=pad, warnings=warnings)


TIMECODE_SIDECAR = "timecode.txt"


def timecode_args(source: VideoInfo, container: str, first: Fraction | float) -> list[str]:
    """Options that give an output the source's timecode (and reel name), shifted to the output's
    first frame, ``first`` seconds after the source's first: a tmcd track in MOV/MP4 (the reel
    name in MOV only: ffmpeg's mp4 muxer cannot write one), tags in Matroska."""
    from enhancer.media import timecode

    tc = timecode.at(source.timecode, source.fps, float(first))
    if tc is None or container not in ("mp4", "mov", "matroska"):
        return []
    args = ["-timecode", tc]
    if source.reel_name:
        args += ["-metadata:s:v:0" if container == "mov" else "-metadata", f"reel_name={source.reel_name}"]
    return args


def join_args(video_input: list[str], first: Fraction, container: str, source: VideoInfo, opts: EncodeOptions,
              colour: Colour, time_base: Fraction | None, segment: Segment) -> tuple[list[str], list[str]]:
    """The one place the source's other streams are mapped: ffmpeg options (up to the output
    name) that put the encoded picture (input 0, ``video_input``: the parts' list, or a stream
    on a pipe, its own timeline starting at its first frame) at ``first`` seconds after the
    segment's origin and add the source's audio, subtitles, attachments, chapters, metadata,
    stream tags and timecode, without re-encoding the picture. Returns (argv, warnings)."""
    # for the streams it maps (the picture's size and its warnings are the encoder's own)
    mplan = plan(source, dataclasses.replace(opts, size=None), container, colour, 16, 16,
                 source.bit_depth if source.bit_depth > 8 else 8)
    argv = [ff.tools().ffmpeg, "-hide_banner", "-nostats", "-nostdin", "-loglevel", "error", "-y"]
    if first:
        argv += ["-itsoffset", f"{float(first):.9f}"]
    argv += video_input
    if not source.image_sequence:
        argv += [*segment.input_args(), "-i", ff.file_arg(source.path)]
    argv += ["-map", "0:v:0"]
    if not source.image_sequence:
        argv += mplan.stream_args + ["-map_metadata", "1", "-map_chapters", "1"]
    argv += ["-c:v", "copy", "-fps_mode", "passthrough"] + colour.tag_args()
    if segment.start and not source.image_sequence:
        # a seek copies the source's audio and subtitle packets from the key frame before the
        # segment, at negative times: Matroska cannot hold those and moves the whole file later
        # (the picture seconds after the sound), MP4 keeps them as an edit. Packets that end by
        # the segment's start go; the one across it stays, as a whole file's lead-in does.
        for kind, streams in (("a", source.audio), ("s", source.subtitles)):
            if streams:
                argv += [f"-bsf:{kind}", "noise=drop=lte((pts+duration)*tb\\,0)"]
    if opts.field_order:  # the parts' NUT does not carry it
        argv += ["-field_order", opts.field_order]
    if not source.image_sequence:
        argv += video_tag_args(source) + timecode_args(source, container, (segment.start or 0) + first)
    if container in ("mp4", "mov"):
        if time_base and time_base.numerator == 1 and time_base.denominator <= 10_000_000:
            argv += ["-video_track_timescale", str(time_base.denominator)]
        argv += ["-movflags", "+faststart" if container == "mp4" else "+write_colr"]
        if opts.codec == "h265":
            argv += ["-tag:v", "hvc1"]
    return argv + ["-f", container], mplan.warnings


def short_join(output: str | Path, joined: int | None, expected: int) -> OutputError:
    """The error for a joined file that does not hold every frame encoded, or cannot be read back
    (``joined`` None): a full disk, most often."""
    hint = "run the same command again to redo this file"
    try:
        free = shutil.disk_usage(Path(output).parent).free
        if free < 64 << 20:
            hint = f"the disk holding it has {free / 2**20:.1f} MB free: free some space, then run the same command again"
    except OSError:
        pass
    what = "cannot be read back" if joined is None else f"holds {joined} frames"
    return OutputError(f"the joined output {what}, not the {expected} frames that were encoded",
                       path=str(output), hint=hint)


def assemble(parts: list[Path], starts: list[Fraction], output: Path, source: VideoInfo, opts: EncodeOptions,
             colour: Colour, time_base: Fraction | None, *, segment: Segment | None = None,
             expect_frames: int | None = None) -> list[str]:
    """Join encoded parts (each starting with a key frame, its own timeline starting at its first
    frame) without re-encoding, at the exact times in ``starts`` (each part's first frame,
    relative to the segment's origin), with the source's other streams (:func:`join_args`).
    Writes ``output`` via a temporary name (where, with ``expect_frames``, the frames are counted
    first: a join that lost or repeated any never takes the output's name) and returns the
    warnings."""
    segment = segment or Segment()
    ext = output.suffix.lower()
    container = CONTAINERS.get(ext)
    if container is None:
        raise OutputError(f"unknown output extension {ext}", path=str(output))
    # the list lies beside the parts and names them relative to itself: a line break in a folder's
    # or the output's name cannot be written in a concat list (a part named with one is linked)
    where = parts[0].parent if all(p.parent == parts[0].parent for p in parts) else output.parent
    listing = where / hidden_sibling(output, f".{os.getpid()}.ffconcat").name
    lines = ["ffconcat version 1.0"]
    links: list[Path] = []
    for k, part in enumerate(parts):
        name = part.name if part.parent == where else str(part.resolve())
        if "\n" in name or "\r" in name:
            link = temp_path_for(where / f"join{k}{part.suffix}")
            try:
                os.link(part, link)
            except OSError:
                os.symlink(part.resolve(), link)
            links.append(link)
            name = link.name
        lines.append("file '" + name.replace("'", "'\\''") + "'")
        if k + 1 < len(parts):
            lines.append(f"duration {float(starts[k + 1] - starts[k]):.6f}")
    temp = temp_path_for(output)
    argv, warnings = join_args(["-f", "concat", "-safe", "0", "-i", ff.file_arg(listing)], starts[0], container,
                               source, opts, colour, time_base, segment)
    argv.append(ff.file_arg(temp))
    try:
        try:
            listing.write_text("\n".join(lines) + "\n")
        except OSError as e:
            raise OutputError(f"cannot write beside the output: {e.strerror}", path=str(output),
                              hint="free some disk space or choose another output folder" if e.errno == errno.ENOSPC
                              else None) from None
        ff.run(argv, path=str(output), what="joining the parts failed")
        if expect_frames is not None:
            from enhancer.media.probe import count_frames

            try:
                joined = count_frames(str(temp))
            except EnhancerError:
                joined = None
            if joined != expect_frames:
                raise short_join(output, joined, expect_frames)
        publish(temp, output)
    finally:
        listing.unlink(missing_ok=True)
        temp.unlink(missing_ok=True)
        for link in links:
            link.unlink(missing_ok=True)
    return warnings


_MPEG2_RATES = tuple(Fraction(n, d) for n, d in ((24000, 1001), (24, 1), (25, 1), (30000, 1001), (30, 1), (50, 1),
                                                   (60000, 1001), (60, 1)))


def mpeg2_rate(fps: Fraction) -> tuple[Fraction, list[str]]:
    """The frame rate an MPEG-2 encode runs at, and the options it needs. A rate within 0.1 % of
    a standard one is that rate (29.97 written as 2997/100 is 30000/1001); any other needs the
    encoder's unofficial rate extension."""
    near = min(_MPEG2_RATES, key=lambda r: abs(r - fps))
    if abs(near - fps) <= near / 1000:
        return near, []
    return fps, ["-strict", "unofficial"]


def container_of(output: str | Path, images: str = "or --codec png|tiff for images") -> str:
    """The container ffmpeg writes for an output file, by its extension (a UsageError for one it
    does not write; ``images`` ends the hint: how the caller writes pictures, if it can)."""
    ext = Path(output).suffix.lower()
    if ext not in CONTAINERS:
        raise UsageError(f"unknown output extension {ext or '(none)'}", path=str(output),
                         hint=f"use one of {', '.join(sorted(CONTAINERS))}" + (f", {images}" if images else ""))
    return CONTAINERS[ext]


class _Output:
    """``with``: finish (``close``) on success; on any error, Ctrl-C included, leave nothing
    behind (``abort``)."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class Encoder(_Output):
    """Encode frames, the picture only, to one file (a part) or to a folder of PNG/TIFF frames.

    Call :meth:`write` for each frame in presentation order, then :meth:`close` (which renames the
    finished file into place) or :meth:`abort` (which removes every temporary trace). The file's
    own timeline starts at its first frame; :func:`assemble` places it at that frame's time and
    maps the source's other streams. Image outputs keep the rate (and timecode) in sidecars.
    """

    def __init__(self, output: str, source: VideoInfo, opts: EncodeOptions, colour: Colour, *,
                 segment: Segment | None = None, label: str | None = None):
        self.source = source
        self.opts = opts
        self.colour = colour
        self.to_pipe = output == "-"  # NUT on the process's stdout (``stdout``), for a join that streams
        self.final = Path(output)
        self.label = label or output  # the name errors give: the user's output, not a part's
        self.image_sequence = opts.codec in IMAGE_CODECS
        if self.image_sequence:
            self.container = "image2"
        elif self.to_pipe:
            self.container = "nut"
        else:
            self.container = container_of(output)
        self.segment = segment or Segment()
        self.temp: Path | None = None
        self.proc: ff.Process | None = None
        self.writer: RawMatroskaWriter | None = None
        self.plan: MuxPlan | None = None
        self.frames = 0
        self.time_base: Fraction | None = None  # the clock of the frames written
        self.first: Fraction | None = None  # the first frame's time after the segment's origin
        self._shift = Fraction(0)
        self._origin = Fraction(0)
        self._closed = False
        self._lock = threading.Lock()

    @property
    def warnings(self) -> list[str]:
        found = list(self.plan.warnings) if self.plan else []
        went_back = getattr(getattr(self, "writer", None), "went_back", 0)
        if went_back:
            found.append(f"{went_back} frame(s) came with a timestamp before the previous frame's (files joined end "
                         "to end, or a clock that restarted): they follow on at the frame rate")
        return found

    def _start(self, image: np.ndarray, pts: int, time_base: Fraction) -> None:
        h, w = image.shape[:2]
        depth = 16 if image.dtype == np.uint16 else 8
        # the picture only: plan (and warn) without the source's other streams, which the join
        # maps; image frames hold none, and their warnings say what was left out
        source = self.source if self.image_sequence else \
            dataclasses.replace(self.source, audio=[], subtitles=[], attachments=[])
        check_frame_size(self.source, self.opts, w, h, self.label)
        self.plan = plan(source, self.opts, self.container, self.colour, w, h, depth)
        # times relative to the segment's origin (the source's first frame, or the segment's start);
        # ffmpeg (without -copyts) then starts this file's timeline at its first frame
        origin = self.segment.origin(self.source.start_time)
        self._origin = origin
        self.time_base = time_base
        rel0 = pts * time_base - origin
        self.first = rel0
        self._shift = -rel0 if rel0 < 0 else Fraction(0)
        argv = [ff.tools().ffmpeg, "-hide_banner", "-nostats", "-loglevel", "error", "-y",
                "-f", "matroska", "-i", "pipe:0", "-map", "0:v:0"]
        argv += self.plan.video_args + ["-fps_mode", "passthrough"]
        if self.opts.codec == "mpeg2" and self.source.fps:
            # MPEG-2 only knows the standard frame rates: encode on the frame period
            rate, extra = mpeg2_rate(self.source.fps)
            argv += ["-enc_time_base:v", f"{rate.denominator}/{rate.numerator}", *extra]
        elif self.container != "image2":
            # the source's clock, said explicitly: ffmpeg 5.1 encodes on 1/frame rate by default,
            # which moves frames of a segment or a part that does not start on that grid
            argv += ["-enc_time_base:v", f"{time_base.numerator}/{time_base.denominator}"]
        if self.to_pipe:
            argv += ["-f", "nut", "pipe:1"]
        elif self.image_sequence:
            self.temp = temp_path_for(self.final)
            self.temp.mkdir(parents=True)
            pattern = self.temp / ("frame_%06d." + ("png" if self.opts.codec == "png" else "tif"))
            argv += ["-f", "image2", "-start_number", "0", ff.file_arg(pattern)]
        else:
            self.temp = temp_path_for(self.final)
            argv += ["-f", self.container, ff.file_arg(self.temp)]
        self.proc = ff.Process(argv, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE if self.to_pipe else subprocess.DEVNULL,
                               path=self.label, what="encoding failed")
        fps = self.source.fps
        self.writer = RawMatroskaWriter(self.proc.stdin, w + self.plan.pad[0], h + self.plan.pad[1], depth,
                                        frame_duration=(1 / fps) if fps else None)

    def write(self, image: np.ndarray, pts: int, time_base: Fraction) -> None:
        """Encode one (H, W, 3) RGB frame shown at ``pts * time_base`` seconds."""
        if self.proc is None:
            with self._lock:  # never start after (or while) another thread aborts
                if self._closed:
                    raise OutputError("output was aborted", path=self.label)
                try:
                    self._start(image, pts, time_base)
                except OSError as e:
                    raise OutputError(f"cannot write output: {e.strerror}", path=self.label) from None
        if any(self.plan.pad):
            image = np.pad(image, ((0, self.plan.pad[1]), (0, self.plan.pad[0]), (0, 0)), mode="edge")
        try:
            t = pts * time_base - self._origin + self._shift
            self.writer.write(np.ascontiguousarray(image), t.numerator, Fraction(1, t.denominator))
        except OSError:  # ffmpeg went away (broken pipe): its stderr says why
            self.proc.wait(timeout=30)
            raise self._error() from None
        self.frames += 1

    def _error(self) -> FFmpegError:
        err = self.proc.error()
        low = " ".join(err.stderr_tail).lower()
        if "no space left" in low or "file too large" in low:
            err.hint = "free some disk space or choose another output folder"
        return err

    def close(self) -> Path | None:
        """Finish encoding and move the file into place. Returns its path (None for a pipe)."""
        if self._closed:
            return None if self.to_pipe else self.final
        if self.proc is None:
            raise OutputError("no frames to encode", path=self.label)
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        if self.proc.wait() != 0:
            err = self._error()
            self.abort()
            raise err
        if self.frames == 0:
            self.abort()
            raise OutputError("no frames were encoded", path=self.label)
        self._closed = True
        if self.to_pipe:
            return None
        if self.image_sequence and self.source.fps:
            # the rate goes with the frames, where enhancer (and the next run) reads it back
            from enhancer.media.sequence import FPS_SIDECAR

            fps = self.source.fps
            (self.temp / FPS_SIDECAR).write_text(f"{fps.numerator}/{fps.denominator}\n" if fps.denominator != 1
                                                 else f"{fps.numerator}\n")
            from enhancer.media import timecode

            tc = timecode.at(self.source.timecode, fps, float((self.segment.start or 0) + self.first))
            if tc:  # no convention for PNG/TIFF names: the first frame's timecode beside fps.txt
                (self.temp / TIMECODE_SIDECAR).write_text(tc + (f"\nreel_name={self.source.reel_name}"
                                                               if self.source.reel_name else "") + "\n")
        # a frame folder already there is set aside and removed once the new one took its name
        aside = (hidden_sibling(self.final, f".old-{os.getpid()}-{uuid.uuid4().hex[:6]}") if self.image_sequence
                 else None)
        publish(self.temp, self.final, aside=aside)
        return self.final

    def abort(self) -> None:
        """Stop ffmpeg and remove the temporary output."""
        with self._lock:
            self._abort()

    def _abort(self) -> None:
        self._closed = True
        if self.proc is not None:
            self.proc.kill()
        if self.temp is not None and self.temp.exists():
            if self.temp.is_dir():
                shutil.rmtree(self.temp, ignore_errors=True)
            else:
                try:
                    self.temp.unlink()
                except OSError:
                    pass


PART_NAME = "part_{:05d}.nut"  # a part: the picture only, in NUT (it holds every codec enhancer writes)


class Muxer(_Output):
    """Encode frames to ``output`` with everything else taken from the source, by the one path of
    every output: the picture encoded by an :class:`Encoder`, then joined with the source's other
    streams by :func:`join_args`. A file is one part in a hidden folder beside the output, joined
    by :func:`assemble` (which counts the frames before the output takes its name), as the parts
    of a long file are. ``-`` streams Matroska to stdout as the frames come: the encoder's NUT
    goes on a pipe straight into the join. A folder for PNG/TIFF frames has no other streams.
    Same calls as :class:`Encoder`."""

    def __init__(self, output: str, source: VideoInfo, opts: EncodeOptions, colour: Colour, *,
                 segment: Segment | None = None):
        self.source, self.opts, self.colour = source, opts, colour
        self.segment = segment or Segment()
        self.to_stdout = output == "-"
        self.final = None if self.to_stdout else Path(output)
        self.image_sequence = opts.codec in IMAGE_CODECS
        self.work: Path | None = None
        self.joiner: ff.Process | None = None
        self._join_warnings: list[str] = []
        self._done = False
        if self.image_sequence:
            if self.to_stdout:
                raise OutputError("PNG/TIFF frames cannot go to stdout", path="-",
                                  hint="give a folder with -o, or a video codec")
            self.encoder = Encoder(output, source, opts, colour, segment=self.segment)
            return
        if self.to_stdout:
            self.container = "matroska"
        else:
            self.container = container_of(output)
        if self.opts.codec not in _VIDEO_OK.get(self.container, set()):
            raise OutputError(f"the {self.container} container cannot hold {opts.codec} video", path=output,
                              hint="choose another --codec or output extension (.mkv holds them all)")
        if self.to_stdout:
            self.encoder = Encoder("-", source, opts, colour, segment=self.segment, label="-")
            return
        self.work = temp_path_for(self.final)  # a temporary the sweep knows (.NAME.partial-PID-...)
        try:
            self.work.mkdir(parents=True)
        except OSError as e:
            raise OutputError(f"cannot write output: {e.strerror}", path=output,
                              hint="free some disk space or choose another output folder" if e.errno == errno.ENOSPC
                              else "choose an output folder you can write to") from None
        self.encoder = Encoder(str(self.work / PART_NAME.format(0)), source, opts, colour, segment=self.segment,
                               label=output)

    @property
    def frames(self) -> int:
        return self.encoder.frames

    @property
    def warnings(self) -> list[str]:
        return list(dict.fromkeys(self.encoder.warnings + self._join_warnings))

    def write(self, image: np.ndarray, pts: int, time_base: Fraction) -> None:
        """Encode one (H, W, 3) RGB frame shown at ``pts * time_base`` seconds."""
        try:
            self.encoder.write(image, pts, time_base)
        except FFmpegError as e:
            raise self._blame(e) from None
        if self.to_stdout and self.joiner is None:
            self._start_join()

    def _start_join(self) -> None:
        """The join for stdout, reading the encoder's NUT as it comes (started with the first frame,
        when the picture's clock and first time are known)."""
        argv, self._join_warnings = join_args(["-f", "nut", "-i", "pipe:0"], self.encoder.first, "matroska",
                                              self.source, self.opts, self.colour, self.encoder.time_base,
                                              self.segment)
        try:
            out = sys.stdout.fileno()
        except (AttributeError, OSError, ValueError):
            raise OutputError("stdout is closed", path="-", hint="give a file with -o, or pipe stdout somewhere") \
                from None
        self.joiner = ff.Process(argv + ["pipe:1"], stdin=self.encoder.proc.stdout, stdout=out, path="-",
                                 what="writing to stdout failed")
        self.encoder.proc.proc.stdout.close()  # the join holds it now: its end, when it stops, stops the encoder

    def close(self) -> Path | None:
        """Finish encoding and the join, and move the output into place (a file: after counting
        its frames). Returns the final path (None for stdout)."""
        if self._done:
            return self.final
        try:
            part = self.encoder.close()
            if self.image_sequence:  # image frames: the encoder's folder is the output
                self._done = True
                return part
            if self.to_stdout:
                if self.joiner.wait() != 0:
                    raise self._join_error(always=True)
            else:
                self._join_warnings = assemble([part], [self.encoder.first], self.final, self.source, self.opts,
                                               self.colour, self.encoder.time_base, segment=self.segment,
                                               expect_frames=self.encoder.frames)
        except FFmpegError as e:
            blamed = self._blame(e)  # before abort() kills the join and its say is lost
            self.abort()
            raise blamed from None
        except BaseException:
            self.abort()
            raise
        self._done = True
        self._cleanup()
        return self.final

    def _blame(self, err: FFmpegError) -> EnhancerError:
        """The encoder failed: its own error, unless the join for stdout stopped first (the reader
        of stdout went away, or its disk is full), which the encoder's broken pipe only echoes."""
        if self.joiner is None:
            return err
        try:
            self.joiner.wait(timeout=5)
        except subprocess.TimeoutExpired:  # still writing to a slow reader: the encoder failed first
            return err
        return self._join_error() or err

    def _join_error(self, always: bool = False) -> EnhancerError | None:
        """The join's failure where it is the cause (``always``: whatever it was)."""
        err = self.joiner.error()
        low = " ".join(err.stderr_tail).lower()
        if "broken pipe" in low:
            return OutputError("the program reading stdout stopped before the output was complete", path="-",
                               hint="check the command after the pipe")
        if "no space left" in low:
            err.hint = "free some disk space where stdout goes"
            return err
        return err if always else None

    def _cleanup(self) -> None:
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)

    def abort(self) -> None:
        """Stop encoding (and the join) and remove every temporary."""
        self._done = True
        self.encoder.abort()
        if self.joiner is not None:
            self.joiner.kill()
        self._cleanup()
