"""Round-trip frames through a real video codec (encode, then decode) for degradation."""
from __future__ import annotations

import os
import subprocess
import tempfile

import numpy as np

from enhancer.errors import ArgumentError, FFmpegError
from enhancer.media import ffmpeg as ff

# the same exact conversions as the reader and the muxer: swscale's default RGB<->YUV path is
# biased by about one level, and a model trained on such pairs learns the bias
_FLAGS = "bicubic+accurate_rnd+full_chroma_int"

# codec name -> (encoder args given the quality knob)
_ENCODERS = {
    "h264": lambda q, preset: ["-c:v", "libx264", "-crf", str(q), "-preset", preset, "-pix_fmt", "yuv420p"],
    "h265": lambda q, preset: ["-c:v", "libx265", "-crf", str(q), "-preset", preset, "-pix_fmt", "yuv420p",
                               "-x265-params", "log-level=error"],
    "mpeg2": lambda q, preset: ["-c:v", "mpeg2video", "-q:v", str(q), "-pix_fmt", "yuv420p"],
    "mpeg4": lambda q, preset: ["-c:v", "mpeg4", "-q:v", str(q), "-pix_fmt", "yuv420p"],
}


def roundtrip(frames: np.ndarray, codec: str, quality: int, *, fps: int = 25, preset: str = "veryfast",
              gop: int | None = None) -> np.ndarray:
    """(T, H, W, 3) uint8 RGB -> the same frames after encoding with ``codec`` at ``quality``
    (CRF for h264/h265, qscale for mpeg2/mpeg4) and decoding back. H and W must be even."""
    if codec not in _ENCODERS:
        raise ArgumentError(f"no codec round trip for {codec!r}", hint=f"one of {', '.join(_ENCODERS)}")
    t, h, w, _ = frames.shape
    exe = ff.tools().ffmpeg
    fd, path = tempfile.mkstemp(suffix=".mkv")
    os.close(fd)
    try:
        enc = [exe, "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{w}x{h}", "-r", str(fps), "-i", "pipe:0",
               "-vf", f"scale=out_color_matrix=bt709:out_range=tv:flags={_FLAGS}",
               *_ENCODERS[codec](quality, preset)]
        if gop:
            enc += ["-g", str(gop)]
        enc += ["-f", "matroska", ff.file_arg(path)]
        proc = ff.Process(enc, stdin=subprocess.PIPE, what="codec round trip (encode) failed")
        try:
            proc.stdin.write(np.ascontiguousarray(frames, dtype=np.uint8).tobytes())
            proc.stdin.close()
        except OSError:
            pass
        proc.check()
        dec = [exe, "-hide_banner", "-loglevel", "error", "-i", ff.file_arg(path), "-fps_mode", "passthrough",
               "-vf", f"scale=in_color_matrix=bt709:in_range=tv:flags={_FLAGS}", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "pipe:1"]
        raw = ff.run(dec, what="codec round trip (decode) failed").stdout
    finally:
        os.unlink(path)
    out = np.frombuffer(raw, dtype=np.uint8)
    if out.size != frames.size:
        raise FFmpegError(f"codec round trip ({codec}) returned {out.size // (h * w * 3)} frames for {t}", argv=dec)
    return out.reshape(t, h, w, 3)
