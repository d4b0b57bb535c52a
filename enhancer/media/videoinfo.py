"""VideoInfo, what enhancer knows of a media file before decoding it, and the rules its two readers share."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from fractions import Fraction

from enhancer.errors import InputError


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
    # a VP8/VP9 stream whose alpha plane this ffmpeg cannot decode: the decoder it lacks (libvpx-vp9)
    alpha_unread: str | None = None
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


FIELD_ORDERS = {"progressive": "progressive", "top first": "tt", "bottom first": "bb",
                "top coded first (swapped)": "tb", "bottom coded first (swapped)": "bt",
                "tt": "tt", "bb": "bb", "tb": "tb", "bt": "bt"}


def main_video(videos: list, size):
    """The video stream to enhance where a file holds several (cover art aside): the largest
    picture, the first of equals, as ffmpeg itself picks one. A thumbnail or preview track
    stored first never displaces the film."""
    return max(videos, key=lambda v: size(v)[0] * size(v)[1])


def no_video(path: str, info_audio: list) -> InputError:
    """The error for a file without a video stream (an audio-only one said so)."""
    if info_audio:
        return InputError("has no video stream (an audio-only file)", path=path)
    return InputError("has no video stream", path=path)


def other_video(index: int, codec: str, width: int | None, height: int | None) -> str:
    """How :attr:`VideoInfo.others` names a video stream left out of the output."""
    size = f" {width}x{height}" if width and height else ""
    return f"video stream {index} ({codec}{size})"
