"""Training clips from videos and from still photos, and the compact prepared training set.

:func:`prepare` turns folders of media into one ``.npz`` of aligned (clean, damaged) sequences:
clean sequences come from video files (a random run of frames, downscaled with area averaging to
clean up their own compression, randomly cropped) and from photos moved by a synthetic camera
(smooth pan, zoom and rotation, plus a second moving layer for parallax and occlusion), mixed at
``video_ratio``. Each clean sequence gets ``versions`` independently drawn degradations,
including the real codec stage, which is too slow to run per training sample on a small CPU.
:class:`ClipDataset` then serves random crops, flips and time reversals of those pairs on the fly.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from enhancer.data.degrade import degrade_clip, sample
from enhancer.progress import bar

from enhancer.errors import ArgumentError, ConfigError, InputError, UsageError, option, shown
from enhancer.media.files import IMAGE_EXTENSIONS as IMAGE_EXT, VIDEO_EXTENSIONS as VIDEO_EXT  # noqa: E402  (the one table)


@dataclass
class PrepareConfig:
    sources: list[str]
    out: str
    exclude: list[str] = field(default_factory=list)  # file or folder names kept out (held-out eval)
    sequences: int = 400
    frames: int = 9
    hr_size: int = 160
    scale: int = 2
    versions: int = 2
    preset: str = "web"
    video_ratio: float = 0.4
    seed: int = 0
    compress: bool = True  # zlib inside the .npz: smaller to carry (to a GPU machine), slower to load


def _gather(sources: list[str], exclude: list[str]) -> tuple[list[Path], list[Path]]:
    images, videos = [], []
    excl = set(exclude)
    for src in sources:
        p = Path(src)
        files = sorted(p.rglob("*")) if p.is_dir() else [p]
        for f in files:
            if any(part in excl for part in f.parts) or f.name in excl or not f.is_file():
                continue
            ext = f.suffix.lower()
            if ext in IMAGE_EXT:
                images.append(f)
            elif ext in VIDEO_EXT:
                videos.append(f)
    return images, videos


def _read_rgb(path: Path) -> np.ndarray:
    from enhancer.media.files import read_image

    img = read_image(path)
    return img if img.dtype == np.uint8 else (img.astype(np.float32) / 257 + 0.5).astype(np.uint8)


def photo_sequence(photo: np.ndarray, rng: np.random.Generator, frames: int, size: int) -> np.ndarray:
    """A clip of ``frames`` (size x size) frames filmed from a still by a moving virtual camera,
    with a second layer moving on its own (parallax and occlusion). Returns (T, S, S, 3) uint8."""
    h, w = photo.shape[:2]
    short = min(h, w)
    # mostly gentle camera moves, often brisk ones and sometimes very fast pans (up to a third
    # of the frame per frame): the model must align far-moved neighbours, or learn to ignore them
    # where alignment fails (else: ghosts)
    kind = rng.random()
    speed = rng.uniform(0, 4) if kind < 0.5 else rng.uniform(4, 16) if kind < 0.8 else rng.uniform(16, max(16.0, size / 3))
    travel = speed * (frames - 1)
    target = rng.uniform(size * 1.6, max(size * 1.7, min(short, size * 5)))
    target = max(target, min(short, size + travel))  # room to pan without running off the photo
    f = min(1.0, target / short)
    img = cv2.resize(photo, (max(size + 2, int(w * f)), max(size + 2, int(h * f))), interpolation=cv2.INTER_AREA)
    h, w = img.shape[:2]
    speed = min(speed, max(1.0, (max(h, w) - size) / (frames - 1)))
    angle = rng.uniform(0, 2 * math.pi)
    vx, vy = speed * math.cos(angle), speed * math.sin(angle)

    def start(extent: int, v: float) -> float:  # keep the whole path on the photo where it fits
        lo, hi = size * 0.75 + max(0.0, -v * (frames - 1)), extent - size * 0.75 - max(0.0, v * (frames - 1))
        return rng.uniform(lo, hi) if hi > lo else extent / 2

    cx, cy = start(w, vx), start(h, vy)
    ax, ay = rng.normal(0, 0.15), rng.normal(0, 0.15)
    zoom = rng.uniform(-0.012, 0.012) if rng.random() < 0.5 else 0.0
    rot = math.radians(rng.uniform(-0.6, 0.6)) if rng.random() < 0.4 else 0.0
    layer = None
    if rng.random() < 0.5:  # a second, nearer layer: an elliptical cut-out moving faster
        ps = int(rng.uniform(size * 0.25, size * 0.6))
        py, px = int(rng.integers(0, h - ps)), int(rng.integers(0, w - ps))
        patch = img[py:py + ps, px:px + ps].copy()
        mask = np.zeros((ps, ps), np.float32)
        cv2.ellipse(mask, (ps // 2, ps // 2), (ps // 2 - 1, int(ps * rng.uniform(0.25, 0.48))),
                    float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
        mask = cv2.GaussianBlur(mask, (0, 0), 1.0)[..., None]
        fast = 16 if rng.random() < 0.4 else 6
        layer = (patch, mask, rng.uniform(0, size - ps), rng.uniform(0, size - ps), rng.uniform(-fast, fast),
                 rng.uniform(-fast, fast))
    out = np.empty((frames, size, size, 3), np.uint8)
    for t in range(frames):
        s = (1 + zoom) ** t
        a = rot * t
        px, py = cx + vx * t + 0.5 * ax * t * t, cy + vy * t + 0.5 * ay * t * t
        # map output pixel (u, v) -> source: R(a) * s * ((u, v) - size/2) + (px, py)
        c, si = math.cos(a) * s, math.sin(a) * s
        m = np.array([[c, -si, px - c * size / 2 + si * size / 2],
                      [si, c, py - si * size / 2 - c * size / 2]], np.float32)
        frame = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LANCZOS4 | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REFLECT)
        if layer is not None:
            patch, mask, lx, ly, lvx, lvy = layer
            ps = patch.shape[0]
            x0, y0 = int(round(lx + lvx * t)), int(round(ly + lvy * t))
            xa, ya, xb, yb = max(0, x0), max(0, y0), min(size, x0 + ps), min(size, y0 + ps)
            if xb > xa and yb > ya:
                sub_p = patch[ya - y0:yb - y0, xa - x0:xb - x0].astype(np.float32)
                sub_m = mask[ya - y0:yb - y0, xa - x0:xb - x0]
                region = frame[ya:yb, xa:xb].astype(np.float32)
                frame[ya:yb, xa:xb] = np.clip(region * (1 - sub_m) + sub_p * sub_m + 0.5, 0, 255).astype(np.uint8)
        out[t] = frame
    return out


def video_sequence(path: Path, rng: np.random.Generator, frames: int, size: int) -> np.ndarray | None:
    """``frames`` consecutive frames from a random point of a video, downscaled 1.5-2x with area
    averaging (which also cleans its compression) and randomly cropped. (T, S, S, 3) uint8."""
    from enhancer.media.probe import probe
    from enhancer.media.reader import FrameReader
    from enhancer.media.segment import Segment

    info = probe(str(path))
    dur = info.duration or 0
    fps = float(info.fps) or 25
    stride = int(rng.choice([1, 1, 2, 3]))  # every 2nd/3rd frame: the larger motion of low frame rates
    span = frames * stride / fps
    start = rng.uniform(0, max(0.0, dur - span - 0.2))
    imgs = []
    with FrameReader(info, segment=Segment(start), buffer=frames + 1) as reader:
        for k, fr in enumerate(reader):
            if k % stride:
                continue
            imgs.append(fr.image if fr.image.dtype == np.uint8 else (fr.image >> 8).astype(np.uint8))
            if len(imgs) == frames:
                break
    if len(imgs) < frames:
        return None
    h, w = imgs[0].shape[:2]
    f = rng.uniform(1.5, 2.0)
    f = min(f, min(h, w) / size)
    if f < 1:
        return None
    nh, nw = int(h / f), int(w / f)
    y0, x0 = int(rng.integers(0, nh - size + 1)), int(rng.integers(0, nw - size + 1))
    return np.stack([cv2.resize(im, (nw, nh), interpolation=cv2.INTER_AREA)[y0:y0 + size, x0:x0 + size]
                     for im in imgs])


def _flat(img: np.ndarray) -> bool:
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    return float(np.abs(cv2.Laplacian(grey, cv2.CV_32F)).mean()) < 4.0


_photo_cache: dict[Path, np.ndarray] = {}


def make_sequence(cfg: PrepareConfig, index: int, images: list[Path], videos: list[Path]):
    """Sequence ``index`` of a prepared set: (clean (T, S, S, 3), damaged (V, T, S/s, S/s, 3),
    origin). Seeded by (seed, index) alone, so a set is the same whatever the number of workers."""
    rng = np.random.default_rng([cfg.seed, index])
    while True:
        use_video = videos and (not images or rng.random() < cfg.video_ratio)
        if use_video:
            src = videos[int(rng.integers(len(videos)))]
            seq = video_sequence(src, rng, cfg.frames, cfg.hr_size)
            if seq is None:
                continue
        else:
            src = images[int(rng.integers(len(images)))]
            if src not in _photo_cache:
                if len(_photo_cache) > 8:
                    _photo_cache.pop(next(iter(_photo_cache)))
                _photo_cache[src] = _read_rgb(src)
            seq = photo_sequence(_photo_cache[src], rng, cfg.frames, cfg.hr_size)
        if _flat(seq[cfg.frames // 2]) and rng.random() < 0.8:
            continue  # mostly skip featureless crops (sky, walls): little to learn there
        lq = np.stack([degrade_clip(seq, sample(cfg.preset, cfg.scale, seed=int(rng.integers(2 ** 31))))
                       for _ in range(cfg.versions)])
        return seq, lq, str(src)


def _make_job(args):
    return args[1], make_sequence(*args)


def check_set_path(out: str | Path) -> Path:
    """A training set's file name as :func:`prepare` writes it, or ArgumentError: a folder, or a
    name not ending in .npz (numpy would add the extension, and the set would not be where asked)."""
    if Path(out).is_dir():
        raise ArgumentError("is a folder; give the training set's file name, e.g. set.npz", path=str(out))
    if Path(out).suffix.lower() != ".npz":
        raise ArgumentError("a training set is an .npz file; give a name ending in .npz", path=str(out))
    return Path(out)


def prepare(cfg: PrepareConfig, progress: bool = True, workers: int = 1) -> Path:
    """Build the training set and write it to ``cfg.out`` (.npz, plus a .json description),
    with ``workers`` processes making sequences (the result does not depend on their number)."""
    out = check_set_path(cfg.out)
    images, videos = _gather(cfg.sources, cfg.exclude)
    if not images and not videos:
        raise InputError("no images or videos found", path=", ".join(cfg.sources),
                         hint="give folders or files of photos and videos")
    lr = cfg.hr_size // cfg.scale
    if lr % 2:
        raise UsageError(f"{option('size')} {cfg.hr_size} / {option('scale')} {cfg.scale} must be even (video codecs need even sizes)")
    hr = np.empty((cfg.sequences, cfg.frames, cfg.hr_size, cfg.hr_size, 3), np.uint8)
    lq = np.empty((cfg.sequences, cfg.versions, cfg.frames, lr, lr, 3), np.uint8)
    origins: list[str] = [""] * cfg.sequences
    jobs = [(cfg, i, images, videos) for i in range(cfg.sequences)]
    t0 = time.perf_counter()
    with bar(total=cfg.sequences, desc="prepare", unit="seq", enabled=progress) as b:
        if workers > 1:
            import multiprocessing as mp

            with mp.get_context("spawn").Pool(workers) as pool:
                for i, (seq, dam, origin) in pool.imap_unordered(_make_job, jobs, chunksize=4):
                    hr[i], lq[i], origins[i] = seq, dam, origin
                    b.update(1)
        else:
            for job in jobs:
                i, (hr[i], lq[i], origins[i]) = _make_job(job)
                b.update(1)
    seconds = time.perf_counter() - t0
    out.parent.mkdir(parents=True, exist_ok=True)
    (np.savez_compressed if cfg.compress else np.savez)(out, hr=hr, lq=lq)
    meta = {**asdict(cfg), "origins": origins, "images": len(images), "videos": len(videos), "workers": workers,
            "seconds": seconds, "sequences_per_second": cfg.sequences / seconds}
    out.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    return out


def augment(rng: np.random.Generator, lq: np.ndarray, hr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same random flip (left-right, up-down), transpose and time reversal of a damaged clip
    and its clean frames, (T, H, W, 3) each; four draws from ``rng`` whatever is chosen."""
    if rng.random() < 0.5:
        lq, hr = lq[:, :, ::-1], hr[:, :, ::-1]
    if rng.random() < 0.5:
        lq, hr = lq[:, ::-1], hr[:, ::-1]
    if rng.random() < 0.5:
        lq, hr = lq.transpose(0, 2, 1, 3), hr.transpose(0, 2, 1, 3)
    if rng.random() < 0.5:
        lq, hr = lq[::-1], hr[::-1]
    return lq, hr


