"""Synthetic damage that mimics real low-quality footage, drawn once per clip.

A :class:`Degradation` is sampled from a preset with a seeded generator: every parameter is fixed
for the clip (or varies smoothly over time where real damage does: noise level, flicker, scratch
positions), so the damage is temporally coherent as in real footage. Stages, in the order damage
happens: blur (isotropic, anisotropic, motion) -> downscale (area/bicubic/bilinear with scale
jitter) -> faded colour -> flicker -> film grain -> scratches and dust -> interlace combing ->
noise (Gaussian colour/grey, Poisson) -> sharpening (the halos of cameras and broadcast chains)
-> JPEG -> an earlier real codec pass at another size, resized afterwards (footage that was
compressed, rescaled and compressed again: second-order damage) -> the final real video codec
through ffmpeg (H.264, HEVC, MPEG-4 part 2 or MPEG-2 at a random quality), so compression
artefacts have their real temporal structure.

Presets: ``web`` (mixed web and broadcast damage, from a plain downscale and one encode to
second-order chains; the training preset), ``light``, ``archive`` (film), ``vhs`` (tape),
``x264`` (the bicubic downscale below and one x264 encode at CRF 23-33: a fixed evaluation
protocol) and ``bicubic`` (the classic super-resolution protocol: MATLAB's ``imresize`` bicubic, whose kernel is
stretched by the factor so that it filters before it subsamples, as Set5, Set14, Vid4 and the
published tables were made; :func:`imresize`).

Frames are float32 RGB in [0, 1], (H, W, 3); clips are (T, H, W, 3).
"""
from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from enhancer.errors import ArgumentError, InputError

PRESETS = ("web", "light", "archive", "vhs", "x264", "bicubic")
CODECS = ("h264", "h265", "mpeg4", "mpeg2")
GOP = 50  # frames per codec round trip when a video is degraded as a stream
MIN_SIZE = 8  # the smallest damaged frame (width and height) made: smaller ones failed inside OpenCV


@dataclass
class Scratch:
    x: float  # position as a fraction of the width
    drift: float  # fraction of the width per frame
    width: int
    strength: float  # + bright, - dark
    start: int
    length: int


