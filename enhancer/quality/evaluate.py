"""Full-reference metrics of candidate videos against a reference, per frame and averaged.

* ``psnr_rgb``: PSNR over the R, G and B samples (peak 255, or 65535 for 16-bit inputs scaled).
* ``psnr_y``: PSNR of BT.601 luma, Y = 16 + (65.481 R + 128.553 G + 24.966 B) (R, G, B in [0, 1]),
  kept as floats, as super-resolution papers compute it.
* ``ssim_y``: SSIM of that luma over 8x8 windows on a 4-pixel grid, the formulation ffmpeg's
  ``ssim`` filter (from x264) uses, so the two agree.
* ``vmaf``: ffmpeg's libvmaf (its built-in default model).
* ``perceptual``: LPIPS-style distance on ImageNet features (MobileNetV2 by default; the network is
  named in ``perceptual_net``), lower is better.
* ``fid``: a Frechet distance between the distributions of globally pooled ImageNet features of
  the candidate's frames and of the reference's (FID-style, on the same network as the perceptual
  distance). No video network's weights are available offline, so there is no video (FVD) variant.
* ``tof`` / ``tlp``: temporal consistency as defined with TecoGAN: the mean difference between the
  optical flow (OpenCV Farneback) of consecutive output frames and of consecutive reference frames,
  and the difference of their perceptual distances; lower is better.
* ``fde``: the frame-difference error, flicker against the truth without a flow (which cannot
  follow fast motion): the mean over pixels of |(out[t] - out[t-1]) - (ref[t] - ref[t-1])| on that
  luma (8-bit scale); lower is better.
* ``warp``: the warping error of Lai et al. 2018, flicker along the true motion: the candidate's
  frame t-1 warped onto frame t by the reference's Farneback flow, and their mean squared RGB
  difference (0..1, x 1000) where the reference's own frames warp consistently (an occlusion mask:
  forward-backward check and a match of the warped reference); :mod:`enhancer.quality.warping` defines
  it. Lower is better; ``warp`` of the reference itself is the clip's own level (blur scores below it).

The perceptual network and the flow see frames of at most :data:`ANALYSIS_PIXELS` pixels (larger
ones area-downscaled, shape kept; flow vectors are given back in the frame's own pixels), so that
scoring costs a small multiple of libvmaf's time; ``analysis_pixels=None`` scores them at full
size. The warping error's flow and mask come from that size too, its warp and its differences
are at full size. Each frame is decoded once and goes through the network once: its features serve
the perceptual distance and both of tLP's pairs.

Averages are means of the per-frame values (PSNR: mean of per-frame dB, as papers report).
Inputs are video files or folders of images; frame counts must match (no silent truncation), and
so must sizes, unless the caller says which side to scale and how (``reference_scale`` /
``candidate_scale``: never a silent resize).
"""
from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from enhancer.errors import EnhancerError, InputError, option
from enhancer.quality.clips import count, frames  # noqa: F401  (frames: also read from here)
from enhancer.quality.vmaf import VmafBeside, vmaf, vmaf_ffmpeg  # noqa: F401  (vmaf: also read from here)

from enhancer.media.files import IMAGE_EXTENSIONS as IMAGE_EXT  # noqa: E402  (the one table)
METRICS = ("psnr_y", "psnr_rgb", "ssim_y", "vmaf", "perceptual", "tof", "tlp", "fde", "warp")
# the perceptual network and the flow see at most this many pixels of a frame: with whole 540p
# frames evaluate took 65x libvmaf's CPU time here (49 s against 0.76 s), bounded about 10x
ANALYSIS_PIXELS = 320 * 180
# OpenCV Farneback's parameters as TecoGAN's tOF uses them: pyramid scale, levels, window,
# iterations, poly_n, poly_sigma, flags
FARNEBACK = (0.5, 3, 15, 3, 5, 1.2, 0)
EXTRA = ("fid",)  # distribution-level, asked for explicitly
# how a reference or a candidate of another size is brought to the other's (OpenCV for the frames,
# swscale's filter of the same name for VMAF)
SCALERS = {"lanczos": cv2.INTER_LANCZOS4, "bicubic": cv2.INTER_CUBIC, "area": cv2.INTER_AREA}