class ClipDataset:
    """Random aligned crops of one or more prepared sets (of the same scale, frame count and
    sizes): (LQ clip, clean clip) pairs as float tensors. Sequence ``i`` runs over the sets in
    the order given."""

    def __init__(self, path: str | Path | list):
        paths = [path] if isinstance(path, (str, Path)) else list(path)
        if not paths:
            raise ConfigError("no training set given", hint="name one or more .npz files made by `enhancer prepare`")
        self.parts: list[tuple[np.ndarray, np.ndarray]] = []
        for p in paths:
            with np.load(p) as data:
                self.parts.append((data["hr"], data["lq"]))
        hr0, lq0 = self.parts[0]
        for p, (hr, lq) in zip(paths, self.parts):
            if hr.shape[1:] != hr0.shape[1:] or lq.shape[1:] != lq0.shape[1:]:
                raise ConfigError(f"frames, sizes or versions differ from {shown(paths[0])}", path=str(p),
                                  hint="train on sets prepared with the same options")
        self.scale = hr0.shape[2] // lq0.shape[3]
        self.frames = hr0.shape[1]
        self.versions = lq0.shape[1]
        self.lr_size = lq0.shape[3]
        self._starts = np.cumsum([0] + [hr.shape[0] for hr, _ in self.parts])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _locate(self, i: int) -> tuple[np.ndarray, np.ndarray, int]:
        k = int(np.searchsorted(self._starts, i, side="right")) - 1
        hr, lq = self.parts[k]
        return hr, lq, i - int(self._starts[k])

    def clean(self, i: int) -> np.ndarray:
        """Sequence ``i``'s clean frames, (T, S, S, 3) uint8."""
        hr, _, j = self._locate(i)
        return hr[j]

    def damaged(self, i: int, version: int = 0) -> np.ndarray:
        """Sequence ``i``'s damaged frames, (T, S/s, S/s, 3) uint8."""
        _, lq, j = self._locate(i)
        return lq[j, version]

    def batch(self, rng: np.random.Generator, size: int, frames_in: int, frames_out: int, crop: int,
              indices: np.ndarray | None = None):
        """``size`` samples: LQ (B, 3, frames_in, crop, crop) and clean (B, 3, frames_out,
        crop*s, crop*s), float32 in [0, 1], the clean frames being the centre ``frames_out``."""
        import torch

        s = self.scale
        r = (frames_in - frames_out) // 2
        lq_out = np.empty((size, frames_in, crop, crop, 3), np.uint8)
        hr_out = np.empty((size, frames_out, crop * s, crop * s, 3), np.uint8)
        pool = indices if indices is not None else np.arange(len(self))
        for b in range(size):
            i = int(pool[rng.integers(len(pool))])
            v = int(rng.integers(self.versions))
            t0 = int(rng.integers(0, self.frames - frames_in + 1))
            lr_size = self.lr_size
            y, x = int(rng.integers(0, lr_size - crop + 1)), int(rng.integers(0, lr_size - crop + 1))
            lq = np.asarray(self.damaged(i, v)[t0:t0 + frames_in, y:y + crop, x:x + crop])
            hr = np.asarray(self.clean(i)[t0 + r:t0 + r + frames_out, y * s:(y + crop) * s, x * s:(x + crop) * s])
            lq, hr = augment(rng, lq, hr)
            lq_out[b], hr_out[b] = lq, hr
        to_t = lambda a: torch.from_numpy(a).permute(0, 4, 1, 2, 3).float().div_(255)  # noqa: E731
        return to_t(lq_out), to_t(hr_out)

    def aligned_batch(self, rng: np.random.Generator, size: int, radius: int, frames_out: int, crop: int,
                      indices: np.ndarray | None = None, misalign: float = 0.0):
        """``size`` samples for the aligned-fusion generator: LQ stacks (B, T, 3 (2r + 1), crop,
        crop), each made by :func:`~enhancer.models.align.align_stacks` on the whole
        (augmented) low-resolution frames before cropping, as at inference; and the clean centre
        frames (B, 3, T, crop*s, crop*s). Float32 in [0, 1]. With ``misalign`` > 0, half the
        samples have their neighbours' flows disturbed by a smooth random field of up to that many
        pixels (RMS; :func:`~enhancer.models.align.misalignment`)."""
        import torch

        from enhancer.models.align import align_stacks, misalignment

        s = self.scale
        frames_in = frames_out + 2 * radius
        stacks = np.empty((size, frames_out, 2 * radius + 1, crop, crop, 3), np.float32)
        hr_out = np.empty((size, frames_out, crop * s, crop * s, 3), np.uint8)
        pool = indices if indices is not None else np.arange(len(self))
        lr_size = self.lr_size
        for b in range(size):
            i = int(pool[rng.integers(len(pool))])
            v = int(rng.integers(self.versions))
            t0 = int(rng.integers(0, self.frames - frames_in + 1))
            lq = np.asarray(self.damaged(i, v)[t0:t0 + frames_in])
            hr = np.asarray(self.clean(i)[t0 + radius:t0 + radius + frames_out])
            lq, hr = augment(rng, lq, hr)
            y, x = int(rng.integers(0, lr_size - crop + 1)), int(rng.integers(0, lr_size - crop + 1))
            perturb = None
            if misalign > 0 and rng.random() < 0.5:
                amplitude = float(rng.uniform(0.25, 1.0)) * misalign
                perturb = lambda fl, a=amplitude: fl + misalignment(rng, *fl.shape[:2], a)  # noqa: E731
            full = align_stacks(np.ascontiguousarray(lq, dtype=np.float32) / 255, radius,
                                perturb=perturb)  # (T, 2r+1, h, w, 3)
            stacks[b] = full[:, :, y:y + crop, x:x + crop]
            hr_out[b] = hr[:, y * s:(y + crop) * s, x * s:(x + crop) * s]
        lq_t = torch.from_numpy(stacks).permute(0, 1, 2, 5, 3, 4).reshape(size, frames_out, -1, crop, crop)
        hr_t = torch.from_numpy(hr_out).permute(0, 4, 1, 2, 3).float().div_(255)
        return lq_t, hr_t

