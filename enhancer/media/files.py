"""The one table of media file extensions, reading one still image, and whether two paths are one file.

Every part of enhancer that looks for media by name uses these: ``enhance``'s folder search and
image sequences, ``evaluate``'s image folders, ``prepare``'s photos and videos.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np

VIDEO_EXTENSIONS = frozenset({
    ".mp4", ".m4v", ".mkv", ".mov", ".avi", ".webm", ".ts", ".mts", ".m2ts", ".flv", ".wmv", ".mpg", ".mpeg", ".m2v",
    ".ogv", ".ogg", ".3gp", ".vob", ".mxf", ".gif", ".dv", ".y4m", ".nut", ".asf", ".rm", ".rmvb", ".divx", ".f4v",
    ".qt", ".mjpeg", ".264", ".h264", ".hevc", ".265"})
# frames of an image sequence, and stills (OpenCV reads the common ones; ffmpeg the rest: EXR, DPX, TGA)
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".exr", ".dpx", ".tga"})


def read_image(path: str | Path) -> np.ndarray:
    """One still as RGB (H, W, 3), uint8 or uint16 as stored: OpenCV where it can, else ffmpeg.
    Raises :class:`~enhancer.errors.InputError` for a file neither can read."""
    import cv2

    from enhancer.errors import InputError

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED) if Path(path).suffix.lower() not in (".exr", ".dpx") else None
    if img is not None and img.dtype in (np.uint8, np.uint16):
        if img.ndim == 2:
            return np.repeat(img[..., None], 3, axis=2)
        return np.ascontiguousarray(img[..., 2::-1])
    from enhancer.media import ffmpeg as ff

    argv = [ff.tools().ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-i", ff.file_arg(path),
            "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb48le", "pipe:1"]
    probe = subprocess.run([ff.tools().ffmpeg, "-hide_banner", "-nostdin", "-i", ff.file_arg(path)],
                           capture_output=True, text=True, errors="replace").stderr
    import re

    m = re.search(r"Video: .*?, (\d{2,5})x(\d{2,5})", probe)
    proc = subprocess.run(argv, capture_output=True)
    if not m or proc.returncode != 0:
        raise InputError("cannot read image", path=str(path))
    w, h = int(m.group(1)), int(m.group(2))
    if len(proc.stdout) != w * h * 6:
        raise InputError("cannot read image", path=str(path))
    return np.frombuffer(proc.stdout, "<u2").reshape(h, w, 3).copy()


def same_file(a: str, b: str) -> bool:
    """Whether two paths name one file (by name, link or inode)."""
    if os.path.abspath(a) == os.path.abspath(b) or os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def refuse_output_on_input(output: str, inputs: list[str] | tuple[str, ...]) -> None:
    """UsageError where ``output`` is one of ``inputs`` (by name, link or path): a command that
    writes one file from others must never replace what it reads."""
    if output == "-":
        return
    for src in inputs:
        if src != "-" and same_file(output, src):
            from enhancer.errors import UsageError

            raise UsageError("the output would replace an input", path=output, hint="choose another -o")
