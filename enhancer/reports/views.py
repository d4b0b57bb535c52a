"""What the report shows of the pictures themselves: full stills of one frame for the wipe
slider, and short looping H.264 clips of a detailed crop, for every version of a clip.

Every version is brought to the reference's size with nearest-neighbour scaling (the degraded
input included), so no version is flattered by a smoother filter; the crops are enlarged the same
way before encoding, so 4:2:0 chroma costs no detail of the crop's own pixels.
"""
from __future__ import annotations

import hashlib
import math
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from enhancer.media.compare import Crop
from enhancer.errors import InputError
from enhancer.quality.evaluate import frames
from enhancer.media import ffmpeg as ff

CLIP_SECONDS = 2.0  # long enough to see flicker, short enough to keep the page folder small
CROP_SIDE = 160  # reference pixels
SHOWN_SIDE = 320  # crops are enlarged (nearest neighbour) to at least this many screen pixels


@dataclass
class ClipViews:
    """The files made for one clip, relative to the page folder, keyed by version label."""

    frame: int  # the still's frame number
    first: int  # the crop clips' first frame number
    count: int
    fps: float
    crop: Crop
    enlarge: int
    stills: dict[str, str] = field(default_factory=dict)
    clips: dict[str, str] = field(default_factory=dict)


def detail_crop(img: np.ndarray, size: int) -> Crop:
    """The size x size window with the most detail (edge energy), on an even grid."""
    h, w = img.shape[:2]
    size = max(2, min(size, h, w) // 2 * 2)
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    energy = np.abs(cv2.Laplacian(grey, cv2.CV_32F))
    integral = cv2.integral(energy)
    best, pos = -1.0, (0, 0)
    step = max(2, size // 4 // 2 * 2)
    for y in range(0, h - size + 1, step):
        for x in range(0, w - size + 1, step):
            e = integral[y + size, x + size] - integral[y, x + size] - integral[y + size, x] + integral[y, x]
            if e > best:
                best, pos = e, (x, y)
    return Crop(pos[0], pos[1], size, size)


def _rate(path: str) -> float:
    if Path(path).is_dir():
        return 25.0
    from enhancer.media.probe import probe

    fps = float(probe(path).fps)
    return fps if fps > 0 else 25.0


def _to_size(img: np.ndarray, w: int, h: int) -> np.ndarray:
    return img if img.shape[:2] == (h, w) else cv2.resize(img, (w, h), interpolation=cv2.INTER_NEAREST)


def _name(prefix: str, label: str) -> str:
    """A file name that is safe on every file system, whatever the label."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in label)[:40]
    return f"{prefix}_{safe}_{hashlib.sha1(label.encode()).hexdigest()[:6]}"


def _encode(images: list[np.ndarray], fps: float, out: Path, source: str) -> None:
    """H.264 (yuv420p, BT.709 tags, fast start) that every browser plays."""
    h, w = images[0].shape[:2]
    proc = ff.Process([ff.tools().ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                       "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", f"{fps:.6g}", "-i", "pipe:0",
                       "-vf", "scale=out_color_matrix=bt709:out_range=tv:flags=neighbor+accurate_rnd,format=yuv420p",
                       "-c:v", "libx264", "-preset", "veryfast", "-crf", "16", "-colorspace", "bt709",
                       "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv",
                       "-movflags", "+faststart", "-an", ff.file_arg(out)],
                      stdin=subprocess.PIPE, path=source, what="encoding a report clip failed")
    proc.feed(images)


def make_views(versions: dict[str, str], frame_count: int, folder: Path, prefix: str,
               seconds: float = CLIP_SECONDS) -> ClipViews:
    """Stills and crop clips of every version of one clip. ``versions`` maps a label to a video
    file or image folder; the first is the reference, which sets the size, the frame rate and
    where the crop goes. Files are written below ``folder`` (``stills/``, ``clips/``)."""
    labels = list(versions)
    reference = versions[labels[0]]
    fps = _rate(reference)
    count = max(1, min(frame_count, round(seconds * fps)))
    frame = frame_count // 2
    first = max(0, min(frame - count // 2, frame_count - count))
    still = None
    it = frames(reference)
    try:
        for k, img in enumerate(it):
            if k == frame:
                still = img
                break
    finally:
        it.close()
    if still is None:
        raise InputError(f"has no frame {frame}", path=reference, hint="is it the clip that was scored?")
    h, w = still.shape[:2]
    crop = detail_crop(still, min(CROP_SIDE, h // 2 * 2, w // 2 * 2))
    enlarge = max(1, math.ceil(SHOWN_SIDE / crop.w))
    views = ClipViews(frame=frame, first=first, count=count, fps=fps, crop=crop, enlarge=enlarge)
    (folder / "stills").mkdir(parents=True, exist_ok=True)
    (folder / "clips").mkdir(parents=True, exist_ok=True)
    for label in labels:
        picture, crops = None, []
        it = frames(versions[label])
        try:
            for k, img in enumerate(it):
                if k > max(frame, first + count - 1):
                    break
                if k == frame or first <= k < first + count:
                    img = _to_size(img, w, h)
                    if k == frame:
                        picture = img
                    if first <= k < first + count:
                        part = img[crop.y:crop.y + crop.h, crop.x:crop.x + crop.w]
                        crops.append(np.repeat(np.repeat(part, enlarge, axis=0), enlarge, axis=1))
        finally:
            it.close()
        name = _name(prefix, label)
        if picture is not None:
            cv2.imwrite(str(folder / "stills" / f"{name}.png"), picture[..., ::-1])
            views.stills[label] = f"stills/{name}.png"
        if crops:
            _encode(crops, fps, folder / "clips" / f"{name}.mp4", versions[label])
            views.clips[label] = f"clips/{name}.mp4"
    return views
