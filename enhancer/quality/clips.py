"""The frames a metric reads: RGB uint8 of a video file or an image folder, in order, and how many."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from enhancer.errors import InputError


def image_files(folder: Path) -> list[Path]:
    from enhancer.media.sequence import folder_images

    return folder_images(folder)  # in frame order: 2.png before 10.png


def frames(path: str, info=None) -> Iterator[np.ndarray]:
    """RGB uint8 frames of a video file or an image folder, in order (16-bit scaled to 8).
    ``info`` is the file's :class:`~enhancer.media.videoinfo.VideoInfo` where the caller has it (a probe
    costs a quarter of a second of CPU)."""
    p = Path(path)
    if p.is_dir():
        files = image_files(p)
        if not files:
            raise InputError("folder holds no images", path=path)
        from enhancer.media.files import read_image

        for f in files:
            img = read_image(f)  # RGB; OpenCV, or ffmpeg for what OpenCV cannot read (EXR, DPX, TGA)
            if img.dtype == np.uint16:
                img = (img.astype(np.float32) / 257 + 0.5).astype(np.uint8)
            yield img
        return
    from enhancer.media.probe import probe
    from enhancer.media.reader import FrameReader

    with FrameReader(info or probe(path), deinterlace="off") as reader:
        for fr in reader:
            img = fr.image
            yield img if img.dtype == np.uint8 else (img.astype(np.float32) / 257 + 0.5).astype(np.uint8)


def count(path: str) -> int:
    p = Path(path)
    if p.is_dir():
        return len(image_files(p))
    from enhancer.media.probe import count_frames

    return count_frames(path)