@dataclass
class Degradation:
    """Every parameter of one clip's damage."""

    scale: int = 2
    blur: str = "none"  # none | iso | aniso | motion
    blur_sigma: tuple[float, float] = (0.0, 0.0)
    blur_angle: float = 0.0
    motion_length: int = 0
    down_method: str = "area"
    down_jitter: float = 1.0
    fade: float = 0.0  # 0..1 desaturation and colour cast
    fade_cast: tuple[float, float, float] = (1.0, 1.0, 1.0)
    flicker: float = 0.0  # relative brightness amplitude
    flicker_freq: float = 0.0
    grain: float = 0.0  # standard deviation in [0, 1] units
    scratches: list[Scratch] = field(default_factory=list)
    dust_rate: float = 0.0  # specks per frame
    interlace: bool = False
    noise: str = "none"  # none | gauss_color | gauss_gray | poisson
    noise_sigma: tuple[float, float] = (0.0, 0.0)  # at the first and last frame
    poisson_peak: float = 0.0
    sharpen: float = 0.0  # unsharp-mask amount (0: none)
    sharpen_sigma: float = 1.0
    jpeg_quality: int = 0  # 0: none
    pre_codec: str = "none"  # an earlier codec pass: none | h264 | h265 | mpeg4 | mpeg2
    pre_codec_quality: int = 0
    pre_codec_scale: float = 1.0  # the earlier pass ran at this multiple of the final size
    codec: str = "none"  # the final codec: none | h264 | h265 | mpeg4 | mpeg2
    codec_quality: int = 0  # CRF for h264/h265, qscale for mpeg4/mpeg2
    codec_preset: str = "veryfast"
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
def sample(preset: str = "web", scale: int = 2, seed: int | None = None) -> Degradation:
    """Draw one clip's damage from a preset."""
    if preset not in PRESETS:
        raise ArgumentError(f"unknown damage preset {preset!r}", hint=f"one of {', '.join(PRESETS)}")
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2 ** 31))
    elif seed < 0:
        raise ArgumentError(f"seed {seed}: seeds are 0 or more")
    rng = np.random.default_rng(seed)
    d = Degradation(scale=scale, seed=seed)
    u = rng.uniform

    def draw_blur(p: float, max_sigma: float) -> None:
        if rng.random() >= p:
            return
        kind = rng.choice(["iso", "aniso", "motion"], p=[0.5, 0.35, 0.15])
        d.blur = str(kind)
        if kind == "iso":
            s = u(0.3, max_sigma)
            d.blur_sigma = (s, s)
        elif kind == "aniso":
            d.blur_sigma = (u(0.3, max_sigma), u(0.3, max_sigma))
            d.blur_angle = u(0, math.pi)
        else:
            d.motion_length = int(rng.integers(3, 8))
            d.blur_angle = u(0, math.pi)

    def draw_codec(strong: bool) -> tuple[str, int]:
        codec = str(rng.choice(CODECS, p=[0.6, 0.15, 0.13, 0.12] if strong else [0.8, 0.1, 0.05, 0.05]))
        lo, hi = {"h264": (20, 41), "h265": (22, 41), "mpeg4": (2, 16), "mpeg2": (2, 16)}[codec]
        if not strong:
            hi = lo + (hi - lo) // 2
        return codec, int(rng.integers(lo, hi))

    d.down_method = str(rng.choice(["area", "bicubic", "bilinear"]))
    d.down_jitter = float(u(0.85, 1.15)) if rng.random() < 0.4 else 1.0
    if preset == "bicubic":
        d.down_method, d.down_jitter = "imresize", 1.0
    elif preset == "x264":
        d.down_method, d.down_jitter = "imresize", 1.0
        d.codec, d.codec_quality, d.codec_preset = "h264", int(rng.integers(23, 34)), "medium"
    elif preset == "web" and rng.random() < 0.35:
        # plain: a downscale and one encode, as most web video is made
        d.down_method = str(rng.choice(["bicubic", "area", "bilinear"], p=[0.5, 0.3, 0.2]))
        draw_blur(0.2, 1.0)
        if rng.random() < 0.9:
            d.codec, d.codec_quality = draw_codec(strong=True)
            d.codec_preset = str(rng.choice(["veryfast", "faster", "medium"]))
    elif preset in ("web", "light"):
        strong = preset == "web"
        draw_blur(0.6 if strong else 0.4, 1.6 if strong else 0.8)
        r = rng.random()
        if r < (0.5 if strong else 0.35):
            d.noise = "gauss_color" if rng.random() < 0.6 else "gauss_gray"
            top = 10 if strong else 4
            a, b = u(1, top), u(1, top)
            d.noise_sigma = (a / 255, b / 255)
        elif r < (0.65 if strong else 0.45):
            d.noise = "poisson"
            d.poisson_peak = float(10 ** u(2.0 if strong else 2.6, 3.3))
        if strong and rng.random() < 0.3:
            d.sharpen, d.sharpen_sigma = float(u(0.3, 1.5)), float(u(0.7, 2.0))
        if rng.random() < 0.15:
            d.jpeg_quality = int(rng.integers(50 if strong else 80, 95))
        if strong and rng.random() < 0.3:
            d.pre_codec, d.pre_codec_quality = draw_codec(strong=False)
            d.pre_codec_scale = float(rng.choice([u(0.5, 0.9), u(1.1, 1.6)]))
        if rng.random() < 0.9:
            d.codec, d.codec_quality = draw_codec(strong)
            d.codec_preset = str(rng.choice(["veryfast", "faster", "medium"]))
    elif preset == "archive":
        draw_blur(0.8, 1.8)
        if rng.random() < 0.7:
            d.fade = float(u(0.2, 0.7))
            d.fade_cast = (float(u(1.0, 1.12)), float(u(0.95, 1.05)), float(u(0.8, 0.97)))
        d.flicker = float(u(0.02, 0.08))
        d.flicker_freq = float(u(0.5, 4.0))
        d.grain = float(u(0.01, 0.05))
        for _ in range(int(rng.integers(0, 4))):
            d.scratches.append(Scratch(x=float(u(0.05, 0.95)), drift=float(rng.normal(0, 0.0015)),
                                       width=int(rng.integers(1, 3)), strength=float(rng.choice([-1, 1]) * u(0.15, 0.5)),
                                       start=int(rng.integers(0, 20)), length=int(rng.integers(15, 200))))
        d.dust_rate = float(u(0.2, 2.5))
        d.codec = "mpeg2"
        d.codec_quality = int(rng.integers(3, 10))
    else:  # vhs
        draw_blur(1.0, 1.2)
        d.noise = "gauss_color"
        a = u(2, 9)
        d.noise_sigma = (a / 255, u(0.8, 1.2) * a / 255)
        d.interlace = bool(rng.random() < 0.6)
        d.fade = float(u(0.0, 0.3))
        d.flicker = float(u(0.0, 0.03))
        d.flicker_freq = float(u(0.5, 2.0))
        d.codec = str(rng.choice(["mpeg2", "h264"]))
        d.codec_quality = int(rng.integers(3, 9)) if d.codec == "mpeg2" else int(rng.integers(22, 32))
    return d


