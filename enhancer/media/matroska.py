"""A minimal Matroska writer for raw RGB frames with exact timestamps.

Raw video on a pipe carries no timestamps, so variable frame rate would be lost on the way back
into ffmpeg. This writes one Matroska stream of uncompressed RGB frames (``V_UNCOMPRESSED`` with
the ``RGB[24]`` / ``RGB0`` fourccs ffmpeg's raw decoder knows), one cluster per frame, with a
timecode scale of 1 ns so every source timestamp survives exactly.
"""
from __future__ import annotations

import struct
from fractions import Fraction
from typing import BinaryIO

from enhancer.errors import InternalError
from enhancer.media.planar import Planar

_UNKNOWN_SIZE = b"\x01\xff\xff\xff\xff\xff\xff\xff"
_FOURCC = {8: b"RGB\x18", 16: b"RGB0"}  # rgb24, rgb48le
_FOURCC_ALPHA = {8: b"RGBA", 16: b"RBA@"}  # rgba, rgba64le


def _vint(n: int) -> bytes:
    for length in range(1, 9):
        if n < (1 << (7 * length)) - 1:
            return (n | (1 << (7 * length))).to_bytes(length, "big")
    raise InternalError(f"an EBML size of {n} bytes is too large for Matroska")


def _el(eid: bytes, data: bytes) -> bytes:
    return eid + _vint(len(data)) + data


def _uint(eid: bytes, value: int) -> bytes:
    return _el(eid, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def _str(eid: bytes, text: str) -> bytes:
    return _el(eid, text.encode("utf-8"))


class RawMatroskaWriter:
    """Write ``(H, W, 3)`` uint8/uint16 RGB frames (``(H, W, 4)`` RGBA with ``alpha``; or, with
    ``planar``, flat arrays of that layout's planes) with timestamps into a binary stream."""

    def __init__(self, stream: BinaryIO, width: int, height: int, depth: int,
                 frame_duration: Fraction | None = None, planar: Planar | None = None, alpha: bool = False):
        if depth not in _FOURCC:
            raise InternalError(f"raw Matroska frames are 8 or 16 bits deep, not {depth}")
        self.stream = stream
        self.width, self.height, self.depth = width, height, depth
        self.frame_bytes = planar.frame_bytes if planar is not None else \
            width * height * (4 if alpha else 3) * (depth // 8)
        fourcc = planar.fourcc if planar is not None else (_FOURCC_ALPHA if alpha else _FOURCC)[depth]
        header = _el(b"\x1a\x45\xdf\xa3", _uint(b"\x42\x86", 1) + _uint(b"\x42\xf7", 1) + _uint(b"\x42\xf2", 4)
                     + _uint(b"\x42\xf3", 8) + _str(b"\x42\x82", "matroska") + _uint(b"\x42\x87", 4)
                     + _uint(b"\x42\x85", 2))
        info = _el(b"\x15\x49\xa9\x66", _uint(b"\x2a\xd7\xb1", 1) + _str(b"\x4d\x80", "enhancer")
                   + _str(b"\x57\x41", "enhancer"))
        video = _el(b"\xe0", _uint(b"\xb0", width) + _uint(b"\xba", height) + _el(b"\x2e\xb5\x24", fourcc))
        # DefaultDuration gives the last frame its length (otherwise it would last 0 s)
        default = _uint(b"\x23\xe3\x83", round(frame_duration * 1_000_000_000)) if frame_duration else b""
        # Language "und": without it Matroska means English, and the output's stream would say "eng"
        track = _el(b"\xae", _uint(b"\xd7", 1) + _uint(b"\x73\xc5", 1) + _uint(b"\x83", 1)
                    + _str(b"\x86", "V_UNCOMPRESSED") + _uint(b"\x9c", 0) + _str(b"\x22\xb5\x9c", "und")
                    + default + video)
        stream.write(header + b"\x18\x53\x80\x67" + _UNKNOWN_SIZE + info + _el(b"\x16\x54\xae\x6b", track))
        self._last_ns: int | None = None
        self._step_ns = round(frame_duration * 1_000_000_000) if frame_duration else 1
        self.went_back = 0  # frames whose timestamps went backwards (joined or damaged streams)

    def write(self, image, pts: int, time_base: Fraction) -> None:
        """Append one frame at ``pts * time_base`` seconds (timestamps must increase)."""
        data = memoryview(image).cast("B")
        if len(data) != self.frame_bytes:  # checked before the frame's time counts as written
            raise InternalError(f"a frame of {len(data)} bytes for a stream of {self.frame_bytes}-byte frames")
        ns = round(pts * time_base * 1_000_000_000)
        if self._last_ns is None and ns < 0:
            raise InternalError(f"a first frame at {float(pts * time_base):.6f} s: negative timestamps are shifted "
                                "before they reach the writer")
        if self._last_ns is not None and ns <= self._last_ns:
            # keep order strictly increasing (ffmpeg would drop the frame): a repeated timestamp
            # moves by a nanosecond; one that went backwards (files joined end to end, a clock
            # that restarted) follows on one frame later, so the picture plays on
            if ns < self._last_ns:
                self.went_back += 1
            ns = self._last_ns + (self._step_ns if ns < self._last_ns else 1)
        self._last_ns = ns
        block_head = b"\x81" + struct.pack(">h", 0) + b"\x80"  # track 1, relative time 0, keyframe
        block = b"\xa3" + _vint(len(block_head) + len(data))
        cluster_body_len = len(_uint(b"\xe7", ns)) + len(block) + len(block_head) + len(data)
        self.stream.write(b"\x1f\x43\xb6\x75" + _vint(cluster_body_len) + _uint(b"\xe7", ns) + block + block_head)
        self.stream.write(data)
