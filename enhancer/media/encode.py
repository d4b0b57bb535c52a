"""The codecs and containers enhancer writes, which container holds which, and the user's EncodeOptions."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from enhancer.errors import ArgumentError, UsageError, option


CODECS = ("h264", "h265", "prores", "dnxhr", "ffv1", "mpeg2", "png", "tiff")
IMAGE_CODECS = ("png", "tiff")
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".nut": "nut"}
# the video codecs each container holds
VIDEO_CODECS_IN = {"mp4": {"h264", "h265", "mpeg2"}, "mov": {"h264", "h265", "prores", "dnxhr", "mpeg2"},
                   "matroska": {"h264", "h265", "prores", "dnxhr", "ffv1", "mpeg2"},
                   "nut": {"h264", "h265", "prores", "dnxhr", "ffv1", "mpeg2"}}


def check_container(codec: str, output: str | Path) -> None:
    """Refuse, before any work, a codec the output's container cannot hold (FFV1 or ProRes in
    MP4): the encode would otherwise fail at the join, after the whole file was made."""
    container = CONTAINERS.get(Path(output).suffix.lower())
    if container is None or codec in IMAGE_CODECS or codec in VIDEO_CODECS_IN[container]:
        return
    fits = sorted(ext for ext, c in CONTAINERS.items() if codec in VIDEO_CODECS_IN[c] and ext not in (".m4v", ".nut"))
    raise UsageError(f"{Path(output).suffix.lower()} cannot hold {codec} video", path=str(output),
                     hint=f"name the output {' or '.join(fits)}, or choose another {option('codec')}")


def default_extension(codec: str, source_ext: str | None = None) -> str:
    """The container an output gets when the user did not name one: the source's own where it
    can hold the codec, else .mov for ProRes and .mkv otherwise."""
    if codec in IMAGE_CODECS:
        return ""
    src = (source_ext or "").lower()
    if src in CONTAINERS and codec in VIDEO_CODECS_IN[CONTAINERS[src]] and src != ".nut":
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


def container_of(output: str | Path, images: str = f"or {option('codec')} png|tiff for images") -> str:
    """The container ffmpeg writes for an output file, by its extension (a UsageError for one it
    does not write; ``images`` ends the hint: how the caller writes pictures, if it can)."""
    ext = Path(output).suffix.lower()
    if ext not in CONTAINERS:
        raise UsageError(f"unknown output extension {ext or '(none)'}", path=str(output),
                         hint=f"use one of {', '.join(sorted(CONTAINERS))}" + (f", {images}" if images else ""))
    return CONTAINERS[ext]
