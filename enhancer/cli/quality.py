"""``evaluate``, ``benchmark`` and ``study``: measuring quality."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from enhancer.cli.common import CONTEXT, check_writable, configure_ffmpeg, fail, seconds, until_done
from enhancer.data.degrade import PRESETS
from enhancer.errors import EnhancerError

# evaluate's and benchmark's metrics, as enhancer.quality.evaluate.METRICS (not imported here: the CLI starts fast)
_METRICS = ("psnr_y", "psnr_rgb", "ssim_y", "vmaf", "perceptual", "tof", "tlp", "fde", "warp")


def _chosen_metrics(text: str) -> tuple[str, ...]:
    """--metrics as names, or a usage error naming the unknown ones."""
    from enhancer.quality.evaluate import EXTRA, METRICS

    chosen = tuple(m.strip() for m in text.split(",") if m.strip())
    if not chosen:
        raise click.BadParameter("name at least one metric", param_hint="--metrics")
    bad = [m for m in chosen if m not in METRICS + EXTRA]
    if bad:
        raise click.BadParameter(f"unknown metrics {', '.join(bad)}; use {', '.join(METRICS + EXTRA)}",
                                 param_hint="--metrics")
    return chosen


@click.command(context_settings=CONTEXT, name="evaluate")
@click.argument("candidates", nargs=-1, required=True)
@click.option("--reference", "-r", required=True, help="The clean original (video file or image folder).")
@click.option("--json", "as_json", is_flag=True, help="Means and per-frame lists as JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Per-frame values as CSV.")
@click.option("--html", "html_dir", default=None, metavar="FOLDER",
              help="Write an HTML report into FOLDER (index.html: charts, before/after, crops in motion; offline).")
@click.option("--input", "degraded", default=None, metavar="FILE",
              help="The degraded input the candidates were made from, for the report's before/after views.")
@click.option("--metrics", default=",".join(_METRICS), show_default=True,
              help="Comma-separated subset; add fid for the Frechet distance of features.")
@click.option("--perceptual-net", type=click.Choice(["mobilenet_v2", "lpips-alex"]), default="mobilenet_v2",
              show_default=True)
@click.option("--full-size", is_flag=True, help="Run the perceptual network and the flow (perceptual, tLP, tOF, warp) "
              "on whole frames, not on frames of at most 320x180 pixels (much slower; docs/evaluation.md).")
@click.option("--reference-scale", type=click.Choice(["lanczos", "bicubic", "area"]), default=None,
              help="Where sizes differ (an x2 output against the original): resize the reference to the "
                   "candidate's size with this filter.")
@click.option("--candidate-scale", type=click.Choice(["area", "lanczos", "bicubic"]), default=None,
              help="Where sizes differ: resize the candidate to the reference's size with this filter.")
@click.option("-q", "--quiet", is_flag=True)
@click.option("-v", "--verbose", is_flag=True)
def evaluate_cmd(candidates, reference, as_json, as_csv, html_dir, degraded, metrics, perceptual_net, quiet, verbose,
                 reference_scale=None, candidate_scale=None, full_size=False):
    """Full-reference quality of CANDIDATES against --reference."""
    from enhancer.quality.evaluate import ANALYSIS_PIXELS, METRIC_INFO, METRICS, evaluate

    configure_ffmpeg(None, verbose)
    chosen = _chosen_metrics(metrics)
    if as_json and as_csv:
        raise click.UsageError("--json and --csv: choose one")
    if reference_scale and candidate_scale:
        raise click.UsageError("--reference-scale and --candidate-scale: scale one side, not both")
    from enhancer.errors import shown

    if html_dir:  # before any work: scoring can take minutes
        if Path(html_dir).exists() and not Path(html_dir).is_dir():
            fail(f"{shown(html_dir)}: is a file; --html takes a folder for the report", 2)
        check_writable(str(Path(html_dir) / "index.html"))
    if degraded and not os.path.exists(degraded):
        fail(f"{shown(degraded)}: no such file (--input)", 2)
    results = until_done(lambda: [evaluate(reference, c, metrics=chosen, perceptual_net=perceptual_net,
                                            progress=not quiet and not as_json, reference_scale=reference_scale,
                                            candidate_scale=candidate_scale,
                                            analysis_pixels=None if full_size else ANALYSIS_PIXELS)
                                   for c in candidates])
    if html_dir:
        from enhancer.reports.html import for_scores, write_report

        page = until_done(lambda: write_report(for_scores(reference, results, degraded), html_dir))
        print(f"report: {page}", file=sys.stderr)
    if as_json:
        print(json.dumps({"reference": reference, "results": [r.to_dict() for r in results]}))
    elif as_csv:
        keys = [k for k in METRICS if k in chosen]
        print("candidate,frame," + ",".join(keys))
        for r in results:
            for i in range(r.frames):
                vals = []
                for k in keys:
                    seq = r.per_frame.get(k, [])
                    j = i - 1 if METRIC_INFO[k].between_frames else i  # temporal metrics start at frame 1
                    vals.append(f"{seq[j]:.6g}" if 0 <= j < len(seq) else "")
                print(f"{r.candidate},{i}," + ",".join(vals))
    else:
        keys = [k for k in METRICS if k in chosen]
        print(f"{'candidate':<40}" + "".join(f"{k:>12}" for k in keys))
        for r in results:
            shown = str(Path(*Path(r.candidate).parts[-2:]))
            print(f"{shown[-39:]:<40}" + "".join(
                f"{r.mean(k):>12.4f}" if r.mean(k) is not None else f"{'n/a':>12}" for k in keys)
                + (f"   fid {r.fid:.3f}" if r.fid is not None else ""))
        net = next((r.perceptual_net for r in results if r.perceptual_net), None)
        if net:
            print(f"perceptual / tLP network: {net}")
    temporal = [k for k in METRICS if METRIC_INFO[k].between_frames and k in chosen]
    if temporal and any(r.frames < 2 for r in results):
        print(f"warning: {' and '.join(temporal)} compare consecutive frames: a one-frame clip has none (n/a)",
              file=sys.stderr)


@click.command(context_settings=CONTEXT, name="benchmark")
@click.argument("clean", nargs=-1, required=True)
@click.option("--preset", type=click.Choice(list(PRESETS)), default="web", show_default=True)
@click.option("--scale", type=click.Choice(["1", "2", "4"]), default="2", show_default=True)
@click.option("--models", default="", help="Comma-separated model names or paths, the field's .pth, .pt, .ckpt, "
              ".safetensors and .onnx files too (default: every installed model of that scale).")
@click.option("-o", "--output", default="benchmark", show_default=True, help="Working and report folder.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--start", default=None, help="Segment start in each clip.")
@click.option("--duration", default=None, help="Segment length in each clip.")
@click.option("--metrics", default=",".join(_METRICS), show_default=True,
              help="Comma-separated subset, as in evaluate (add fid for the Frechet distance of features).")
@click.option("--perceptual-net", type=click.Choice(["mobilenet_v2", "lpips-alex"]), default="mobilenet_v2",
              show_default=True)
@click.option("--precisions", default="auto", show_default=True,
              help="Comma-separated precisions each model runs in (auto, fp32, bf16, fp16, int8): with more than one, "
                   "each model is scored in each, as MODEL@PRECISION.")
@click.option("-q", "--quiet", is_flag=True)
def benchmark_cmd(clean, preset, scale, models, output, seed, start, duration, perceptual_net, quiet, metrics,
                  precisions):
    """Degrade CLEAN clips, restore them with each model and the classical baselines, score all."""
    from enhancer.restore import weights
    from enhancer.reports.benchmark import run_benchmark, write_outputs
    from enhancer.progress import write

    configure_ffmpeg(None, False)
    chosen = _chosen_metrics(metrics)
    wanted = tuple(p.strip() for p in precisions.split(",") if p.strip())
    bad = [p for p in wanted if p not in ("auto", "fp32", "bf16", "fp16", "int8")]
    if bad or not wanted:
        fail(f"--precisions: unknown precision {', '.join(bad) or '(none given)'}; "
             "use auto, fp32, bf16, fp16 or int8", 2)
    if models:
        names = [m.strip() for m in models.split(",") if m.strip()]
    else:
        names = [n for n, _, card in weights.catalogue() if card.scale == int(scale)]
    from enhancer.errors import ModelError

    # a model named that cannot be used is a usage error, as in enhance
    res = until_done(lambda: run_benchmark(
        list(clean), output, preset=preset, scale=int(scale), models=names, seed=seed, start=seconds(start, "--start"),
        duration=seconds(duration, "--duration"), metrics=chosen, perceptual_net=perceptual_net, progress=not quiet,
        precisions=wanted, log=(lambda m: None) if quiet else write), usage=(ModelError,))
    import shlex

    from enhancer.reports.benchmark import for_report
    from enhancer.reports.html import write_report

    paths = write_outputs(res, output, command="enhancer benchmark " + shlex.join(sys.argv[2:]))
    if quiet:  # errors still print (as they happened, without -q)
        for msg in res.failed.values():
            write(f"error: {msg}")
    if not res.results:  # every clip failed, each said why
        fail(f"no clip could be scored ({len(res.failed)} failed); details: {paths['json']}", 1)
    try:
        page = write_report(for_report(res), Path(output) / "report")
    except EnhancerError as e:
        fail(str(e), 1)
    print(res.markdown())
    print(f"\nreport: {page}  table: {paths['markdown']}  data: {paths['json']}", file=sys.stderr)
    if res.failed:  # the others were scored; the run as a whole did not do all it was asked
        fail(f"{len(res.failed)} of {len(clean)} clips could not be scored (see above)", 1)


@click.group(context_settings=CONTEXT, name="study")
def study_cmd() -> None:
    """A blind A/B study: make the page people judge pairs on, then score their choices."""


@study_cmd.command("make")
@click.argument("folders", nargs=-1, required=True)
@click.option("-o", "--output", required=True, help="The study folder (index.html, media/, study.json).")
@click.option("--seed", type=int, default=None, help="Seed for the order of pairs and sides (default: random).")
@click.option("--repeat", type=click.IntRange(1, 100), default=1, show_default=True,
              help="Trials per clip and pair of methods.")
@click.option("-q", "--quiet", is_flag=True)
def study_make_cmd(folders, output, seed, repeat, quiet):
    """Pairs of the same clip from FOLDERS (one per method, named after it) on an offline page."""
    from enhancer.errors import UsageError
    from enhancer.reports.study import describe, make_study

    configure_ffmpeg(None, False)
    try:
        study = make_study(list(folders), output, seed=seed, repeats=repeat,
                           log=(lambda m: None) if quiet else (lambda m: print(m, file=sys.stderr, flush=True)))
    except EnhancerError as e:
        fail(str(e), 2 if isinstance(e, UsageError) else 1)
    print(describe(study))


@study_cmd.command("score")
@click.argument("results", nargs=-1, required=True)
def study_score_cmd(results):
    """Preference rates with 95% intervals and a verdict per pair, from the exported RESULTS CSV files."""
    from enhancer.reports.preference import expand, score_files

    try:
        print(score_files(expand(list(results))))
    except EnhancerError as e:
        fail(str(e), 1)
