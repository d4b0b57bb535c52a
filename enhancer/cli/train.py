"""``prepare``, ``train`` (and ``train plot``), ``export`` and ``calibrate``: making models."""
from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import click

from enhancer.cli.common import CONTEXT, check_writable, configure_ffmpeg, fail, seconds, until_done
from enhancer.data.degrade import PRESETS
from enhancer.errors import EnhancerError

def check_set_path_or_exit(output: str) -> None:
    """Refuse, before any work, a training set name that prepare could not write as given: one
    not ending in .npz (numpy would add it), a folder, or a place that cannot be written."""
    from enhancer.data.dataset import check_set_path

    try:
        check_set_path(output)
    except EnhancerError as e:
        fail(str(e), 2)
    check_writable(output)


@click.command(context_settings=CONTEXT, name="prepare")
@click.argument("sources", nargs=-1, required=True)
@click.option("-o", "--output", required=True, help="The training set file (.npz).")
@click.option("--exclude", multiple=True, help="File or folder names to keep out (held-out evaluation media).")
@click.option("--sequences", type=int, default=400, show_default=True)
@click.option("--frames", type=int, default=9, show_default=True)
@click.option("--size", "hr_size", type=int, default=160, show_default=True, help="Clean crop side.")
@click.option("--scale", type=int, default=2, show_default=True)
@click.option("--versions", type=int, default=2, show_default=True, help="Degraded versions per sequence.")
@click.option("--preset", type=click.Choice(list(PRESETS)), default="web", show_default=True)
@click.option("--video-ratio", type=float, default=0.4, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--compress/--no-compress", default=True, show_default=True,
              help="zlib-compress the set (smaller to carry, slower to load).")
@click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Processes making sequences (the set is the same whatever the number).")
@click.option("-q", "--quiet", is_flag=True)
def prepare_cmd(sources, output, exclude, sequences, frames, hr_size, scale, versions, preset, video_ratio, seed,
                compress, workers, quiet):
    """Turn folders of videos and photos into a compact training set."""
    from enhancer.data.dataset import PrepareConfig, prepare
    from enhancer.errors import shown

    configure_ffmpeg(None, False)
    for src in sources:
        if not os.path.exists(src):
            fail(f"{shown(src)}: no such file or folder", 2)
    check_set_path_or_exit(output)
    try:
        path = prepare(PrepareConfig(sources=list(sources), out=output, exclude=list(exclude), sequences=sequences,
                                     frames=frames, hr_size=hr_size, scale=scale, versions=versions, preset=preset,
                                     video_ratio=video_ratio, seed=seed, compress=compress),
                       progress=not quiet, workers=workers)
    except EnhancerError as e:
        fail(str(e), 2)
    except OSError as e:  # a source that cannot be read, a set that cannot be written (disk full ...)
        fail(f"{shown(e.filename or output)}: {e.strerror or e}", 1)
    print(f"wrote {path} ({path.stat().st_size / 2 ** 20:.0f} MiB)", file=sys.stderr)


@click.group(context_settings=CONTEXT, name="train", invoke_without_command=True)
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), help="Training config (TOML).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value (TOML syntax, e.g. --set run_dir='\"/tmp/run\"' --set steps=500).")
@click.option("--resume", is_flag=True, help="Continue the run from its last checkpoint.")
@click.option("--max-minutes", type=float, default=None, help="Stop (with a checkpoint) after this long.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar (the run's few status lines still print).")
@click.pass_context
def train_cmd(ctx, config_path, overrides, resume, max_minutes, quiet):
    """Train a generator (see `enhancer train --help`; `enhancer train plot RUN` draws curves)."""
    if ctx.invoked_subcommand is not None:
        return
    if not config_path:
        raise click.UsageError("--config FILE.toml is required")
    from enhancer.train.config import TrainConfig
    from enhancer.train.trainer import train

    configure_ffmpeg(None, False)
    # a training run says where it starts, what the time box fitted and where it stopped: a few
    # lines a run, kept with -q too (which hides the progress bar; GPU windows read these lines)
    logging.getLogger("enhancer.train").setLevel(logging.INFO)
    try:
        cfg = TrainConfig.from_toml(config_path, overrides)
    except (ValueError, TypeError) as e:  # a TOML syntax error, an unknown or mistyped option
        from enhancer.errors import shown

        fail(f"{shown(config_path)}: {e}", 2)
    try:
        last = train(cfg, resume=resume, max_minutes=max_minutes, progress=not quiet)
    except EnhancerError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(last), file=sys.stderr)


