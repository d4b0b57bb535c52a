"""Frames in the source's own planar YUV, for a step that does not look at the picture.

A restorer that passes frames through untouched (a classical method at scale 1: a transcode
with enhancer's timestamps, audio, parts and checks) needs no RGB. The reader then hands over
the decoded planes as they are (one flat uint8 array a frame: Y, then U, then V) and the encoder
reads them back in the same format, so the two colour conversions a frame (YUV to RGB and back,
each an exact bicubic pass) are not made, and the pixels the decoder gave are the pixels the
encoder gets. Only 8-bit planar formats that raw Matroska names by a FourCC ffmpeg reads back
(libavcodec's raw table) are carried this way; anything else goes through RGB as before.
"""
from __future__ import annotations

from dataclasses import dataclass

# pix_fmt -> (FourCC, horizontal and vertical chroma subsampling)
FORMATS = {"yuv420p": (b"I420", 2, 2), "yuv422p": (b"Y42B", 2, 1), "yuv444p": (b"444P", 1, 1)}


@dataclass(frozen=True)
class Planar:
    pix_fmt: str
    width: int
    height: int

    @property
    def fourcc(self) -> bytes:
        return FORMATS[self.pix_fmt][0]

    @property
    def frame_bytes(self) -> int:
        _, sx, sy = FORMATS[self.pix_fmt]
        return self.width * self.height + 2 * (-(-self.width // sx)) * (-(-self.height // sy))


def planar_of(pix_fmt: str | None, bit_depth: int, width: int, height: int) -> Planar | None:
    """The planar layout frames of this format and size can travel in, or None (then RGB): an
    8-bit format of :data:`FORMATS` at an even size (no chroma sample half outside the picture,
    and nothing for the encoder to pad)."""
    if pix_fmt not in FORMATS or bit_depth > 8 or width % 2 or height % 2 or width <= 0 or height <= 0:
        return None
    return Planar(pix_fmt, width, height)