@dataclass(frozen=True)
class Metric:
    """How a metric is shown: its name, unit, direction and usual precision."""

    key: str
    label: str
    unit: str  # "" where the value has none
    higher_is_better: bool
    decimals: int
    between_frames: bool = False  # one value per pair of consecutive frames (k-1, k)

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"

    @property
    def titled(self) -> str:
        """'PSNR-Y (dB)'."""
        return f"{self.label} ({self.unit})" if self.unit else self.label


METRIC_INFO = {m.key: m for m in (
    Metric("psnr_y", "PSNR-Y", "dB", True, 2),
    Metric("psnr_rgb", "PSNR-RGB", "dB", True, 2),
    Metric("ssim_y", "SSIM-Y", "", True, 4),
    Metric("vmaf", "VMAF", "0-100", True, 2),
    Metric("perceptual", "perceptual distance", "", False, 4),
    Metric("tof", "tOF", "px", False, 3, between_frames=True),
    Metric("tlp", "tLP", "", False, 4, between_frames=True),
    Metric("fde", "frame-difference error", "", False, 3, between_frames=True),
    Metric("warp", "warping error", "1e-3", False, 4, between_frames=True),  # enhancer.quality.warping
    Metric("fid", "FID", "", False, 3),  # one value for the clip (EXTRA)
)}


