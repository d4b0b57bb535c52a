"""A media file to a :class:`VideoInfo`, and its frame count: with ffprobe where found, else ffmpeg alone."""
from __future__ import annotations

import json
import os
import re
import stat
from fractions import Fraction

from enhancer.errors import ArgumentError, FFmpegError, InputError, option
from enhancer.media import ffmpeg as ff
from enhancer.media.banner import parse_banner
from enhancer.media.ffprobe_json import from_ffprobe_json
from enhancer.media.mp4boxes import mov_track_titles
from enhancer.media.rates import parse_rate
from enhancer.media.videoinfo import VideoInfo


def sequence_rate(path: str, fps: Fraction | None = None) -> tuple[Fraction, str]:
    """An image sequence's frame rate and where it came from: ``fps`` (``--fps``), else the
    ``fps.txt`` beside the images, else 25 (assumed)."""
    from enhancer.media.sequence import FPS_SIDECAR, sidecar_path

    if fps:
        return Fraction(fps), f"{option('fps')}"
    sidecar = sidecar_path(path)
    try:
        text = sidecar.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return Fraction(25), "assumed"
    try:
        return parse_rate(text.split()[0] if text else ""), FPS_SIDECAR
    except ArgumentError:
        raise InputError(f"{FPS_SIDECAR} does not hold a frame rate ({text[:40]!r})", path=str(sidecar),
                         hint=f"write one rate such as 25, 23.976 or 30000/1001, or give {option('fps')}") from None


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
    if not sequence:
        _vpx_alpha(info)
    return info


# VP8/VP9 keep an alpha plane beside the picture (WebM's BlockAdditional, said by the stream's
# ALPHA_MODE tag); ffmpeg's own decoders leave it out, libvpx's decode it
_VPX_ALPHA = {"vp9": "libvpx-vp9", "vp8": "libvpx"}


def _vpx_alpha(info: VideoInfo) -> None:
    """A VP8/VP9 stream with alpha: decoded by libvpx, as yuva420p, where this ffmpeg has it; else
    a note that its alpha cannot be read (the picture is, without it)."""
    if info.codec not in _VPX_ALPHA or not any(k.lower() == "alpha_mode" and str(v).strip() == "1"
                                               for k, v in info.video_tags.items()):
        return
    decoder = _VPX_ALPHA[info.codec]
    if ff.has_decoder(decoder):
        info.input_args = [*info.input_args, "-c:v", decoder]
        info.pix_fmt = re.sub(r"^yuv(?!a)", "yuva", info.pix_fmt or "yuv420p")  # yuv420p10le -> yuva420p10le
    else:
        info.alpha_unread = decoder


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
    return parse_banner(path, text)


def _probe_ffprobe(path: str, ffprobe: str, input_args: list[str]) -> VideoInfo:
    argv = [ffprobe, "-v", "error", *input_args, "-show_format", "-show_streams", "-show_chapters", "-of", "json",
            _url(path, input_args)]
    try:
        proc = ff.run(argv, path=path, what="ffprobe failed", timeout=120)
    except FFmpegError as e:
        reason = ff.summarize(e.stderr_tail) if e.stderr_tail else e.reason
        raise InputError(f"not a readable video ({reason})", path=path) from None
    return from_ffprobe_json(path, json.loads(proc.stdout.decode("utf-8", "replace") or "{}"))


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
    know. The output gives each track its title explicitly (see media.streams), whichever ffmpeg."""
    titles = mov_track_titles(info.path)
    if not titles:
        return
    keys = {k.lower() for k in info.video_tags}
    if info.video_index in titles and not keys & {"title", "name"}:
        info.video_tags["title"] = titles[info.video_index]
    for stream in [*info.audio, *info.subtitles]:
        stream.title = titles.get(stream.index)


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
