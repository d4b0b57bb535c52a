"""Build the held-out evaluation set: clean clips that no model here was trained on.

Clips (lossless FFV1 in Matroska, 25 frames/s, sizes divisible by 8 so x2 and x4 protocols fit):
  * real footage: ``bikes``, ``car-detection`` and ``people-walking`` (people crossing a still
    scene: where a fusion that trusts its neighbours makes a person fade; first 6 s of each; all
    three kept out of training since the st3d sets, the first two before);
  * content the training set lacks, filmed from held-out stills by a slowly moving camera (pan,
    slight zoom): faces (Set14 ``barbara``, ``foreman``), text (Set14 ``ppt3``, ``comic``),
    water (Set14 ``coastguard``, ``EveningGlow``), foliage and a stream (``life``), a dark forest
    (``Path``) and a dark scene (``DarkestHour``); Set14 and these four photos are excluded from
    every prepared training set;
  * fast motion: pans of 8, 16, 24 and 32 pixels a frame at the x2 input resolution (16-64 at the
    clean resolution) over ``EveningGlow``;
  * with ``--media DIR``: every video in DIR (first 6 s), for real footage found elsewhere. The
    project's own held-out footage came from Debian and PyPI packages (a webcam talking head and
    a screencast, underwater footage, a city at night, a handheld close-up, a phone clip, a
    motorway; the packages are named in docs/models.md), kept out of every training set.

    python benchmarks/heldout.py [-o runs/heldout] [--data ../shared/data] [--media runs/media/heldout]

Then, for example:
    enhancer benchmark runs/heldout/*.mkv --preset web --scale 2 --models general-x2 -o runs/bench-web
"""
from __future__ import annotations

import argparse
import math
import subprocess
from pathlib import Path

import cv2
import numpy as np

from enhancer.media import ffmpeg as ff

STILLS = {  # name: (file under data, clip size (w, h), pan px/frame, zoom per frame)
    "barbara-face": ("images/Set14/img_002_SRF_4_HR.png", (480, 320), 1.5, 0.0),
    "foreman-face": ("images/Set14/img_008_SRF_4_HR.png", (256, 200), 1.0, 0.002),
    "ppt3-text": ("images/Set14/img_013_SRF_4_HR.png", (400, 320), 1.5, 0.0),
    "comic-drawn": ("images/Set14/img_005_SRF_4_HR.png", (200, 280), 1.0, 0.0),
    "coastguard-water": ("images/Set14/img_004_SRF_4_HR.png", (256, 200), 1.5, 0.0),
    "life-foliage": ("photos/lomiri16/life_by_Aitzol_Berasategi.jpg", (640, 360), 2.0, 0.001),
    "path-dark-forest": ("photos/plasma/Path.jpg", (640, 360), 2.0, 0.0),
    "darkesthour-dark": ("photos/plasma/DarkestHour.jpg", (640, 360), 1.5, 0.0),
    "eveningglow-water": ("photos/plasma/EveningGlow.jpg", (640, 360), 2.5, 0.001),
}
FAST = (8, 16, 24, 32)  # px per frame at the x2 input resolution
REAL = {"bikes": "videos/bikes.mp4", "car-detection": "videos/car-detection.mp4",
        "people-walking": "videos/one-by-one-person-detection.mp4"}


def _write(frames: np.ndarray, out: Path, fps: int = 25) -> None:
    t, h, w, _ = frames.shape
    argv = [ff.tools().ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
            "-s", f"{w}x{h}", "-r", str(fps), "-i", "pipe:0", "-c:v", "ffv1", "-pix_fmt", "gbrp", str(out)]
    subprocess.run(argv, input=np.ascontiguousarray(frames).tobytes(), check=True)


def camera(img: np.ndarray, size: tuple[int, int], frames: int, speed: float, zoom: float,
           angle: float = 0.35) -> np.ndarray:
    """A camera of ``size`` moving ``speed`` px/frame (and zooming) over ``img``, Lanczos resampled.
    The photo is first area-downscaled so that the path just fits, keeping the frames sharp."""
    w, h = size
    travel = speed * (frames - 1)
    dx, dy = math.cos(angle) * travel, math.sin(angle) * travel
    need_w, need_h = (w + abs(dx)) * 1.08, (h + abs(dy)) * 1.08
    f = max(need_w / img.shape[1], need_h / img.shape[0])
    if f < 1:  # downscale the still (area) as far as the path allows
        img = cv2.resize(img, (math.ceil(img.shape[1] * f), math.ceil(img.shape[0] * f)), interpolation=cv2.INTER_AREA)
    ih, iw = img.shape[:2]
    x0, y0 = (iw - w - dx) / 2, (ih - h - dy) / 2
    out = np.empty((frames, h, w, 3), np.uint8)
    for t in range(frames):
        s = (1 + zoom) ** t
        cx, cy = x0 + w / 2 + dx * t / max(1, frames - 1), y0 + h / 2 + dy * t / max(1, frames - 1)
        m = np.float32([[1 / s, 0, cx - w / (2 * s)], [0, 1 / s, cy - h / (2 * s)]])
        out[t] = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LANCZOS4 | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_REFLECT)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--out", default="runs/heldout")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--media", default=None, help="a folder of further held-out videos")
    args = ap.parse_args()
    ff.configure()
    data, out = Path(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    real = {name: data / rel for name, rel in REAL.items()}
    if args.media:
        real.update({p.stem: p for p in sorted(Path(args.media).iterdir()) if p.is_file() and p.suffix != ".md"})
    for name, src in real.items():
        # decoded from the start (seeking into some of these files lands between key frames)
        subprocess.run([ff.tools().ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-i", str(src), "-t", "6",
                        "-map", "0:v:0", "-vf", "crop=floor(iw/8)*8:floor(ih/8)*8:0:0", "-c:v", "ffv1",
                        str(out / f"{name}.mkv")], check=True)
        print(out / f"{name}.mkv")
    for name, (rel, size, speed, zoom) in STILLS.items():
        img = cv2.imread(str(data / rel), cv2.IMREAD_COLOR)[..., ::-1]
        _write(camera(img, size, args.frames, speed, zoom), out / f"{name}.mkv")
        print(out / f"{name}.mkv")
    img = cv2.imread(str(data / STILLS["eveningglow-water"][0]), cv2.IMREAD_COLOR)[..., ::-1]
    for px in FAST:
        _write(camera(img, (640, 360), 20, 2 * px, 0.0, angle=0.0), out / f"pan{px:02d}-fast.mkv")
        print(out / f"pan{px:02d}-fast.mkv")


if __name__ == "__main__":
    main()