# each channel's term of the luma per 8-bit value (1, 256, 3), and their sum plus 16 (1, 4)
_LUMA_TERMS = np.stack([np.arange(256) * k / 255.0 for k in (65.481, 128.553, 24.966)], axis=-1)[None]
_LUMA_SUM = np.array([[1.0, 1.0, 1.0, 16.0]])


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma in [16, 235] as float64, from uint8 RGB: 16 + 65.481 R + 128.553 G + 24.966 B
    with R, G, B in [0, 1] (through OpenCV's tables, twice numpy's speed; equal within 1e-13)."""
    return cv2.transform(cv2.LUT(np.ascontiguousarray(rgb), _LUMA_TERMS), _LUMA_SUM).reshape(rgb.shape[:2])


# a frame's PSNR in the scores is at most this (libvmaf's ceiling for 8-bit video, 6 * 8 + 12 dB):
# one frame identical to the reference would otherwise make a clip's mean infinite, however poor
# its other frames
PSNR_CEILING = 60.0


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    if a.dtype == b.dtype == np.uint8 and a.shape == b.shape and a.ndim in (2, 3) and a.flags.c_contiguous \
            and b.flags.c_contiguous:  # OpenCV sums the integer squares exactly in doubles, 100x numpy's speed
        mse = cv2.norm(a, b, cv2.NORM_L2SQR) / a.size
    else:
        mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(peak * peak / mse)


def psnr_y(reference: np.ndarray, candidate: np.ndarray) -> float:
    """``psnr_y`` of one frame, as :func:`evaluate` computes it: PSNR of the BT.601 luma
    (:func:`luma`) of two 8-bit RGB frames, at most :data:`PSNR_CEILING`. The trainer's
    validation uses it too."""
    return min(PSNR_CEILING, psnr(luma(reference), luma(candidate)))


def ssim(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """SSIM over 8x8 windows stepped by 4 pixels (ffmpeg's ssim filter / x264), of 2D planes."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)  # no copy of float64 luma
    h, w = a.shape
    h4, w4 = h // 4, w // 4
    if h4 < 2 or w4 < 2:
        raise InputError(f"frames of {w}x{h} pixels are too small for SSIM", hint="it needs at least 8x8")

    def blocks(x):  # sums over 4x4 blocks (an area resize by 4 is their mean, exact, 5x numpy's speed)
        return cv2.resize(np.ascontiguousarray(x[:h4 * 4, :w4 * 4]), (w4, h4), interpolation=cv2.INTER_AREA) * 16

    s1, s2 = blocks(a), blocks(b)
    ss = blocks(a * a) + blocks(b * b)
    s12 = blocks(a * b)

    def pairs(x):  # 8x8 windows: 2x2 neighbouring blocks
        return x[:-1, :-1] + x[1:, :-1] + x[:-1, 1:] + x[1:, 1:]

    s1, s2, ss, s12 = pairs(s1), pairs(s2), pairs(ss), pairs(s12)
    c1 = (0.01 * peak) ** 2 * 64
    c2 = (0.03 * peak) ** 2 * 64 * 63
    fs1, fs2 = s1 * s1, s2 * s2
    fs12 = s1 * s2
    vars_ = ss * 64 - fs1 - fs2
    covar = s12 * 64 - fs12
    val = ((2 * fs12 + c1) * (2 * covar + c2)) / ((fs1 + fs2 + c1) * (vars_ + c2))
    return float(val.mean())


def _embed(dist, img: np.ndarray) -> np.ndarray:
    import torch

    with torch.inference_mode():
        x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
        return dist.features.embed(x)[0].double().numpy()


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2) of two feature sets (N, D)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    if len(a) < 2 or len(b) < 2:
        return float(((mu_a - mu_b) ** 2).sum())
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # Tr((Sa Sb)^1/2) = sum of sqrt of the eigenvalues of Sa^1/2 Sb Sa^1/2 (symmetric, PSD)
    w, v = np.linalg.eigh(sa)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    ev = np.linalg.eigvalsh(root @ sb @ root)
    tr_sqrt = np.sqrt(np.clip(ev, 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(sa) + np.trace(sb) - 2 * tr_sqrt)


def analysis_size(width: int, height: int, pixels: int | None = ANALYSIS_PIXELS) -> tuple[int, int]:
    """The size the perceptual network and the flow see a ``width`` x ``height`` frame at: its own
    where it has at most ``pixels`` pixels (None: always), else about that many, shape kept."""
    if not pixels or width * height <= pixels:
        return width, height
    s = math.sqrt(pixels / (width * height))
    return max(1, round(width * s)), max(1, round(height * s))


def _shrink(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if (img.shape[1], img.shape[0]) == size:
        return img
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def flow_error(prev_c: np.ndarray, c: np.ndarray, prev_r: np.ndarray, r: np.ndarray,
               full_size: tuple[int, int] | None = None, ref_flow: np.ndarray | None = None) -> float:
    """tOF of one pair of frames: the mean absolute difference between the candidate's and the
    reference's Farneback flow (TecoGAN's parameters) from the previous frame, of 8-bit gray frames.
    Flow of frames shrunk from ``full_size`` (width, height) is given in that size's pixels.
    ``ref_flow`` is the reference's flow where the caller has it already."""
    if ref_flow is None:
        ref_flow = cv2.calcOpticalFlowFarneback(prev_r, r, None, *FARNEBACK)
    d = np.abs(cv2.calcOpticalFlowFarneback(prev_c, c, None, *FARNEBACK) - ref_flow)
    if full_size and full_size != (c.shape[1], c.shape[0]):
        return float(d[..., 0].mean() * full_size[0] / c.shape[1] + d[..., 1].mean() * full_size[1] / c.shape[0]) / 2
    return float(d.mean())


def _between(want: set, prev_gray: tuple, gray: tuple, prev_rgb: tuple | None, rgb: tuple | None,
             full: tuple[int, int]) -> tuple[float | None, float | None]:
    """tOF and the warping error of frames k-1 and k (each where ``want`` has it), sharing the
    reference's flow from k-1 to k; ``*_gray`` are (reference, candidate) gray frames at the
    analysis size, ``*_rgb`` the RGB frames at full size."""
    from enhancer.quality.warping import warping_error

    ref_flow = cv2.calcOpticalFlowFarneback(prev_gray[0], gray[0], None, *FARNEBACK)
    tof = flow_error(prev_gray[1], gray[1], prev_gray[0], gray[0], full, ref_flow) if "tof" in want else None
    warp = warping_error(prev_rgb[1], rgb[1], prev_rgb[0], rgb[0], prev_gray[0], gray[0], b=ref_flow) \
        if "warp" in want else None
    return tof, warp


class _Network:
    """Each frame through the perceptual network once, in batches: a frame's taps serve its
    distance to the reference frame and tLP's distances to the frame before it."""

    def __init__(self, dist, size: tuple[int, int], batch: int):
        self.dist, self.size, self.batch = dist, size, batch
        self.pending: list[tuple[np.ndarray, np.ndarray]] = []
        self.last = None  # the taps of the last frame scored, (reference, candidate)
        self.perceptual: list[float] = []
        self.tlp: list[float] = []

    def add(self, r: np.ndarray, c: np.ndarray) -> None:
        self.pending.append((_shrink(r, self.size), _shrink(c, self.size)))
        if len(self.pending) >= self.batch:
            self.flush()

    def flush(self) -> None:
        import torch

        if not self.pending:
            return
        n = len(self.pending)
        x = np.stack([r for r, _ in self.pending] + [c for _, c in self.pending])
        self.pending = []
        with torch.inference_mode():
            t = torch.from_numpy(x).permute(0, 3, 1, 2).float().div_(255)
            taps = self.dist.taps(t.contiguous(memory_format=torch.channels_last))
            tr, tc = [f[:n] for f in taps], [f[n:] for f in taps]
            self.perceptual += self.dist.between(tr, tc).tolist()
            if self.last is not None:  # the previous batch's last frame leads this one
                tr = [torch.cat([a, b]) for a, b in zip(self.last[0], tr)]
                tc = [torch.cat([a, b]) for a, b in zip(self.last[1], tc)]
            if len(tr[0]) > 1:
                d_r = self.dist.between([f[:-1] for f in tr], [f[1:] for f in tr])
                d_c = self.dist.between([f[:-1] for f in tc], [f[1:] for f in tc])
                self.tlp += (d_c - d_r).abs().tolist()
            self.last = ([f[-1:] for f in tr], [f[-1:] for f in tc])


@contextlib.contextmanager
def _torch_threads(n: int):
    """At most ``n`` threads for torch inside: on a loaded 2-core CPU, two busy-waiting OpenMP
    threads ran the network 4-6x slower than one thread (1.7-2.6 s against 0.4 s a 540p frame)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, min(before, n)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class Scores:
    """Per-frame values and their means for one candidate."""

    candidate: str
    frames: int
    per_frame: dict[str, list[float]] = field(default_factory=dict)
    perceptual_net: str | None = None

    def mean(self, key: str) -> float | None:
        vals = self.per_frame.get(key)
        if not vals:
            return None
        return float(np.mean(vals))

    fid: float | None = None

    def to_dict(self, per_frame: bool = True) -> dict:
        d: dict = {"candidate": self.candidate, "frames": self.frames}
        for key in METRICS:
            if key in self.per_frame:
                d[key] = self.mean(key)
        if self.fid is not None:
            d["fid"] = self.fid
        if self.perceptual_net:
            d["perceptual_net"] = self.perceptual_net
        if per_frame:
            d["per_frame"] = self.per_frame
        return d


def _check_aspect(ref_shape: tuple, cand_shape: tuple, candidate: str) -> None:
    """Sizes may differ by a scale (an x2 output against its original), never by shape: a rotated
    or cropped candidate stretched onto the reference would score as garbage, silently."""
    (rh, rw), (ch, cw) = ref_shape[:2], cand_shape[:2]
    if abs(rw * ch - cw * rh) > 0.02 * rw * ch:
        raise EnhancerError(f"is {cw}x{ch}, the reference {rw}x{rh}: not the same shape, so scaling one onto the "
                            "other would stretch it", path=candidate,
                            hint="compare the same picture (a rotated or cropped candidate is another picture)")


def _check_pair(reference: str, candidate: str) -> tuple[int, dict]:
    """The frame count both share and the files' probes (by path), or InputError/EnhancerError
    saying how they differ."""
    from enhancer.media.probe import probe

    # probed first: a file without pictures (audio only) is named as such, not as a failed frame count
    infos = {path: probe(path) for path in (reference, candidate) if not Path(path).is_dir()}
    n_ref, n_can = count(reference), count(candidate)
    for path, n in ((reference, n_ref), (candidate, n_can)):
        if n == 0:
            raise InputError("has no frames" + (" (no images in the folder)" if Path(path).is_dir() else ""),
                             path=path, hint="give a video, or a folder of numbered images")
    if n_ref != n_can:
        raise EnhancerError(f"has {n_can} frames, the reference has {n_ref}", path=candidate,
                            hint="compare the same span of the same clip")
    if reference in infos and candidate in infos:
        r, c = infos[reference].fps, infos[candidate].fps
        if r and c and abs(float(r) - float(c)) > 0.01 * float(r):
            raise EnhancerError(f"runs at {float(c):.3f} fps, the reference at {float(r):.3f}: frame k of one is not "
                                "frame k of the other", path=candidate, hint="compare the same span of the same clip")
    return n_ref, infos


def evaluate(reference: str, candidate: str, *, metrics: tuple[str, ...] = METRICS,
             perceptual_net: str = "mobilenet_v2", progress: bool = False, reference_scale: str | None = None,
             candidate_scale: str | None = None, analysis_pixels: int | None = ANALYSIS_PIXELS) -> Scores:
    """Score ``candidate`` against ``reference``. Raises if frame counts differ, or sizes differ
    and neither ``reference_scale`` (upscale the reference to the candidate's size, e.g. with
    ``lanczos``) nor ``candidate_scale`` (bring the candidate to the reference's, e.g. ``area``)
    says how to compare them; the methods are :data:`SCALERS`. ``analysis_pixels`` bounds the size
    the perceptual network and the flow see (None: full size; see :func:`analysis_size`)."""
    for how in (reference_scale, candidate_scale):
        if how is not None and how not in SCALERS:
            raise EnhancerError(f"unknown scaling {how!r}", hint=f"use one of {', '.join(SCALERS)}")
    if reference_scale and candidate_scale:
        raise EnhancerError("scale the reference or the candidate, not both")
    if "vmaf" in metrics:
        vmaf_ffmpeg(candidate)  # before any work
    total, infos = _check_pair(reference, candidate)
    scores = Scores(candidate=candidate, frames=0)
    want = set(metrics)
    dist = None
    if want & {"perceptual", "tlp", "fid"}:
        from enhancer.quality.features import perceptual

        try:
            dist = perceptual(perceptual_net)
            scores.perceptual_net = dist.name
        except EnhancerError as e:  # no ImageNet weights here: say so, score the rest
            scores.perceptual_net = f"unavailable: {e}"
            want -= {"perceptual", "tlp", "fid"}
        if "fid" in want:  # checked before any work: it needs the whole MobileNetV2
            if dist.lpips is not None:
                raise EnhancerError("fid is computed on MobileNetV2 features", path=candidate,
                                    hint=f"use {option('perceptual_net')} mobilenet_v2 with fid")
            dist.features.check_embed()
    per: dict[str, list[float]] = {k: [] for k in ("psnr_y", "psnr_rgb", "ssim_y", "fde") if k in want}
    resized: tuple[str, str, int, int] | None = None  # (which, how, width, height) where sizes differ
    net: _Network | None = None
    prev_gray = prev_diff = prev_rgb = None
    size = full = (0, 0)
    flows: list = []
    emb_r: list[np.ndarray] = []
    emb_c: list[np.ndarray] = []
    from concurrent.futures import ThreadPoolExecutor

    from enhancer.progress import bar

    # the flow (OpenCV, which lets go of the GIL) runs beside the network on a thread of its own
    pool = ThreadPoolExecutor(1, thread_name_prefix="tof") if want & {"tof", "warp"} else None
    beside: VmafBeside | None = None
    try:
        with bar(total=total, desc=Path(candidate).name[:30], unit="frame", enabled=progress) as b, \
                (_torch_threads((os.cpu_count() or 2) - 1) if dist is not None else contextlib.nullcontext()):
            for i, (r, c) in enumerate(zip(frames(reference, infos.get(reference)),
                                           frames(candidate, infos.get(candidate)))):
                if r.shape != c.shape:
                    if i == 0:
                        _check_aspect(r.shape, c.shape, candidate)
                    if reference_scale:
                        r = cv2.resize(r, (c.shape[1], c.shape[0]), interpolation=SCALERS[reference_scale])
                        resized = ("reference", reference_scale, c.shape[1], c.shape[0])
                    elif candidate_scale:
                        c = cv2.resize(c, (r.shape[1], r.shape[0]), interpolation=SCALERS[candidate_scale])
                        resized = ("candidate", candidate_scale, r.shape[1], r.shape[0])
                    else:
                        raise EnhancerError(f"frame {i} is {c.shape[1]}x{c.shape[0]}, the reference is "
                                            f"{r.shape[1]}x{r.shape[0]}", path=candidate,
                                            hint=f"add {option('reference_scale')} lanczos to upscale the reference to the "
                                                 f"candidate's size, or {option('candidate_scale')} area to downscale the "
                                                 "candidate to the reference's")
                if i == 0:
                    if "vmaf" in want:  # sizes settled: VMAF's own pass starts beside this one
                        beside = VmafBeside(reference, candidate, resized)
                    full = (c.shape[1], c.shape[0])
                    size = analysis_size(*full, analysis_pixels)
                    if want & {"perceptual", "tlp"}:  # batches of at most about 4 Mpixels
                        net = _Network(dist.for_scoring(), size,
                                       batch=max(1, min(8, 4_000_000 // (size[0] * size[1]))))
                if "psnr_rgb" in per:
                    per["psnr_rgb"].append(min(PSNR_CEILING, psnr(r, c)))
                if want & {"psnr_y", "ssim_y", "fde"}:
                    yr, yc = luma(r), luma(c)
                    if "psnr_y" in per:
                        per["psnr_y"].append(min(PSNR_CEILING, psnr(yr, yc)))
                    if "ssim_y" in per:
                        per["ssim_y"].append(ssim(yr, yc))
                    if "fde" in per:  # (out[t] - out[t-1]) - (ref[t] - ref[t-1]) = diff[t] - diff[t-1]
                        diff = yc - yr
                        if prev_diff is not None:
                            per["fde"].append(float(np.abs(diff - prev_diff).mean()))
                        prev_diff = diff
                if net is not None:
                    net.add(r, c)
                if "fid" in want:
                    emb_r.append(_embed(dist, r))
                    emb_c.append(_embed(dist, c))
                if pool is not None:
                    gray = (_shrink(cv2.cvtColor(r, cv2.COLOR_RGB2GRAY), size),
                            _shrink(cv2.cvtColor(c, cv2.COLOR_RGB2GRAY), size))
                    rgb = (r, c) if "warp" in want else None
                    if prev_gray is not None:
                        flows.append(pool.submit(_between, want, prev_gray, gray, prev_rgb, rgb, full))
                        if len(flows) > 8:  # a bounded queue: memory stays flat however long the clip
                            flows[-9].result()
                    prev_gray, prev_rgb = gray, rgb
                scores.frames += 1
                b.update(1)
            if net is not None:
                net.flush()
                for k in ("perceptual", "tlp"):
                    if k in want:
                        per[k] = getattr(net, k)
            if pool is not None:
                pairs = [f.result() for f in flows]
                for j, k in enumerate(("tof", "warp")):
                    if k in want:
                        per[k] = [p[j] for p in pairs]
        if beside is not None:
            per["vmaf"] = beside.wait(progress, scores.frames)
            beside = None
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        if beside is not None:  # this pass failed or was interrupted: VMAF's ffmpeg stops too
            beside.stop()
    if "fid" in want:
        scores.fid = frechet_distance(np.stack(emb_r), np.stack(emb_c))
    scores.per_frame = {k: per[k] for k in METRICS if k in per}
    return scores