@train_cmd.command("plot")
@click.argument("run_dir")
@click.option("-o", "--output", default=None, help="PNG path (default RUN/curves.png).")
def train_plot_cmd(run_dir, output):
    """Draw a run's loss and validation curves to a PNG."""
    from enhancer.errors import OutputError
    from enhancer.train.plot import plot_run

    if output:
        check_writable(output)
    try:
        print(plot_run(run_dir, output))
    except EnhancerError as e:
        fail(str(e), 1 if isinstance(e, OutputError) else 2)


@click.command(context_settings=CONTEXT, name="export")
@click.argument("checkpoint")
@click.option("-o", "--output", required=True, help="weights/NAME.safetensors")
@click.option("--name", default=None, help="Model name (default: the file name).")
@click.option("--damage", default="", help="What the model repairs, for its card.")
@click.option("--metrics", "metrics_path", default=None, help="A JSON file of measured metrics to put on the card.")
@click.option("--notes", default="", help="Free text for the card.")
@click.option("--task", type=click.Choice(["web", "archive", "clean"]), default=None,
              help="The job it does (default: archive for x1 models, web otherwise).")
@click.option("--calibrate/--no-calibrate", default=True, show_default=True,
              help="Measure an aligned-fusion model's int8 ranges on the run's training sets (for --precision int8).")
def export_cmd(checkpoint, output, name, damage, metrics_path, notes, task, calibrate):
    """Write a training checkpoint's EMA generator as shipped safetensors weights."""
    from enhancer.errors import OutputError, shown
    from enhancer.train.export import export

    try:
        metrics = json.loads(Path(metrics_path).read_text()) if metrics_path else None
    except OSError as e:
        fail(f"{shown(metrics_path)}: cannot read the metrics ({e.strerror or e})", 2)
    except ValueError as e:  # not JSON, or not UTF-8
        fail(f"{shown(metrics_path)}: cannot read the metrics ({e})", 2)
    if metrics is not None and not isinstance(metrics, dict):
        fail(f"{shown(metrics_path)}: cannot read the metrics (not a JSON object)", 2)
    check_writable(output)
    try:
        print(export(checkpoint, output, name=name, damage=damage, metrics=metrics, notes=notes, task=task,
                     calibrate=calibrate, log=lambda msg: click.echo(msg, err=True)))
    except EnhancerError as e:
        fail(str(e), 1 if isinstance(e, OutputError) else 2)


@click.command(context_settings=CONTEXT, name="calibrate")
@click.argument("model")
@click.option("--data", "sets", multiple=True, required=True,
              help="A training set made by `enhancer prepare` with the damage the model repairs (repeatable); "
                   "never the media you evaluate on.")
@click.option("-o", "--output", default=None, help="Write a calibrated copy here instead of changing MODEL's file.")
@click.option("--windows", type=click.IntRange(4, 4096), default=48, show_default=True,
              help="Windows of the sets to measure on.")
def calibrate_cmd(model, sets, output, windows):
    """Measure an aligned-fusion model's feature ranges for --precision int8 and put them on its card."""
    from enhancer.errors import ModelError, OutputError
    from enhancer.restore import int8, weights

    try:
        path = str(weights.resolve(model))
    except EnhancerError as e:
        fail(str(e), 2)
    if output:
        check_writable(output)

    def work() -> None:
        try:
            int8.calibrate_file(path, list(sets), output, windows)
        except OSError as e:
            raise OutputError(f"cannot write the model file ({e.strerror or e})", path=output or path) from None

    until_done(work, usage=(ModelError,))  # a bad model file or set, a model with no int8 form: exit 2
    print(output or path)