# ---------------------------------------------------------------------------------------------
def _blur_kernel(d: Degradation) -> np.ndarray | None:
    if d.blur == "none":
        return None
    if d.blur == "motion":
        n = max(3, d.motion_length | 1)
        k = np.zeros((n, n), np.float32)
        c = n // 2
        dx, dy = math.cos(d.blur_angle), math.sin(d.blur_angle)
        for i in range(n * 4):
            t = i / (n * 4 - 1) - 0.5
            k[int(round(c + t * (n - 1) * dy)), int(round(c + t * (n - 1) * dx))] = 1
        return k / k.sum()
    sx, sy = d.blur_sigma
    size = int(2 * math.ceil(3 * max(sx, sy)) + 1)
    ax = np.arange(size, dtype=np.float32) - size // 2
    xx, yy = np.meshgrid(ax, ax)
    c, s = math.cos(d.blur_angle), math.sin(d.blur_angle)
    xr, yr = c * xx + s * yy, -s * xx + c * yy
    k = np.exp(-0.5 * ((xr / max(sx, 1e-3)) ** 2 + (yr / max(sy, 1e-3)) ** 2))
    return (k / k.sum()).astype(np.float32)


_CV2 = {"area": cv2.INTER_AREA, "bicubic": cv2.INTER_CUBIC, "bilinear": cv2.INTER_LINEAR}


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic with a = -0.5 (MATLAB's and PIL's bicubic; OpenCV's INTER_CUBIC uses -0.75)."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))


@functools.lru_cache(maxsize=64)
def _imresize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """The (n_out, n_in) matrix of MATLAB's ``imresize`` bicubic along one axis: where it shrinks,
    the kernel is widened by the factor (antialiasing); edges mirror."""
    scale = n_out / n_in
    width = 4.0 / scale if scale < 1 else 4.0
    x = np.arange(1, n_out + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)  # where output pixel x falls in the input (1-based)
    taps = int(math.ceil(width)) + 2
    idx = np.floor(u - width / 2)[:, None] + np.arange(taps)[None, :]
    dist = u[:, None] - idx
    wts = scale * _cubic(scale * dist) if scale < 1 else _cubic(dist)
    wts /= wts.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(n_in), np.arange(n_in - 1, -1, -1)])
    cols = mirror[np.mod(idx - 1, 2 * n_in).astype(np.int64)]
    m = np.zeros((n_out, n_in), np.float64)
    np.add.at(m, (np.repeat(np.arange(n_out), taps), cols.ravel()), wts.ravel())
    return m.astype(np.float32)


