"""``--splice``: one segment of a long master enhanced and put back, the rest of the file as it was.

The segment goes through the model and into parts as any output does (so it resumes the same
way); the picture before and after it is then cut from the source and the three are joined
frame-exactly, with the source's audio, subtitles, chapters, metadata and timecode mapped whole.

How the rest of the picture travels depends on the model and the source:

* scale 1, an intra-only source enhancer can encode to the same profile (ProRes, DNxHR): the
  rest is copied packet for packet, and the segment is encoded with the source's codec and profile;
* scale 1, any other source (H.264, H.265, MPEG-2 ...: a segment encoded by enhancer cannot share
  one stream with the source encoder's parameter sets, and a cut inside a group of pictures would
  break the frames that refer across it): the whole picture is re-encoded losslessly (FFV1 in
  Matroska, lossless H.264 in MP4/MOV) in the source's pixel format, so every frame outside the
  segment decodes exactly as the source's did;
* scale > 1: the rest is upscaled with lanczos and encoded with the output's own settings.

Cuts are made on the source's packet timestamps (read once, without decoding, from ffmpeg's
``framecrc`` listing), never on rounded times, and every piece's frame count is checked.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from enhancer.errors import OutputError, UsageError, option
from enhancer.media import ffmpeg as ff
from enhancer.media.colour import Colour
from enhancer.media.encode import CONTAINERS, EncodeOptions
from enhancer.media.geometry import output_sar, setsar_filter
from enhancer.media.join import assemble
from enhancer.media.pixfmt import chroma_of
from enhancer.media.plan import plan
from enhancer.media.probe import count_frames
from enhancer.media.segment import Segment
from enhancer.media.videoinfo import VideoInfo

# profiles (as ffmpeg's decoders name them) enhancer can encode again, for a stream copy around the segment
_PRORES = {"proxy": "proxy", "lt": "lt", "standard": "standard", "hq": "hq", "4444": "4444", "xq": "4444xq",
           "4444 xq": "4444xq", "4444xq": "4444xq"}
_DNXHR = {"dnxhr lb": "dnxhr_lb", "dnxhr sq": "dnxhr_sq", "dnxhr hq": "dnxhr_hq", "dnxhr hqx": "dnxhr_hqx",
          "dnxhr 444": "dnxhr_444"}
# pixel formats lossless H.264 holds (x264 in 8 and 10 bits)
_X264_LOSSLESS = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv420p10le",
                  "yuv422p10le", "yuv444p10le", "nv12", "gray", "gray10le"}
HEAD, TAIL = "splice_head.nut", "splice_tail.nut"
_NOPTS = -0x8000000000000000  # AV_NOPTS_VALUE: a packet with no time


@dataclass(frozen=True)
class SplicePlan:
    mode: str  # copy | lossless | lanczos
    encode: EncodeOptions  # for the segment's parts, and the re-encoded rest
    note: str  # for the output's warnings: how the rest of the picture was made


def check(info: VideoInfo, output: str, segment: Segment, *, preview: float | None = None) -> None:
    """Usage errors for a splice that cannot be made."""
    if segment.whole:
        raise UsageError(f"{option('splice', True)} puts an enhanced segment back into the whole file: give a {option('start')} after 0 "
                         f"and/or a {option('duration')}")
    if preview:
        raise UsageError(f"{option('splice', True)} and {option('preview')} cannot be combined")
    if info.image_sequence:
        raise UsageError(f"{option('splice', True)} needs a video file as input, not an image sequence", path=info.path)
    if output == "-" or Path(output).suffix.lower() not in (".mp4", ".m4v", ".mov", ".mkv"):
        raise UsageError(f"{option('splice', True)} writes a video file: give -o NAME.mov, .mp4 or .mkv", path=output)
    if not info.fps:
        raise UsageError(f"{option('splice', True)} needs a source with a known frame rate", path=info.path)
    if info.duration and segment.start and segment.start >= info.duration:
        raise UsageError(f"{option('start')} {segment.start:g} s is past the end of the video ({info.duration:.2f} s)",
                         path=info.path)


def plan_splice(info: VideoInfo, encode: EncodeOptions, scale: int, output: str) -> SplicePlan:
    """How the picture outside the segment is made, and the encoding of the segment that fits it."""
    if encode.size:
        raise UsageError(f"{option('splice', True)} keeps the source's frame size (times the model's scale): drop {option('size')}/{option('width')}/"
                         f"{option('height')}", path=output)
    container = CONTAINERS[Path(output).suffix.lower()]
    if scale > 1:
        note = "splice: the picture outside the segment was upscaled with lanczos"
        if info.interlaced:
            note += " (the source is interlaced: neither part was deinterlaced)"
        return SplicePlan("lanczos", encode, note)
    # the rest keeps its fields: the segment (and any re-encoded rest) is coded interlaced too
    fields = info.field_order if info.field_order in ("tt", "bb", "tb", "bt") else None
    keep = dict(audio=encode.audio, subtitles=encode.subtitles, field_order=fields)
    if re.match(r"(yuva|gbra|rgba|bgra|argb|abgr|ya)", info.pix_fmt):
        raise UsageError(f"{option('splice', True)} at scale 1 cannot keep the alpha channel of this {info.pix_fmt} source in the "
                         "segment", path=info.path, hint="splice a copy without alpha, or enhance the shot alone")
    if info.rotation in (90, 270) and chroma_of(info.pix_fmt) not in ("420", "444", "gray"):
        raise UsageError(f"{option('splice', True)} at scale 1 cannot keep the frames of this rotated {chroma_of(info.pix_fmt)} "
                         "source exact (turning them changes the chroma)", path=info.path,
                         hint="rotate the source first, or use a model of scale 2 or 4")
    profile = (info.profile or "").strip().lower()
    if info.rotation == 0:
        if info.codec == "prores" and profile in _PRORES and container in ("mov", "matroska"):
            enc = EncodeOptions(codec="prores", profile=_PRORES[profile], pix_fmt=info.pix_fmt, **keep)
            return SplicePlan("copy", enc, f"splice: the picture outside the segment was copied from the source "
                                           f"(ProRes {info.profile}); the segment was encoded to match")
        if info.codec == "dnxhd" and profile in _DNXHR and container in ("mov", "matroska"):
            enc = EncodeOptions(codec="dnxhr", profile=_DNXHR[profile], pix_fmt=info.pix_fmt, **keep)
            return SplicePlan("copy", enc, f"splice: the picture outside the segment was copied from the source "
                                           f"({info.profile}); the segment was encoded to match")
    why = f"the source's {info.codec} cannot be cut and rejoined at those frames"
    if container == "matroska":
        enc = EncodeOptions(codec="ffv1", pix_fmt=info.pix_fmt, **keep)
        return SplicePlan("lossless", enc, f"splice: {why}: the whole picture was re-encoded losslessly (FFV1, "
                                           f"{info.pix_fmt}); frames outside the segment decode as the source's do")
    if info.codec in ("prores", "dnxhd") and container == "mp4":
        raise UsageError(f"{option('splice', True)}: an .mp4 cannot hold the source's {info.codec}", path=output,
                         hint="write the output as .mov, where the rest of the file is copied as it is")
    if info.pix_fmt not in _X264_LOSSLESS:
        raise UsageError(f"{option('splice', True)} into {Path(output).suffix}: {why}, and lossless H.264 cannot hold "
                         f"{info.pix_fmt}", path=output, hint="write the output as .mkv (lossless FFV1)")
    enc = EncodeOptions(codec="h264", lossless=True, pix_fmt=info.pix_fmt, **keep)
    return SplicePlan("lossless", enc, f"splice: {why}: the whole picture was re-encoded losslessly (H.264, "
                                       f"{info.pix_fmt}); frames outside the segment decode as the source's do")


def packets(info: VideoInfo) -> list[Fraction]:
    """Timestamps (seconds, the source's clock) of the video stream's packets in decode order."""
    argv = [ff.tools().ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-v", "error", "-copyts",
            "-i", ff.file_arg(info.path), "-map", f"0:{info.video_index}", "-c", "copy", "-f", "framecrc", "pipe:1"]
    proc = ff.run(argv, path=info.path, what="reading the source's frame times failed")
    tb: Fraction | None = None
    times: list[Fraction] = []
    for raw in proc.stdout.decode("ascii", "replace").splitlines():
        if raw.startswith("#tb 0:"):
            num, _, den = raw.split(":", 1)[1].strip().partition("/")
            tb = Fraction(int(num), int(den))
        elif raw.strip() and not raw.startswith("#"):
            fields = [f.strip() for f in raw.split(",")]
            if tb is None or len(fields) < 3:
                raise OutputError("cannot read the source's frame times (unexpected framecrc listing)",
                                  path=info.path)
            if int(fields[2]) == _NOPTS:
                raise UsageError("the source's packets do not all carry a time (an MPEG program stream?), so "
                                 f"{option('splice', True)} cannot cut it frame-exactly", path=info.path,
                                 hint="remux it first (ffmpeg -i IN -c copy OUT.mkv) and splice that")
            times.append(int(fields[2]) * tb)
    return times


def _shown(info: VideoInfo, t: Fraction) -> bool:
    """Whether a packet at ``t`` is a frame people see: packets before the file's start are
    pre-roll an edit list drops (a file cut with stream copy has them)."""
    start = Fraction(info.start_time).limit_denominator(1_000_000) if info.start_time else Fraction(0)
    return start < 0 or t >= start - Fraction(1, 1_000_000)


def _midpoint(a: Fraction, b: Fraction) -> str:
    return f"{float((a + b) / 2):.9f}"


def _video_args(info: VideoInfo, encode: EncodeOptions, colour: Colour, width: int, height: int) -> tuple[str, list]:
    """The parts' encoder options without their filter (the rest of the picture comes from the
    decoded source, not from RGB), and their pixel format."""
    video = dataclasses.replace(info, audio=[], subtitles=[], attachments=[])
    mplan = plan(video, encode, "nut", colour, width, height, 16 if info.bit_depth > 8 else 8)
    args = list(mplan.video_args)
    k = args.index("-vf")
    del args[k:k + 2]
    return mplan.pix_fmt, args


def _cut(info: VideoInfo, splan: SplicePlan, colour: Colour, out: Path, *, index: tuple[int, int] | None,
         times: tuple[Fraction | None, Fraction | None], size: tuple[int, int], time_base: Fraction) -> None:
    """Write the source's picture between two cut points to ``out`` (NUT, its timeline starting
    at its first frame): packets ``index`` (first, last) copied, or the frames between the
    ``times`` (midpoints between frames; None: the file's end) re-encoded."""
    argv = [ff.tools().ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y", "-copyts",
            "-i", ff.file_arg(info.path), "-map", f"0:{info.video_index}"]
    if splan.mode == "copy":
        first, last = index
        argv += ["-c:v", "copy", "-bsf:v", f"noise=drop=lt(n\\,{first})+gt(n\\,{last}),setts=ts=TS-STARTPTS"]
    else:
        start, end = times
        trim = ":".join(([f"start={start}"] if start is not None else []) + ([f"end={end}"] if end is not None else []))
        chain = [f"trim={trim}", "setpts=PTS-STARTPTS"]
        pix, vargs = _video_args(info, splan.encode, colour, *size)
        if splan.mode == "lanczos":
            chain.append(f"scale={size[0]}:{size[1]}:flags=lanczos+accurate_rnd+full_chroma_int")
        chain += [f"format={pix}", setsar_filter(output_sar(info))]
        argv += ["-vf", ",".join(chain), *vargs, "-fps_mode", "passthrough",
                 "-enc_time_base:v", f"{time_base.numerator}/{time_base.denominator}"]
    argv += ["-an", "-sn", "-dn", "-f", "nut", ff.file_arg(out)]
    ff.run(argv, path=info.path, what="cutting the source around the segment failed")


def join(parts: list[dict], folder: Path, output: Path, info: VideoInfo, splan: SplicePlan, colour: Colour,
         time_base: Fraction | None, size: tuple[int, int],
         bounds: tuple[Fraction, Fraction | None]) -> tuple[int, list[str]]:
    """Cut the source's picture before and after the enhanced parts and join the three into
    ``output``. ``bounds`` is the segment [start, end) on the source's clock. Returns (frames
    added from outside the segment, warnings)."""
    first, last = Fraction(parts[0]["first"]), Fraction(parts[-1]["last"])
    made = sum(p["frames"] for p in parts)
    times = packets(info)
    order = sorted(t for t in times if _shown(info, t))
    lo, hi = bounds
    inside = [t for t in order if t >= lo and (hi is None or t < hi)]
    if not inside or (inside[0], inside[-1], len(inside)) != (first, last, made):
        raise OutputError(f"the enhanced segment ({made} frames from {float(first):.3f} s) is not the source's "
                          f"{len(inside)} frames between {float(lo):.3f} s and "
                          f"{'the end' if hi is None else f'{float(hi):.3f} s'}: it cannot be put back frame-exactly",
                          path=str(output),
                          hint="remux the source first (ffmpeg -i IN -c copy OUT.mkv) and splice that")
    before = [t for t in order if t < first]
    after = [t for t in order if t > last]
    tb = time_base or info.time_base or Fraction(1, 90000)
    pieces: list[tuple[Path, Fraction, int]] = []  # (file, first frame time, frames)
    for name, span in ((HEAD, before), (TAIL, after)):
        if not span:
            continue
        path = folder / name
        if splan.mode == "copy":
            # an intra-only stream: its decode order is its presentation order, the cut a packet range
            idx = [i for i, t in enumerate(times) if _shown(info, t) and (t < first if name == HEAD else t > last)]
            if idx != list(range(idx[0], idx[-1] + 1)):
                raise OutputError("the source's packets are not in presentation order: cannot copy around the "
                                  "segment", path=str(output))
            bounds, cut = (idx[0], idx[-1]), (None, None)
        else:
            bounds = None
            cut = (None, _midpoint(span[-1], first)) if name == HEAD else (_midpoint(last, span[0]), None)
        _cut(info, splan, colour, path, index=bounds, times=cut, size=size, time_base=tb)
        got = count_frames(str(path))
        if got != len(span):
            raise OutputError(f"the source's picture {'before' if name == HEAD else 'after'} the segment came out "
                              f"as {got} frames, not {len(span)}", path=str(output),
                              hint=f"report this with the input file; {option('splice', True)} cannot put this segment back")
        pieces.append((path, span[0], len(span)))
    files = [folder / p["file"] for p in parts]
    starts = [Fraction(p["first"]) for p in parts]
    for path, t0, _ in pieces:
        at = 0 if path.name == HEAD else len(files)
        files.insert(at, path)
        starts.insert(at, t0)
    origin = Segment().origin(info.start_time)
    warnings = assemble(files, [s - origin for s in starts], output, info, splan.encode, colour, tb,
                        segment=Segment())
    return sum(n for _, _, n in pieces), warnings
