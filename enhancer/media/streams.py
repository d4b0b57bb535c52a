"""What an output takes from the source besides the picture: audio, subtitles, attachments, tags, timecode."""
from __future__ import annotations

import re
from fractions import Fraction

from enhancer.media.encode import EncodeOptions
from enhancer.media.videoinfo import VideoInfo


# audio codecs each container takes as they are; others are re-encoded (see _audio_args)
# (ffmpeg's mov muxer cannot write FLAC or Opus, nor its mp4 muxer TrueHD: "Could not write header")
_AUDIO_OK = {"mp4": {"aac", "mp3", "mp2", "ac3", "eac3", "alac", "flac", "opus", "dts"},
             "mov": {"aac", "mp3", "mp2", "ac3", "eac3", "alac", "dts", "pcm_s16le", "pcm_s16be", "pcm_s24le",
                     "pcm_s24be", "pcm_s32le", "pcm_f32le", "pcm_u8", "pcm_mulaw", "pcm_alaw"},
             "matroska": None, "nut": None}  # None: anything
_ATTACHMENTS_OK = {"matroska"}
_LOSSLESS_AUDIO = ("pcm_", "flac", "alac", "truehd", "wavpack", "tta", "ape")
# stream tags that describe the source's own encoding or container, not the stream: never copied
# (ffmpeg writes its own; a stale frame count or duration would be read back as the truth)
_STALE_TAGS = re.compile(r"(duration|number_of_frames|number_of_bytes|bps|_statistics_\w*|encoder|rotate|"
                         r"vendor_id|timecode|alpha_mode)(-\w+)?", re.I)  # alpha_mode: VP8/9's alpha side data


def video_tag_args(info: VideoInfo) -> list[str]:
    """Output options that give the video stream the source's own tags (language, title,
    handler ...). Rotation is applied to the picture, so it is not copied, nor are tags that
    describe the source's encoding (its encoder, frame count, duration, statistics, a VP8/VP9
    stream's ALPHA_MODE, which would claim an alpha plane the new encoding does not carry)."""
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


def stream_args(info: VideoInfo, opts: EncodeOptions, container: str, warnings: list[str]) -> list[str]:
    """Options that map the source's audio, subtitles and attachments into an output (input 1: the
    source), each copied where the container allows; what is re-encoded or left out is added to
    ``warnings``."""
    return (_audio_args(info, opts, container, warnings) + _subtitle_args(info, opts, container, warnings)
            + _attachment_args(info, opts, container, warnings))


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