def imresize(img: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """MATLAB's ``imresize(img, [h w], 'bicubic')`` on a float (H, W, C) frame: rows first, then
    columns (MATLAB's order where both shrink by the same factor), in float without rounding
    between the two passes (a uint8 MATLAB image is rounded between them: at most a level apart)."""
    h, w = out_hw
    H, W = img.shape[:2]
    x = img.astype(np.float32, copy=False)
    if h != H:
        x = (_imresize_matrix(H, h) @ x.reshape(H, -1)).reshape(h, W, *img.shape[2:])
    if w != W:
        x = np.matmul(_imresize_matrix(W, w), x if x.ndim == 3 else x[..., None])
        x = x if img.ndim == 3 else x[..., 0]
    return np.ascontiguousarray(x, dtype=np.float32)


def _downscale(img: np.ndarray, d: Degradation, out_hw: tuple[int, int]) -> np.ndarray:
    h, w = out_hw
    if d.down_method == "imresize":
        return imresize(img, (h, w)) if img.shape[:2] != (h, w) else img
    if d.down_jitter != 1.0:
        jh, jw = max(8, int(round(h * d.down_jitter))), max(8, int(round(w * d.down_jitter)))
        img = cv2.resize(img, (jw, jh), interpolation=_CV2[d.down_method])
        return cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC)
    if img.shape[:2] == (h, w):
        return img
    return cv2.resize(img, (w, h), interpolation=_CV2[d.down_method])


def _luma(img: np.ndarray) -> np.ndarray:
    return img @ np.array([0.299, 0.587, 0.114], np.float32)


