"""The colour decisions the reader and the muxer must agree on (YUV matrix and range)."""
from __future__ import annotations

from dataclasses import dataclass

from enhancer.media.videoinfo import VideoInfo

# ffprobe colour-space names -> swscale's in/out_color_matrix names
_SWS_MATRIX = {"bt709": "bt709", "bt470bg": "bt601", "smpte170m": "bt601", "bt601": "bt601", "fcc": "fcc",
               "smpte240m": "smpte240m", "bt2020nc": "bt2020", "bt2020c": "bt2020", "bt2020": "bt2020"}
_DEFAULT_PRIMARIES = {"bt709": "bt709", "bt470bg": "bt470bg", "smpte170m": "smpte170m", "bt2020nc": "bt2020"}
# transfer names as probes print them -> as the -color_trc option takes them in every ffmpeg
# from 5.1 (7.0 and older know BT.470 BG and M only as gamma28 and gamma22)
_TRC_OPTION = {"bt470bg": "gamma28", "bt470m": "gamma22"}
_DEFAULT_TRC = {"bt709": "bt709", "bt470bg": "bt470bg", "smpte170m": "smpte170m", "bt2020nc": "bt2020-10"}


@dataclass(frozen=True)
class Colour:
    """How a source's YUV maps to RGB, and the tags its output carries."""

    space: str  # ffmpeg colorspace tag: bt709, smpte170m, bt470bg, bt2020nc ...
    primaries: str | None
    transfer: str | None
    range: str  # tv | pc
    guessed: bool  # True where the source did not say and the size decided

    @property
    def sws_matrix(self) -> str:
        return _SWS_MATRIX.get(self.space, "bt709")

    def setparams(self, space: str | None = None) -> str:
        """A setparams filter that stamps these tags on the frames (encoders take frame tags)."""
        parts = [f"range={self.range}", f"colorspace={space or self.space}"]
        if self.primaries:
            parts.append(f"color_primaries={self.primaries}")
        if self.transfer:
            parts.append(f"color_trc={self.transfer}")
        return "setparams=" + ":".join(parts)

    @property
    def trc_option(self) -> str | None:
        """The transfer as the ``-color_trc`` option names it."""
        return _TRC_OPTION.get(self.transfer, self.transfer) if self.transfer else None

    def tag_args(self) -> list[str]:
        """Output options that tag the encoded stream."""
        args = ["-colorspace", self.space, "-color_range", self.range]
        if self.primaries:
            args += ["-color_primaries", self.primaries]
        if self.transfer:
            args += ["-color_trc", self.trc_option]
        return args


def source_colour(info: VideoInfo) -> Colour:
    """The colour interpretation used for a source: its own tags, else the usual guess by frame
    height (HD and up: BT.709; SD: BT.601), as players do."""
    rgb = is_rgb_format(info.pix_fmt) or info.color_space in ("gbr", "rgb")
    rng = "tv" if rgb else (info.color_range or ("pc" if info.pix_fmt.startswith("yuvj") else "tv"))
    space = info.color_space if info.color_space in _SWS_MATRIX else None
    guessed = space is None
    if space is None:
        space = "bt709" if max(info.display_width, info.display_height) > 1024 or info.display_height >= 720 \
            else "smpte170m"
    return Colour(space=space, primaries=info.color_primaries or _DEFAULT_PRIMARIES.get(space),
                  transfer=info.color_transfer or _DEFAULT_TRC.get(space), range=rng, guessed=guessed)


def is_rgb_format(pix_fmt: str) -> bool:
    return pix_fmt.startswith(("rgb", "bgr", "gbr", "argb", "abgr", "0rgb", "0bgr", "x2rgb", "x2bgr", "pal8"))
