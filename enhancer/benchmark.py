"""Degrade clean clips, restore them with every method, score them all: tables and a report.

Methods: each named model, and the classical baselines: bicubic and lanczos upscales, and ffmpeg's
hqdn3d or nlmeans denoisers followed by a lanczos upscale. Restored clips are stored losslessly
(FFV1) so the scores measure the restoration, not a final re-encode.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from enhancer.errors import ArgumentError, UsageError, shown
from enhancer.data.degrade import degrade_video
from enhancer.evaluate import METRIC_INFO, METRICS, Scores, evaluate
from enhancer.infer.engine import EnhanceOptions, enhance_video
from enhancer.infer.models import load_restorer
from enhancer.io import ffmpeg as ff
from enhancer.io.colour import source_colour
from enhancer.io.muxer import EncodeOptions
from enhancer.io.probe import count_frames, probe
from enhancer.io.segment import Segment
from enhancer.reports.html import ClipResults, MethodRun, ReportInput

BASELINES = ("bicubic", "lanczos", "hqdn3d+lanczos", "nlmeans+lanczos")
_FFMPEG_BASELINES = {"hqdn3d+lanczos": "hqdn3d", "nlmeans+lanczos": "nlmeans=s=3:p=5:r=9"}
LABELS = {k: m.label for k, m in METRIC_INFO.items()}
HIGHER_IS_BETTER = {k: m.higher_is_better for k, m in METRIC_INFO.items()}


@dataclass
class MethodResult:
    method: str
    clip: str
    output: str
    seconds_per_frame: float
    scores: Scores


@dataclass
class BenchmarkResult:
    preset: str
    scale: int
    clips: list[str]
    methods: list[str]
    results: list[MethodResult] = field(default_factory=list)
    perceptual_net: str | None = None
    reference_files: dict[str, str] = field(default_factory=dict)
    degraded_files: dict[str, str] = field(default_factory=dict)
    seed: int = 0  # clip k was degraded with seed + k
    start: float | None = None
    duration: float | None = None

    def mean(self, method: str, key: str) -> float | None:
        vals = [r.scores.mean(key) for r in self.results if r.method == method]
        vals = [v for v in vals if v is not None and np.isfinite(v)]
        return float(np.mean(vals)) if vals else None

    def spf(self, method: str) -> float:
        return float(np.mean([r.seconds_per_frame for r in self.results if r.method == method]))

    def markdown(self, metrics: tuple[str, ...] = ("psnr_y", "ssim_y", "vmaf", "perceptual", "tof", "tlp")) -> str:
        head = "| method | " + " | ".join(LABELS[m] + (" ↑" if HIGHER_IS_BETTER[m] else " ↓") for m in metrics) + \
               " | s/frame |"
        lines = [head, "|" + "---|" * (len(metrics) + 2)]
        fmt = {"psnr_y": "{:.2f}", "psnr_rgb": "{:.2f}", "ssim_y": "{:.4f}", "vmaf": "{:.2f}", "perceptual": "{:.4f}",
               "tof": "{:.3f}", "tlp": "{:.4f}"}
        for m in self.methods:
            cells = []
            for k in metrics:
                v = self.mean(m, k)
                cells.append(fmt[k].format(v) if v is not None else "n/a")
            lines.append(f"| {m} | " + " | ".join(cells) + f" | {self.spf(m):.3f} |")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"preset": self.preset, "scale": self.scale, "seed": self.seed, "start": self.start,
                "duration": self.duration, "clips": self.clips, "methods": self.methods,
                "perceptual_net": self.perceptual_net,
                "means": {m: {k: self.mean(m, k) for k in METRICS} | {"seconds_per_frame": self.spf(m)}
                          for m in self.methods},
                "results": [{"method": r.method, "clip": r.clip, "output": r.output,
                             "seconds_per_frame": r.seconds_per_frame, **r.scores.to_dict(per_frame=True)}
                            for r in self.results]}


def _to_rgb(info) -> str:
    """The exact YUV->RGB conversion the reader uses (swscale's default path is biased by about
    one level, which would shift every score computed against it)."""
    c = source_colour(info)
    return f"in_color_matrix={c.sws_matrix}:in_range={c.range}:flags=bicubic+accurate_rnd+full_chroma_int"


def _ffmpeg_baseline(lq: str, out: Path, filt: str, scale: int) -> float:
    info = probe(lq)
    w, h = info.display_width * scale, info.display_height * scale
    t0 = time.perf_counter()
    ff.run([ff.tools().ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", ff.file_arg(lq),
            "-map", "0:v:0", "-vf", f"{filt},scale={w}:{h}:flags=lanczos,scale={_to_rgb(info)},format=gbrp",
            "-fps_mode", "passthrough", "-c:v", "ffv1", "-pix_fmt", "gbrp", ff.file_arg(out)], path=lq,
           what="baseline failed")
    return time.perf_counter() - t0


def _reference(clean: str, work: Path, step: int, start: float | None, duration: float | None) -> str:
    """The clean clip as the scores' reference, cropped like `degrade` crops (to a multiple of
    2*scale) and cut to the segment; stored losslessly."""
    info = probe(clean)
    w, h = info.display_width // step * step, info.display_height // step * step
    out = work / "reference" / (Path(clean).stem + ".mkv")
    out.parent.mkdir(parents=True, exist_ok=True)
    seg = Segment(start, duration).input_args()
    ff.run([ff.tools().ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *seg, "-i", ff.file_arg(clean),
            "-map", "0:v:0", "-vf", f"crop={w}:{h}:0:0,scale={_to_rgb(info)},format=gbrp",
            "-fps_mode", "passthrough", "-c:v", "ffv1",
            "-pix_fmt", "gbrp", ff.file_arg(out)], path=clean, what="reference failed")
    return str(out)


def run_benchmark(clean: list[str], work_dir: str, *, preset: str = "web", scale: int = 2,
                  models: list[str] | None = None, seed: int = 0, start: float | None = None,
                  duration: float | None = None, metrics: tuple[str, ...] = METRICS,
                  perceptual_net: str = "mobilenet_v2", progress: bool = True,
                  log=lambda msg: None) -> BenchmarkResult:
    """Degrade each clean clip (seed + clip index), restore it with every method, score."""
    if seed < 0:
        raise ArgumentError(f"seed {seed}: seeds are 0 or more")
    work = Path(work_dir)
    names: dict[str, str] = {}
    for src in clean:  # every clip's files are named by its stem, in one folder per method
        other = names.setdefault(Path(src).stem, src)
        if other != src:
            raise UsageError(f"{shown(other)} and {shown(src)} would both be scored as {Path(src).stem!r}",
                             hint="give clips different names (copy or link one under another name)")
    if work.exists() and not work.is_dir():
        raise UsageError("is a file; give a folder for the benchmark's work and report", path=work_dir)
    methods = [m for m in dict.fromkeys(models or []) if m not in BASELINES] + list(BASELINES)
    res = BenchmarkResult(preset=preset, scale=scale, clips=[str(c) for c in clean], methods=methods, seed=seed,
                          start=start, duration=duration)
    restorers = {}
    for m in methods:
        if m in _FFMPEG_BASELINES:
            continue
        restorers[m] = load_restorer(m, scale=scale)
    try:
        work.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot be made ({e.strerror or e})", path=work_dir,
                         hint="give a folder that can be written") from None
    for k, src in enumerate(clean):
        name = Path(src).stem
        lq = work / "degraded" / f"{name}.mkv"
        lq.parent.mkdir(parents=True, exist_ok=True)
        log(f"degrading {src} ({preset}, x{scale}, seed {seed + k})")
        degrade_video(src, str(lq), preset=preset, scale=scale, seed=seed + k, progress=progress, start=start,
                      duration=duration)
        ref = _reference(src, work, 2 * scale, start, duration)
        res.reference_files[name], res.degraded_files[name] = ref, str(lq)
        n = count_frames(str(lq))
        info = probe(str(lq))
        for m in methods:
            out = work / m.replace("/", "_") / f"{name}.mkv"
            out.parent.mkdir(parents=True, exist_ok=True)
            log(f"restoring {name} with {m}")
            if m in _FFMPEG_BASELINES:
                secs = _ffmpeg_baseline(str(lq), out, _FFMPEG_BASELINES[m], scale)
            else:
                if out.exists():
                    out.unlink()
                r = enhance_video(info, str(out), restorers[m], EncodeOptions(codec="ffv1"),
                                  EnhanceOptions(progress=progress, deinterlace="off"))
                secs = r.seconds
            log(f"scoring {name} / {m}")
            scores = evaluate(ref, str(out), metrics=metrics, perceptual_net=perceptual_net, progress=progress)
            res.perceptual_net = res.perceptual_net or scores.perceptual_net
            res.results.append(MethodResult(m, name, str(out), secs / max(1, n), scores))
    return res


def for_report(res: BenchmarkResult) -> ReportInput:
    """The benchmark as the HTML report sees it: per clip, every method's output, scores and speed."""
    clips = []
    for name in dict.fromkeys(r.clip for r in res.results):
        runs = [MethodRun(r.method, r.output, r.scores, r.seconds_per_frame) for r in res.results if r.clip == name]
        clips.append(ClipResults(name, res.reference_files.get(name, ""), res.degraded_files.get(name), runs))
    summary = (f"Degraded with preset {res.preset}, x{res.scale}; restored by every method; scored against the "
               f"clean originals: " + ", ".join(Path(c).name for c in res.clips) + ".")
    return ReportInput("enhancer benchmark", summary, clips, res.perceptual_net)


def write_outputs(res: BenchmarkResult, work_dir: str, command: str = "") -> dict[str, Path]:
    """benchmark.md (table) and benchmark.json (everything); the HTML report is
    ``enhancer.reports.html.write_report(for_report(res), ...)``."""
    work = Path(work_dir)
    md = work / "benchmark.md"
    text = [f"Preset `{res.preset}`, x{res.scale}, clips: " + ", ".join(Path(c).name for c in res.clips) + ".",
            f"Perceptual distance: {res.perceptual_net}." if res.perceptual_net else "", "", res.markdown()]
    if command:
        text += ["", f"Made with: `{command}`"]
    md.write_text("\n".join(text) + "\n")
    js = work / "benchmark.json"
    js.write_text(json.dumps(res.to_dict(), indent=1))
    return {"markdown": md, "json": js}
