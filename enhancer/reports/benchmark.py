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

from enhancer.errors import ArgumentError, EnhancerError, UsageError, shown
from enhancer.data.degrade import degrade_video
from enhancer.quality.evaluate import EXTRA, METRIC_INFO, METRICS, Scores, evaluate
from enhancer.pipeline.engine import EnhanceOptions
from enhancer.pipeline.enhance import enhance_video
from enhancer.restore.loading import load_restorer
from enhancer.media import ffmpeg as ff
from enhancer.media.colour import source_colour
from enhancer.media.encode import EncodeOptions
from enhancer.media.probe import count_frames, probe
from enhancer.media.segment import Segment
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
    metrics: tuple[str, ...] = METRICS
    failed: dict[str, str] = field(default_factory=dict)  # clip -> why it could not be scored (one line)
    # a model given as a file: its method label -> the file, its SHA-256, architecture, temporal stage
    model_files: dict[str, dict] = field(default_factory=dict)

    def mean(self, method: str, key: str) -> float | None:
        vals = [r.scores.fid if key == "fid" else r.scores.mean(key) for r in self.results if r.method == method]
        vals = [v for v in vals if v is not None and np.isfinite(v)]
        return float(np.mean(vals)) if vals else None

    def spf(self, method: str) -> float:
        return float(np.mean([r.seconds_per_frame for r in self.results if r.method == method]))

    def table_metrics(self) -> tuple[str, ...]:
        """The table's columns: the metrics scored (PSNR-RGB only in the JSON where PSNR-Y is there)."""
        return tuple(k for k in METRICS + EXTRA if k in self.metrics
                     and not (k == "psnr_rgb" and "psnr_y" in self.metrics))

    def markdown(self, metrics: tuple[str, ...] | None = None) -> str:
        metrics = self.table_metrics() if metrics is None else metrics
        head = "| method | " + " | ".join(LABELS[m] + (" ↑" if HIGHER_IS_BETTER[m] else " ↓") for m in metrics) + \
               " | s/frame |"
        lines = [head, "|" + "---|" * (len(metrics) + 2)]
        for m in self.methods:
            if not any(r.method == m for r in self.results):
                continue  # no clip could be scored
            cells = []
            for k in metrics:
                v = self.mean(m, k)
                cells.append(f"{v:.{METRIC_INFO[k].decimals}f}" if v is not None else "n/a")
            lines.append(f"| {m} | " + " | ".join(cells) + f" | {self.spf(m):.3f} |")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"preset": self.preset, "scale": self.scale, "seed": self.seed, "start": self.start,
                "duration": self.duration, "clips": self.clips, "methods": self.methods,
                "metrics": list(self.metrics), "failed": self.failed, "perceptual_net": self.perceptual_net,
                "model_files": self.model_files,
                "means": {m: {k: self.mean(m, k) for k in METRICS + EXTRA if k in self.metrics}
                          | {"seconds_per_frame": self.spf(m)} for m in self.methods
                          if any(r.method == m for r in self.results)},
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
                  perceptual_net: str = "mobilenet_v2", progress: bool = True, precisions: tuple[str, ...] = ("auto",),
                  log=lambda msg: None) -> BenchmarkResult:
    """Degrade each clean clip (seed + clip index), restore it with every method, score. A clip
    that cannot be (a damaged file, frames too small) is recorded in ``failed`` with the reason,
    and the others are scored. With several ``precisions``, every model runs in each, labelled
    ``MODEL@PRECISION``."""
    if seed < 0:
        raise ArgumentError(f"seed {seed}: seeds are 0 or more")
    bad = [m for m in metrics if m not in METRICS + EXTRA]
    if bad or not metrics:
        raise ArgumentError(f"unknown metrics {', '.join(bad)}" if bad else "name at least one metric",
                            hint=f"use {', '.join(METRICS + EXTRA)}")
    work = Path(work_dir)
    names: dict[str, str] = {}
    for src in clean:  # every clip's files are named by its stem, in one folder per method
        other = names.setdefault(Path(src).stem, src)
        if other != src:
            raise UsageError(f"{shown(other)} and {shown(src)} would both be scored as {Path(src).stem!r}",
                             hint="give clips different names (copy or link one under another name)")
    if work.exists() and not work.is_dir():
        raise UsageError("is a file; give a folder for the benchmark's work and report", path=work_dir)
    given = [m for m in dict.fromkeys(models or []) if m not in BASELINES]
    precisions = tuple(dict.fromkeys(precisions)) or ("auto",)
    labels = _method_labels(given)
    runs = [(m, p, labels[m] if len(precisions) == 1 else f"{labels[m]}@{p}") for m in given for p in precisions]
    runs += [(m, "auto", m) for m in BASELINES]
    methods = [label for _, _, label in runs]
    res = BenchmarkResult(preset=preset, scale=scale, clips=[str(c) for c in clean], methods=methods, seed=seed,
                          start=start, duration=duration, metrics=tuple(metrics))
    restorers = {}
    for m, precision, label in runs:
        if m in _FFMPEG_BASELINES:
            continue
        r = restorers[label] = load_restorer(m, scale=scale, precision=precision)
        if m != labels.get(m, m):  # a file: what the table's label stands for
            inner = getattr(r, "inner", r)
            from enhancer.restore.field import file_sha256

            res.model_files[label] = {"path": str(Path(m).resolve()), "sha256": file_sha256(m),
                                      "arch": (inner.card or {}).get("arch"),
                                      "temporal_radius": r.margin if r is not inner else 0}
    try:
        work.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot be made ({e.strerror or e})", path=work_dir,
                         hint="give a folder that can be written") from None
    from enhancer.progress import bar

    with bar(total=len(clean) * (len(methods) + 1), desc="benchmark", unit="step", enabled=progress) as b:
        for k, src in enumerate(clean):
            done = b.n
            try:
                res.results += _one_clip(res, src, k, work, restorers, perceptual_net, progress, log, b)
            except EnhancerError as e:  # this clip's own problem: say it, score the others
                res.failed[str(src)] = str(e)
                log(f"error: {e}")
                b.update(done + len(methods) + 1 - b.n)
    return res