class ClipDegrader:
    """Applies one :class:`Degradation` frame by frame (streaming), keeping the per-clip state
    (random stream, flicker phase, scratch positions). The codec stage is separate
    (:func:`apply_codec`) because it needs whole sequences."""

    def __init__(self, d: Degradation, length_hint: int = 100):
        self.d = d
        self.rng = np.random.default_rng(d.seed + 1)
        self.kernel = _blur_kernel(d)
        self.length = max(1, length_hint)
        self.t = 0
        self._prev: np.ndarray | None = None
        self._phase = float(self.rng.uniform(0, 2 * math.pi))
        self._walk = 0.0

    def frame(self, hr: np.ndarray) -> np.ndarray:
        """One clean frame (H, W, 3) float32 in [0, 1] -> its damaged low-resolution version."""
        d, rng, t = self.d, self.rng, self.t
        h, w = hr.shape[0] // d.scale, hr.shape[1] // d.scale
        x = hr
        if self.kernel is not None:
            x = cv2.filter2D(x, -1, self.kernel, borderType=cv2.BORDER_REFLECT)
        x = _downscale(x, d, (h, w))
        if d.fade:
            y = _luma(x)[..., None]
            x = (x * (1 - d.fade) + y * d.fade) * np.array(d.fade_cast, np.float32)
            x = 0.08 * d.fade + x * (1 - 0.15 * d.fade)  # lifted blacks, lower contrast
        if d.flicker:
            self._walk = 0.9 * self._walk + rng.normal(0, d.flicker * 0.3)
            gain = 1 + d.flicker * math.sin(self._phase + 2 * math.pi * d.flicker_freq * t / 25) + self._walk
            x = x * gain
        if d.grain:
            g = rng.normal(0, 1, size=(h, w, 1)).astype(np.float32)
            g = cv2.GaussianBlur(g, (0, 0), 0.7)[..., None] * 1.8
            y = _luma(np.clip(x, 0, 1))[..., None]
            x = x + g * d.grain * (0.5 + 2 * y * (1 - y) + 0.25)
        for s in d.scratches:
            if s.start <= t < s.start + s.length:
                cx = (s.x + s.drift * (t - s.start)) * w + math.sin(t * 0.7 + s.x * 10) * 0.6
                xs = np.arange(w, dtype=np.float32)
                prof = np.exp(-0.5 * ((xs - cx) / (0.5 * s.width)) ** 2)
                fade_y = 0.7 + 0.3 * np.sin(np.linspace(0, 3, h) + t)[:, None]
                x = x + (s.strength * prof[None, :] * fade_y)[..., None]
        if d.dust_rate:
            for _ in range(rng.poisson(d.dust_rate)):
                cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
                ax = (int(rng.integers(1, max(2, w // 80) + 1)), int(rng.integers(1, max(2, h // 80) + 1)))
                val = 0.05 if rng.random() < 0.7 else 0.95
                cv2.ellipse(x, (cx, cy), ax, float(rng.uniform(0, 180)), 0, 360, (val, val, val), -1)
        x = np.clip(x, 0, 1).astype(np.float32)
        if d.interlace:
            cur = x
            if self._prev is not None:  # odd rows from the previous instant: combing on motion
                x = cur.copy()
                x[1::2] = 0.5 * (self._prev[1::2] + cur[1::2]) if t % 2 else self._prev[1::2]
            self._prev = cur
        if d.noise != "none":
            frac = t / max(1, self.length - 1)
            sigma = d.noise_sigma[0] + (d.noise_sigma[1] - d.noise_sigma[0]) * min(1.0, frac)
            if d.noise == "gauss_color":
                x = x + rng.normal(0, sigma, size=x.shape).astype(np.float32)
            elif d.noise == "gauss_gray":
                x = x + rng.normal(0, sigma, size=(h, w, 1)).astype(np.float32)
            elif d.noise == "poisson":
                x = rng.poisson(np.clip(x, 0, 1) * d.poisson_peak).astype(np.float32) / d.poisson_peak
        x = np.clip(x, 0, 1)
        if d.sharpen:
            soft = cv2.GaussianBlur(x, (0, 0), d.sharpen_sigma)
            x = np.clip(x + d.sharpen * (x - soft), 0, 1)
        if d.jpeg_quality:
            q = int(np.clip(d.jpeg_quality + rng.integers(-3, 4), 10, 100))
            ok, buf = cv2.imencode(".jpg", (x * 255 + 0.5).astype(np.uint8)[..., ::-1],
                                   [cv2.IMWRITE_JPEG_QUALITY, q])
            x = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255
        self.t += 1
        return x.astype(np.float32)


def _even(n: float) -> int:
    return max(8, int(round(n / 2)) * 2)


def apply_pre_codec(lq: np.ndarray, d: Degradation, fps: int = 25) -> np.ndarray:
    """(T, h, w, 3) uint8 -> the same after the clip's earlier codec pass: resized to the size
    that pass ran at, encoded and decoded, and resized back (unchanged if there is none)."""
    if d.pre_codec == "none":
        return lq
    from enhancer.media.codec import roundtrip

    t, h, w, _ = lq.shape
    ph, pw = _even(h * d.pre_codec_scale), _even(w * d.pre_codec_scale)
    x = np.stack([cv2.resize(f, (pw, ph), interpolation=cv2.INTER_AREA if ph < h else cv2.INTER_CUBIC) for f in lq])
    x = roundtrip(x, d.pre_codec, d.pre_codec_quality, fps=fps, preset="veryfast")
    back = cv2.INTER_AREA if ph > h else cv2.INTER_LINEAR
    return np.stack([cv2.resize(f, (w, h), interpolation=back) for f in x])


def apply_codec(lq: np.ndarray, d: Degradation, fps: int = 25) -> np.ndarray:
    """(T, h, w, 3) uint8 -> the same after the clip's codec stages (unchanged if none)."""
    lq = apply_pre_codec(lq, d, fps)
    if d.codec == "none":
        return lq
    from enhancer.media.codec import roundtrip

    return roundtrip(lq, d.codec, d.codec_quality, fps=fps, preset=d.codec_preset)


def degrade_clip(hr: np.ndarray, d: Degradation, fps: int = 25) -> np.ndarray:
    """(T, H, W, 3) uint8 clean clip -> (T, H/s, W/s, 3) uint8 damaged clip, all stages."""
    deg = ClipDegrader(d, length_hint=len(hr))
    lq = np.stack([deg.frame(f.astype(np.float32) / 255) for f in hr])
    lq = (lq * 255 + 0.5).astype(np.uint8)
    return apply_codec(lq, d, fps=fps)


def degrade_video(src: str, dst: str, preset: str = "web", scale: int = 2, seed: int | None = None,
                  progress: bool = True, start: float | None = None, duration: float | None = None) -> Degradation:
    """Make a damaged, downscaled copy of a clean video (audio and other streams kept). The
    final codec stage is the output's own encoding at the drawn quality where the output can be
    encoded so (H.264, HEVC, MPEG-2 at a rate its header can say); an earlier codec pass, or a
    final MPEG-4 part 2 (or other MPEG-2) pass, runs as a round trip over runs of ``GOP`` frames.
    No codec: lossless H.264."""
    from enhancer.media.encode import EncodeOptions, container_of
    from enhancer.media.files import refuse_output_on_input
    from enhancer.media.muxer import Muxer
    from enhancer.media.plan import mpeg2_exact
    from enhancer.media.probe import probe
    from enhancer.media.reader import FrameReader
    from enhancer.media.segment import Segment
    from enhancer.progress import bar

    refuse_output_on_input(dst, [src])
    if dst != "-":
        container_of(dst, images="")  # before any work
    info = probe(src)
    step = 2 * scale  # keep the low-resolution size even (4:2:0 needs it)
    if info.display_width < MIN_SIZE * scale or info.display_height < MIN_SIZE * scale:
        raise InputError(f"is {info.display_width}x{info.display_height}: too small to degrade at x{scale} (the "
                         f"damaged copy must be at least {MIN_SIZE}x{MIN_SIZE})", path=src,
                         hint=f"give a video of at least {MIN_SIZE * scale}x{MIN_SIZE * scale} pixels")
    d = sample(preset, scale, seed)
    deg = ClipDegrader(d, length_hint=info.frame_count or 100)
    reader = FrameReader(info, segment=Segment(start, duration))
    # MPEG-2 as the output's own codec only at a rate its header can say: at another (12.5 fps)
    # ffmpeg writes the nearest (12) and the damaged copy would not line up with its source
    final_in_muxer = d.codec in ("h264", "h265") or (d.codec == "mpeg2" and (not info.fps or mpeg2_exact(info.fps)))
    if final_in_muxer:
        enc = EncodeOptions(codec=d.codec, crf=d.codec_quality,
                            preset=d.codec_preset if d.codec != "mpeg2" else None)
    else:
        enc = EncodeOptions(codec="h264", crf=0, preset="medium")
    roundtrip_final = d.codec != "none" and not final_in_muxer
    fps = int(round(float(info.fps))) if info.fps else 25
    pending: list[tuple[np.ndarray, int, object]] = []

    def flush(muxer) -> None:
        if not pending:
            return
        clip = np.stack([p[0] for p in pending])
        clip = apply_pre_codec(clip, d, fps)
        if roundtrip_final:
            from enhancer.media.codec import roundtrip

            clip = roundtrip(clip, d.codec, d.codec_quality, fps=fps, preset=d.codec_preset)
        for img, (_, pts, tb) in zip(clip, pending):
            muxer.write(img, pts, tb)
        pending.clear()

    batched = d.pre_codec != "none" or roundtrip_final
    with Muxer(dst, info, enc, reader.colour, segment=Segment(start, duration)) as muxer, reader, \
            bar(total=info.frame_count, desc="degrade", unit="frame", enabled=progress) as b:
        for fr in reader:
            img = fr.image
            h, w = img.shape[0] // step * step, img.shape[1] // step * step
            x = img[:h, :w].astype(np.float32) / (65535.0 if img.dtype == np.uint16 else 255.0)
            lq = (deg.frame(x) * 255 + 0.5).astype(np.uint8)
            if batched:
                pending.append((lq, fr.pts, fr.time_base))
                if len(pending) >= GOP:
                    flush(muxer)
            else:
                muxer.write(lq, fr.pts, fr.time_base)
            b.update(1)
        flush(muxer)
    return d