def _method_labels(models: list[str]) -> dict[str, str]:
    """Each model as the table, the report and the output folders name it: a file by its file
    name (a path says nothing another machine can use), with as many of its folders as it takes
    to tell two files of one name apart; a model's name or a classical method as it is."""
    from enhancer.restore.field import SUFFIXES

    files = [m for m in models if Path(m).suffix.lower() in SUFFIXES or "/" in m or "\\" in m]
    labels = {m: m for m in models}
    for m in files:
        parts = Path(m).resolve().parts
        for depth in range(1, len(parts) + 1):
            label = "/".join(parts[-depth:])
            others = ["/".join(Path(o).resolve().parts[-depth:]) for o in files if o != m]
            if label not in others and label not in models and label not in BASELINES:
                break
        labels[m] = label
    return labels


def _one_clip(res: BenchmarkResult, src: str, k: int, work: Path, restorers: dict, perceptual_net: str,
              progress: bool, log, b) -> list[MethodResult]:
    """Degrade one clean clip, restore it with every method, score each: all its results, or an error."""
    name = Path(src).stem
    lq = work / "degraded" / f"{name}.mkv"
    lq.parent.mkdir(parents=True, exist_ok=True)
    log(f"degrading {src} ({res.preset}, x{res.scale}, seed {res.seed + k})")
    b.set_postfix_str(f"{name}: degrade")
    degrade_video(src, str(lq), preset=res.preset, scale=res.scale, seed=res.seed + k, progress=progress,
                  start=res.start, duration=res.duration)
    ref = _reference(src, work, 2 * res.scale, res.start, res.duration)
    n = count_frames(str(lq))
    info = probe(str(lq))
    b.update(1)
    out_results = []
    for m in res.methods:
        out = work / m.replace("/", "_") / f"{name}.mkv"
        out.parent.mkdir(parents=True, exist_ok=True)
        log(f"restoring {name} with {m}")
        b.set_postfix_str(f"{name}: {m}")
        if m in _FFMPEG_BASELINES:
            secs = _ffmpeg_baseline(str(lq), out, _FFMPEG_BASELINES[m], res.scale)
        else:
            if out.exists():
                out.unlink()
            r = enhance_video(info, str(out), restorers[m], EncodeOptions(codec="ffv1"),
                              EnhanceOptions(progress=progress, deinterlace="off"))
            secs = r.seconds
        log(f"scoring {name} / {m}")
        scores = evaluate(ref, str(out), metrics=res.metrics, perceptual_net=perceptual_net, progress=progress)
        res.perceptual_net = res.perceptual_net or scores.perceptual_net
        out_results.append(MethodResult(m, name, str(out), secs / max(1, n), scores))
        b.update(1)
    res.reference_files[name], res.degraded_files[name] = ref, str(lq)
    return out_results


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
    if res.failed:
        text += ["", "Not scored:"] + [f"- {msg}" for msg in res.failed.values()]
    if command:
        text += ["", f"Made with: `{command}`"]
    md.write_text("\n".join(text) + "\n")
    js = work / "benchmark.json"
    js.write_text(json.dumps(res.to_dict(), indent=1))
    return {"markdown": md, "json": js}
