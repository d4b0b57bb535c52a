"""Command line: parses options and calls the library. Exit codes: 0 all done, 1 some file
failed, 2 usage error, 130 interrupted."""
from __future__ import annotations

import json
import logging
import os
import re
import signal
import sys

from pathlib import Path

import click

from enhancer import __version__
from enhancer.data.degrade import PRESETS
from enhancer.errors import EnhancerError
from enhancer.infer.restorer import MODEL_CHUNK

DEFAULT_MODEL = "general-x2"


def _seconds(text: str | None) -> float | None:
    """'90', '1:30', '00:01:30.5' -> seconds."""
    if text is None:
        return None
    if not re.fullmatch(r"\d+(\.\d+)?|(\d+:)?\d{1,2}:\d{1,2}(\.\d+)?", text.strip()):
        raise click.BadParameter(f"{text!r} is not a time: use seconds (90.5) or [HH:]MM:SS(.ms)")
    total = 0.0
    for part in text.strip().split(":"):
        total = total * 60 + float(part)
    return total


class _LogLines(logging.Handler):
    """The library's log as the CLI's lines on stderr (``warning: ...``, ``error: ...``, INFO as
    it is), through :func:`enhancer.progress.write`, so that no line lands on a progress bar."""

    PREFIX = {logging.WARNING: "warning: ", logging.ERROR: "error: ", logging.CRITICAL: "error: "}

    def emit(self, record: logging.LogRecord) -> None:
        from enhancer.progress import write

        try:
            write(self.PREFIX.get(record.levelno, "") + self.format(record))
        except Exception:  # noqa: BLE001 - logging's own rule: a failed log line is reported, not raised
            self.handleError(record)


def _log_to_stderr(verbose: bool) -> None:
    """The one logging set-up: enhancer's log on stderr, INFO and up with -v (every ffmpeg
    command), WARNING and up otherwise (--quiet too: warnings and errors still print)."""
    log = logging.getLogger("enhancer")
    if not any(isinstance(h, _LogLines) for h in log.handlers):
        log.addHandler(_LogLines())
    log.setLevel(logging.INFO if verbose else logging.WARNING)


def _configure_ffmpeg(ffmpeg: str | None, verbose: bool):
    """Choose the ffmpeg (an unusable or too old one is a usage error, exit 2, before any work);
    with -v, say which one and its version, and log at INFO."""
    from enhancer.io import ffmpeg as ff

    _log_to_stderr(verbose)

    try:
        tools = ff.configure(ffmpeg=ffmpeg, verbose=verbose)
    except EnhancerError as e:
        _fail(str(e), 2)
    if verbose:
        print(tools.line(), file=sys.stderr)
    return tools


class _Interrupts:
    """First Ctrl-C / SIGTERM: stop now (temporary outputs are removed as the stack unwinds).
    A second one kills the process at once."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, signum, frame) -> None:
        self.count += 1
        if self.count > 1:
            os._exit(130)
        raise KeyboardInterrupt

    def install(self) -> None:
        signal.signal(signal.SIGINT, self)
        signal.signal(signal.SIGTERM, self)


def _until_done(work, code: int = 1, usage: tuple[type, ...] = ()):
    """Run one command's work with Ctrl-C / SIGTERM stopping it cleanly (its temporaries go as the
    stack unwinds; exit 130), and its error as one line (exit ``code``; 2 for a UsageError or one
    of the ``usage`` types). An ffmpeg that died of the same Ctrl-C reports no error of its own."""
    interrupts = _Interrupts()
    interrupts.install()
    try:
        return work()
    except KeyboardInterrupt:
        pass
    except EnhancerError as e:
        if not interrupts.count:
            from enhancer.errors import UsageError

            print(f"error: {e}", file=sys.stderr)
            sys.exit(2 if isinstance(e, (UsageError, *usage)) else code)
    print("interrupted: partial outputs removed", file=sys.stderr)
    sys.exit(130)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="enhancer")
def main() -> None:
    """Repair and upscale video with a conditional spatio-temporal GAN."""
    _log_to_stderr(verbose=False)  # -v raises it to INFO (_configure_ffmpeg)


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", required=True,
              help="Output folder (mirrors the input tree), or a file name when there is one input, or - for stdout.")
@click.option("-r", "--recursive", is_flag=True, help="Look for videos in sub-folders too.")
@click.option("--model", "-m", default=None,
              help="Model name (see `enhancer models`), a .safetensors path, a file of the field's models (.pth, "
                   ".pt, .ckpt or .safetensors read by spandrel; .onnx), or lanczos | bicubic | bilinear | "
                   "nearest [default: the installed model for --task and --scale: general-x2].")
@click.option("--task", type=click.Choice(["web", "archive"]), default=None,
              help="What to do when no --model is named: web (upscale web and broadcast video, x2 unless "
                   "--scale says otherwise) or archive (restore film and tape at their own size) [default: web].")
@click.option("--scale", "-s", type=click.Choice(["1", "2", "4"]), default=None,
              help="Upscale factor (default: the model's own; 2 for classical upscalers).")
@click.option("--codec", type=click.Choice(["h264", "h265", "prores", "dnxhr", "ffv1", "mpeg2", "png", "tiff"]),
              default="h264", show_default=True,
              help="Output codec: prores and dnxhr (HQ, HQX for 10-bit, 444) are for editors; png/tiff write an "
                   "image sequence folder.")
@click.option("--crf", type=int, default=None, help="Quality for h264 (default 18) / h265 (default 20); lower is better.")
@click.option("--preset", default=None, help="x264/x265 preset (default medium).")
@click.option("--encoder-args", default=None, metavar="OPTIONS",
              help="More options for the video encoder, as ffmpeg takes them, e.g. \"-tune film -g 48\" or "
                   "\"-x264-params aq-mode=3\" (after enhancer's own, so they win; inputs, outputs, filters, "
                   "timing and other streams stay enhancer's).")
@click.option("--pix-fmt", default=None,
              help="Output pixel format (default: the source's chroma format and bit depth where the codec holds "
                   "them, else the nearest, with a warning).")
@click.option("--size", "size_text", default=None, metavar="WxH",
              help="Exact output size: the model's output resized (lanczos) to it, aspect kept; where the aspects "
                   "differ the picture is fitted inside with black bars, and a warning says so.")
@click.option("--width", type=click.IntRange(2, 16384), default=None,
              help="Output width; the height follows from the aspect.")
@click.option("--height", type=click.IntRange(2, 16384), default=None,
              help="Output height; the width follows from the aspect.")
@click.option("--square-pixels", is_flag=True,
              help="Resample a source with non-square pixels (SAR other than 1:1) to square ones, so it shows the "
                   "same shape anywhere (default: keep the source's pixel aspect ratio).")
@click.option("--container", type=click.Choice(["mp4", "mkv", "mov"]), default=None,
              help="Container for outputs in a folder (default: the source's where it can hold the codec).")
@click.option("--audio", type=click.Choice(["copy", "aac", "none"]), default="copy", show_default=True,
              help="Audio streams: copied as they are, re-encoded to AAC, or left out.")
@click.option("--no-subtitles", is_flag=True, help="Leave subtitle streams out.")
@click.option("--start", default=None, help="Start of the segment to enhance (seconds or HH:MM:SS).")
@click.option("--duration", default=None, help="Length of the segment to enhance (seconds or HH:MM:SS).")
@click.option("--splice", is_flag=True,
              help="Write the whole file with only the --start/--duration segment enhanced, put back frame-exactly; "
                   "audio untouched. Scale 1: the rest is copied from the source (ProRes, DNxHR) or re-encoded "
                   "losslessly; scale 2 or 4: the rest is upscaled with lanczos.")
@click.option("--deinterlace", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
              help="bwdif deinterlacing; auto follows the stream's field order.")
@click.option("--fps", "fps_text", default=None, metavar="RATE",
              help="Frame rate of image-sequence inputs, e.g. 24, 23.976 or 30000/1001 (default: the fps.txt "
                   "beside the images, else 25). Videos keep their own timing.")
@click.option("--chunk", type=click.IntRange(1, 1024), default=None,
              help=f"Output frames per model pass (speed/memory only; default {MODEL_CHUNK['cpu']} on CPU, "
                   f"{MODEL_CHUNK['cuda']} on CUDA).")
@click.option("--tile", default="auto", show_default=True,
              help="Tile side in input pixels for the model, 0 for none, auto to fit free memory.")
@click.option("--temporal", default="auto", show_default=True, metavar="auto|on|off",
              help="Temporal-consistency stage for per-frame models: each output frame blended with its "
                   "neighbours' (2 each side), warped by the input's optical flow where it can be trusted. auto: "
                   "on for the field's models (.pth, .pt, .ckpt, .safetensors, .onnx), off for enhancer's own, "
                   "which see their neighbours already; on: for any per-frame model (a classical method too). "
                   "Experts: a number of neighbours each side, 1-4, in place of on.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto", show_default=True,
              help="auto: fp32 on CPU, bf16 (or fp16) on CUDA.")
@click.option("--skip-existing/--overwrite", default=True, show_default=True,
              help="Skip inputs whose output exists, or redo them.")
@click.option("--retry-failed", is_flag=True, help="Retry inputs that failed in an earlier run into this folder.")
@click.option("--keep-going/--fail-fast", default=True, show_default=True,
              help="Go on after a failed file, or stop the batch at the first failure.")
@click.option("--report", "report_path", default=None, help="Write the batch summary as JSON to this file.")
@click.option("--part-seconds", type=click.FloatRange(0.1, None), default=120.0, show_default=True,
              help="Outputs are encoded in parts, a new one after this many seconds of processing; an "
                   "interrupted file resumes after its last finished part.")
@click.option("--strict", is_flag=True,
              help="An input that holds fewer frames than its container announces (a file cut short) fails.")
@click.option("--preview", type=float, default=None, metavar="SECONDS",
              help="Only write NAME.preview.mp4: a split before/after view of this many seconds.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: one file after another in this process; ray: one task per file on a Ray cluster "
                   "(pip install 'enhancer[ray]'; inputs and outputs on a path every node shares).")
@click.option("--ray-address", default=None, metavar="ADDR",
              help="The Ray cluster to use (host:port, or auto); default: start Ray on this machine.")
@click.option("--ray-split", type=click.FloatRange(min=0), default=600.0, show_default=True, metavar="SECONDS",
              help="With --executor ray: a file longer than this is made by a task per part of this length, on "
                   "several workers at once (0: a task per file).")
@click.option("--dry-run", is_flag=True, help="Show what would be done, do nothing.")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per file on stdout.")
@click.option("--ffmpeg", "ffmpeg_path", default=None,
              help="ffmpeg binary to use, or bundled (also ENHANCER_FFMPEG); default: PATH, then the bundled one.")
@click.option("--progress", "progress_mode", type=click.Choice(["bar", "json", "none"]), default="bar",
              show_default=True,
              help="bar: progress bars where stderr is a terminal; json: one JSON line a second on stderr, for "
                   "programs that drive enhancer; none: no progress.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or per-file lines (errors still print).")
@click.option("-v", "--verbose", is_flag=True, help="Print every ffmpeg command.")
def enhance(inputs, output, recursive, model, task, scale, codec, crf, preset, pix_fmt, container, audio, no_subtitles,
            start, duration, deinterlace, chunk, tile, device, precision, skip_existing, retry_failed, keep_going, report_path, part_seconds, strict, preview, dry_run, as_json, ffmpeg_path, quiet, verbose,
            square_pixels=False, fps_text=None, progress_mode="bar", encoder_args=None, size_text=None, width=None,
            height=None, splice=False, executor="local", ray_address=None, ray_split=600.0, temporal="auto"):
    """Enhance videos: files, folders and globs in INPUTS, results under OUTPUT."""
    from enhancer import progress

    progress.set_mode("none" if quiet else progress_mode)
    ctx = click.get_current_context()
    if executor != "ray":  # Ray's options mean nothing to a local run: say so rather than ignore them
        for name, flag in (("ray_split", "--ray-split"), ("ray_address", "--ray-address")):
            if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE:
                raise click.UsageError(f"{flag} is for --executor ray")
    interrupts = _Interrupts()
    interrupts.install()  # from the start: Ctrl-C while the model loads or stdin spools exits 130 too
    try:
        _enhance(inputs, output, recursive, model, task, scale, codec, crf, preset, pix_fmt, container, audio, no_subtitles,
                 start, duration, deinterlace, chunk, tile, device, precision, skip_existing, retry_failed, keep_going,
                 report_path, part_seconds, strict, preview, dry_run, as_json, ffmpeg_path, quiet, verbose,
                 square_pixels=square_pixels, fps_text=fps_text, encoder_args=encoder_args,
                 size=_size(size_text, width, height), splice=splice, executor=executor, ray_address=ray_address,
                 ray_split=ray_split, codec_given=click.get_current_context().get_parameter_source("codec")
                 != click.core.ParameterSource.DEFAULT, temporal=temporal)
    except KeyboardInterrupt:
        print("interrupted: partial outputs removed; run the same command again to continue", file=sys.stderr)
        sys.exit(130)


def _choose_model(model: str | None, task: str | None, scale: int | None, quiet: bool) -> str:
    """The --model to load: the one named, else the installed model for --task and --scale."""
    from enhancer.infer.models import choose_model

    name, note = choose_model(model, task, scale)
    if note and not quiet:
        print(f"note: {note}", file=sys.stderr)
    return name


def _restorer(model, task, scale, tile, device, precision, chunk, quiet, temporal="auto"):
    """The restorer the enhance and watch options name; a bad model file, an unknown model or
    device is one line and exit 2."""
    from enhancer.infer.models import load_restorer, parse_temporal, parse_tile

    try:
        tile = parse_tile(tile)
    except EnhancerError:
        raise click.BadParameter("use a number of pixels, 0 or auto", param_hint="--tile") from None
    try:
        parse_temporal(temporal)
    except EnhancerError:
        raise click.BadParameter("use auto, on, off or a radius of 0 to 4 frames", param_hint="--temporal") from None
    try:
        name = _choose_model(model, task, int(scale) if scale else None, quiet)
        return load_restorer(name, scale=int(scale) if scale else None, device=device, precision=precision,
                             tile=tile, chunk=chunk, temporal=temporal)
    except EnhancerError as e:
        _fail(str(e), 2)


def _fail(message: str, code: int) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def _check_report_path(report_path: str, inputs: list[str], outputs: list[str] = ()) -> None:
    """Refuse a --report path that cannot be written, or that names an input or one of the
    batch's outputs (or lies in an image-sequence output's folder), before any work is done."""
    from enhancer.errors import shown
    from enhancer.naming import _inside, _same_file

    path = Path(report_path)
    if path.is_dir():
        _fail(f"{shown(report_path)}: --report names a folder; give a file name such as report.json", 2)
    if path.exists() and any(i != "-" and os.path.exists(i) and os.path.samefile(i, path) for i in inputs):
        _fail(f"{shown(report_path)}: --report names an input file", 2)
    where = os.path.realpath(report_path)
    for out in outputs:
        if out != "-" and (_same_file(report_path, out) or _inside(where, os.path.realpath(out))):
            _fail(f"{shown(report_path)}: --report names an output of this batch ({shown(out)}); give another file "
                  "name such as report.json", 2)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        _fail(f"{shown(report_path)}: cannot create the folder for --report: {e.strerror}", 2)
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        _fail(f"{shown(report_path)}: --report cannot be written here (permission denied)", 2)


def _write_report(report_path: str, data: dict) -> bool:
    from enhancer.errors import shown

    path = Path(report_path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, path)
        return True
    except OSError as e:
        tmp.unlink(missing_ok=True)
        print(f"error: {shown(report_path)}: cannot write the report: {e.strerror}", file=sys.stderr)
        return False


def _enhance(inputs, output, recursive, model, task, scale, codec, crf, preset, pix_fmt, container, audio, no_subtitles,
             start, duration, deinterlace, chunk, tile, device, precision, skip_existing, retry_failed, keep_going,
             report_path, part_seconds, strict, preview, dry_run, as_json, ffmpeg_path, quiet, verbose,
             square_pixels=False, fps_text=None, encoder_args=None, size=None, splice=False, codec_given=False,
             executor="local", ray_address=None, ray_split=600.0, temporal="auto"):
    from enhancer.batch import discover, plan_batch, plan_jobs, reject_missing, report, run_batch, state_folder
    from enhancer.infer.engine import EnhanceOptions

    tools = _configure_ffmpeg(ffmpeg_path, verbose)
    seg_start, seg_dur = _seconds(start), _seconds(duration)
    if seg_dur is not None and seg_dur <= 0:
        raise click.BadParameter("must be more than 0", param_hint="--duration")
    spooled = None
    if "-" in inputs:
        if len(inputs) != 1:
            raise click.UsageError("- (stdin) cannot be mixed with other inputs")
        if sys.stdin.isatty():
            raise click.UsageError("- reads a video from stdin; pipe one in")
    if output == "-" and as_json:
        raise click.UsageError("--json writes to stdout, which -o - uses for the video")
    found = discover(inputs, recursive=recursive, exclude=[output] if output != "-" else [])
    try:
        reject_missing(found)
        jobs = plan_jobs(found, output, codec, container, preview=preview is not None)
    except EnhancerError as e:
        _fail(str(e), 2)
    if report_path:
        from enhancer.naming import preview_path

        _check_report_path(report_path, [src for src, _ in found],
                           [str(preview_path(j.output)) if preview is not None else j.output for j in jobs])
    fps = _image_sequence_rate(fps_text, found)
    encode = _encode_options(codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt, audio=audio,
                             subtitles=not no_subtitles, square_pixels=square_pixels,
                             encoder_args=_encoder_args(encoder_args), size=size)
    if preview is not None and preview <= 0:
        raise click.BadParameter("must be more than 0 seconds", param_hint="--preview")
    opts = EnhanceOptions(deinterlace=deinterlace, start=seg_start, duration=seg_dur, chunk=chunk,
                          progress=not quiet, preview=preview, part_seconds=part_seconds, fps=fps, splice=splice)
    restorer = _restorer(model, task, scale, tile, device, precision, chunk, quiet, temporal)
    if splice:
        from enhancer.infer.splice import check_request

        try:
            check_request(segment=opts.segment, preview=preview, size=size, codec=codec if codec_given else None,
                          scale=restorer.scale, deinterlace=deinterlace, output=output, pix_fmt=pix_fmt, crf=crf)
        except EnhancerError as e:
            _fail(str(e), 2)
    if dry_run:  # the same decisions as a real run (state file, existing outputs), nothing written
        planned = plan_batch(jobs, restorer, encode, opts, overwrite=not skip_existing,
                             folder=state_folder(jobs, output), retry_failed=retry_failed, strict=strict)
        for res in planned.results:
            report(res, as_json=as_json, quiet=False, dry_run=True)
        sys.exit(planned.exit_code)
    try:
        if executor == "ray":
            summary = _run_on_ray(jobs, restorer, encode, opts, model=model, device=device, precision=precision,
                                  tile=tile, chunk=chunk, temporal=temporal, address=ray_address, split=ray_split,
                                  folder=state_folder(jobs, output),
                                  ffmpeg=ffmpeg_path or os.environ.get("ENHANCER_FFMPEG"),  # the same on every node
                                  overwrite=not skip_existing, retry_failed=retry_failed,
                                  strict=strict, on_result=lambda r: report(r, as_json=as_json, quiet=quiet))
        else:
            if inputs == ("-",):
                from enhancer.batch import Job, spool_stdin

                try:
                    spooled = spool_stdin()
                except EnhancerError as e:
                    _fail(str(e), 1)
                jobs = [Job(spooled, output if output == "-" else jobs[0].output, display="-")]
            summary = run_batch(jobs, restorer, encode, opts, overwrite=not skip_existing, verbose=verbose,
                                folder=state_folder(jobs, output), retry_failed=retry_failed,
                                fail_fast=not keep_going, strict=strict,
                                on_result=lambda r: report(r, as_json=as_json, quiet=quiet))
    except EnhancerError as e:  # an error of the batch, not of one file
        _fail(str(e), 1)
    finally:
        if spooled:
            Path(spooled).unlink(missing_ok=True)
    code = summary.exit_code
    if report_path and not _write_report(report_path, {**summary.to_dict(), "ffmpeg": tools.describe()}):
        code = code or 1
    if not quiet and len(jobs) > 1:
        from enhancer.errors import escape
        from enhancer.progress import write
        from enhancer.status import FileStatus

        write(summary.line())
        for r in summary.results:
            if r.status == FileStatus.FAILED:
                write(f"  failed: {escape(r.error or '')}")
    sys.exit(code)


def _run_on_ray(jobs, restorer, encode, opts, *, model, device, precision, tile, chunk, address, folder, ffmpeg,
                overwrite, retry_failed, strict, on_result, split=600.0, temporal="auto"):
    """--executor ray: the batch as Ray tasks (see enhancer.cluster); a cluster that cannot be
    used is one line and exit 2."""
    from enhancer.cluster import ModelSpec, run_batch_ray
    from enhancer.errors import UsageError
    from enhancer.infer.models import parse_tile

    if any(j.input == "-" or j.output == "-" for j in jobs):
        _fail("--executor ray reads and writes files on a shared path: stdin and stdout are not for it", 2)
    spec = ModelSpec(model if model and os.path.isfile(model) else restorer.name, scale=restorer.scale,
                     device=device, precision=precision, tile=parse_tile(tile), chunk=chunk, temporal=temporal)
    net = getattr(restorer, "model", None)
    try:
        return run_batch_ray(jobs, spec, encode, opts, address=address, folder=folder, ffmpeg=ffmpeg,
                             overwrite=overwrite, retry_failed=retry_failed, strict=strict,
                             parameters=sum(p.numel() for p in net.parameters()) if net is not None else None,
                             split=split, on_result=on_result)
    except UsageError as e:
        _fail(str(e), 2)


def _size(text: str | None, width: int | None, height: int | None) -> tuple[int | None, int | None] | None:
    """--size WxH, or --width and/or --height, as (width, height); None for the model's own size."""
    if text is not None:
        if width is not None or height is not None:
            raise click.UsageError("give --size WxH, or --width and --height, not both")
        import re

        m = re.fullmatch(r"\s*(\d+)\s*[xX:]\s*(\d+)\s*", text)
        if not m or not (2 <= int(m.group(1)) <= 16384 and 2 <= int(m.group(2)) <= 16384):
            raise click.BadParameter("use WIDTHxHEIGHT, e.g. 1920x1080", param_hint="--size")
        return int(m.group(1)), int(m.group(2))
    if width is None and height is None:
        return None
    return width, height


def _encode_options(**kw):
    """The output encoding asked for, or a one-line usage error (a --crf outside the codec's range)."""
    from enhancer.io.muxer import EncodeOptions

    try:
        return EncodeOptions(**kw)
    except EnhancerError as e:
        _fail(str(e), 2)


def _encoder_args(text: str | None) -> tuple[str, ...]:
    """--encoder-args as checked options (a usage error names what cannot be passed)."""
    if not text:
        return ()
    import shlex

    from enhancer.io.muxer import check_encoder_args

    try:
        return check_encoder_args(shlex.split(text))
    except (ValueError, EnhancerError) as e:  # shlex's quoting errors, and the options' own
        raise click.BadParameter(str(e), param_hint="--encoder-args") from None


def _image_sequence_rate(fps_text: str | None, found: list):
    """--fps as a rate; a usage error where it is not one, or where no input is an image sequence."""
    if fps_text is None:
        return None
    from enhancer.errors import ArgumentError
    from enhancer.io.probe import parse_rate
    from enhancer.io.sequence import is_image_sequence

    try:
        fps = parse_rate(fps_text)
    except ArgumentError as e:
        raise click.BadParameter(str(e), param_hint="--fps") from None
    if not any(src != "-" and is_image_sequence(src) for src, _ in found):
        raise click.BadParameter("sets the rate of image-sequence inputs, and no input is one (videos keep their "
                                 "own timing)", param_hint="--fps")
    return fps


_WATCH_SHARED = {"recursive", "model", "task", "scale", "codec", "crf", "preset", "pix_fmt", "square_pixels",
                 "container", "audio", "no_subtitles", "deinterlace", "chunk", "tile", "device", "precision",
                 "part_seconds", "strict", "retry_failed", "as_json", "ffmpeg_path", "progress_mode", "quiet",
                 "verbose", "encoder_args", "size_text", "width", "height", "temporal"}


def _watch(folders, output, settle, interval, once, recursive, model, task, scale, codec, crf, preset, pix_fmt,
           square_pixels, container, audio, no_subtitles, deinterlace, chunk, tile, device, precision, part_seconds,
           strict, retry_failed, as_json, ffmpeg_path, progress_mode, quiet, verbose, encoder_args=None,
           size_text=None, width=None, height=None, temporal="auto"):
    """Enhance videos as they arrive in FOLDERS (once completely written), into OUTPUT; Ctrl-C stops."""
    from enhancer import progress
    from enhancer.batch import report
    from enhancer.errors import shown
    from enhancer.infer.engine import EnhanceOptions
    from enhancer.watch import watch

    progress.set_mode("none" if quiet else progress_mode)
    _Interrupts().install()
    _configure_ffmpeg(ffmpeg_path, verbose)
    for folder in folders:
        if not os.path.isdir(folder):
            _fail(f"{shown(folder)}: not a folder (watch takes folders to watch; use enhance for files)", 2)
    out = Path(output)
    if out.exists() and not out.is_dir():
        _fail(f"{shown(output)}: is a file; watch writes into a folder", 2)
    for folder in folders:
        if os.path.abspath(folder) == os.path.abspath(output):
            _fail(f"{shown(output)}: the output folder is the watched folder; give another", 2)
    encode = _encode_options(codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt, audio=audio,
                             subtitles=not no_subtitles, square_pixels=square_pixels,
                             encoder_args=_encoder_args(encoder_args), size=_size(size_text, width, height))
    opts = EnhanceOptions(deinterlace=deinterlace, chunk=chunk, progress=not quiet, part_seconds=part_seconds)
    restorer = _restorer(model, task, scale, tile, device, precision, chunk, quiet, temporal)
    if not quiet:
        print(f"watching {', '.join(shown(f) for f in folders)} -> {shown(output)} with {restorer.name} "
              f"(x{restorer.scale}); files are taken once unchanged for {settle:g} s; "
              + ("stops when done" if once else "Ctrl-C stops"), file=sys.stderr)
    status: dict = {}
    try:
        failed = watch(list(folders), output, restorer, encode, opts, container=container, recursive=recursive,
                       settle=settle, interval=interval, once=once, strict=strict, verbose=verbose, status=status,
                       retry_failed=retry_failed,
                       on_result=lambda r: report(r, as_json=as_json, quiet=quiet))
    except EnhancerError as e:  # an output named like a file (2), a folder that cannot be made (1)
        from enhancer.errors import UsageError

        _fail(str(e), 2 if isinstance(e, UsageError) else 1)
    except KeyboardInterrupt:
        if status.get("busy"):
            print("interrupted: partial outputs removed; watch again to continue", file=sys.stderr)
            sys.exit(130)
        if not quiet:
            print("stopped watching", file=sys.stderr)
        sys.exit(0)
    sys.exit(1 if failed else 0)


main.add_command(click.Command(
    "watch", callback=_watch, help=_watch.__doc__, no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    params=[click.Argument(["folders"], nargs=-1, required=True),
            click.Option(["-o", "--output"], required=True, help="Output folder (mirrors the watched tree)."),
            click.Option(["--settle"], type=click.FloatRange(0, None), default=5.0, show_default=True,
                         help="Seconds a file must stay unchanged (size and time) before it is taken."),
            click.Option(["--interval"], type=click.FloatRange(0.05, None), default=2.0, show_default=True,
                         help="Seconds between looks at the folders."),
            click.Option(["--once"], is_flag=True,
                         help="Do what is there (once it is completely written), then exit: for cron and scripts.")]
    + [p for p in enhance.params if p.name in _WATCH_SHARED]))


# enhance's options that mean the same for each range of a conform (not inputs, segments, splice, preview);
# "temporal", where enhance has it, reaches the restorer with the model's other options
_CONFORM_SHARED = {"model", "task", "scale", "crf", "preset", "pix_fmt", "square_pixels", "container", "audio",
                   "no_subtitles", "deinterlace", "chunk", "tile", "device", "precision", "part_seconds", "strict",
                   "retry_failed", "as_json", "ffmpeg_path", "progress_mode", "quiet", "verbose", "encoder_args",
                   "size_text", "width", "height", "skip_existing", "keep_going", "report_path", "dry_run",
                   "executor", "ray_address", "ray_split", "temporal"}


def _conform(edit, media, output, handles, model, task, scale, codec, crf, preset, pix_fmt, square_pixels, container,
             audio, no_subtitles, deinterlace, chunk, tile, device, precision, part_seconds, strict, retry_failed,
             as_json, ffmpeg_path, progress_mode, quiet, verbose, skip_existing, keep_going, report_path, dry_run,
             executor, ray_address, ray_split, encoder_args=None, size_text=None, width=None, height=None,
             **model_options):  # the model's options enhance adds (they reach the restorer as they are)
    """Enhance only the frames EDIT uses (its events' source ranges, plus handles) from the media
    under --media, one file per range into OUTPUT, and write the edit relinked to them there."""
    from enhancer import conform, progress
    from enhancer.infer.engine import EnhanceOptions

    progress.set_mode("none" if quiet else progress_mode)
    tools = _configure_ffmpeg(ffmpeg_path, verbose)
    encode = _encode_options(codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt, audio=audio,
                             subtitles=not no_subtitles, square_pixels=square_pixels,
                             encoder_args=_encoder_args(encoder_args), size=_size(size_text, width, height))
    try:
        plan = conform.plan_conform(edit, list(media), output, handles=handles, codec=codec, container=container)
    except EnhancerError as e:
        _fail(str(e), 2)
    if report_path:
        _check_report_path(report_path, [edit] + [r.media.path for r in plan.ranges])
    opts = EnhanceOptions(deinterlace=deinterlace, chunk=chunk, progress=not quiet, part_seconds=part_seconds)
    restorer = _restorer(model, task, scale, tile, device, precision, chunk, quiet, **model_options)
    show = lambda r, dry=False: conform.report(plan, r, as_json=as_json, quiet=quiet, dry_run=dry)  # noqa: E731
    if dry_run:
        planned = conform.dry_run(plan, restorer, encode, opts, overwrite=not skip_existing, retry_failed=retry_failed,
                                  strict=strict)
        for res in planned.results:
            show(res, True)
        progress.write(f"would write the relinked edit {plan.relinked}")
        sys.exit(planned.exit_code)
    ray = None
    if executor == "ray":
        ray = lambda jobs, each: _run_on_ray(  # noqa: E731
            jobs, restorer, encode, each, model=model, device=device, precision=precision, tile=tile, chunk=chunk,
            address=ray_address, split=ray_split, folder=Path(output), ffmpeg=ffmpeg_path or os.environ.get(
                "ENHANCER_FFMPEG"), overwrite=not skip_existing, retry_failed=retry_failed, strict=strict,
            on_result=show, **model_options)
    summary = _until_done(lambda: conform.run(plan, restorer, encode, opts, overwrite=not skip_existing,
                                              verbose=verbose, retry_failed=retry_failed, fail_fast=not keep_going,
                                              strict=strict, on_result=show, executor=ray))
    code = summary.exit_code
    done = conform.complete(summary)
    if report_path and not _write_report(report_path, {**summary.to_dict(), "ffmpeg": tools.describe(),
                                                       "relinked": plan.relinked if done else None}):
        code = code or 1
    if not quiet:
        progress.write(summary.line())
        progress.write(f"relinked edit: {plan.relinked}" if done else
                       "the relinked edit is written once every range is made by this conform (see above)")
    sys.exit(code or (0 if done else 1))


def _conform_interruptible(**kwargs):
    interrupts = _Interrupts()
    interrupts.install()  # from the start: Ctrl-C while the media folders are probed or the model loads exits 130 too
    try:
        _conform(**kwargs)
    except KeyboardInterrupt:
        print("interrupted: partial outputs removed; run the same command again to continue", file=sys.stderr)
        sys.exit(130)


main.add_command(click.Command(
    "conform", callback=_conform_interruptible, help=_conform.__doc__, no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    params=[click.Argument(["edit"]),
            click.Option(["--media"], multiple=True, required=True, metavar="DIR",
                         help="A folder (searched with its sub-folders) that holds the edit's media; repeat for more."),
            click.Option(["-o", "--output"], required=True,
                         help="Output folder: the enhanced ranges and NAME.enhanced.EXT, the relinked edit."),
            click.Option(["--handles"], type=click.IntRange(0, None), default=12, show_default=True, metavar="FRAMES",
                         help="Frames enhanced before and after each event's source range (cut to the media's ends)."),
            # an editor's codec by default: the ranges go back into an editing application
            click.Option(["--codec"], type=next(p for p in enhance.params if p.name == "codec").type,
                         default="prores", show_default=True,
                         help="Output codec: prores and dnxhr for editing applications, ffv1 lossless, h264, h265.")]
    + [p for p in enhance.params if p.name in _CONFORM_SHARED]))


@main.command("degrade")
@click.argument("input_path", metavar="INPUT")
@click.option("-o", "--output", required=True, help="Output video file.")
@click.option("--preset", type=click.Choice(list(PRESETS)), default="web", show_default=True)
@click.option("--scale", type=click.Choice(["1", "2", "4"]), default="2", show_default=True,
              help="Downscale factor (the enhancement that undoes it upscales by the same).")
@click.option("--seed", type=int, default=None, help="Seed for the drawn damage (reproducible).")
@click.option("--start", default=None, help="Segment start (seconds or HH:MM:SS).")
@click.option("--duration", default=None, help="Segment length.")
@click.option("--json", "as_json", is_flag=True, help="Print the drawn damage parameters as JSON.")
@click.option("--ffmpeg", "ffmpeg_path", default=None, help="ffmpeg binary to use.")
@click.option("-q", "--quiet", is_flag=True)
@click.option("-v", "--verbose", is_flag=True)
def degrade_cmd(input_path, output, preset, scale, seed, start, duration, as_json, ffmpeg_path, quiet, verbose):
    """Make a damaged low-quality copy of a clean video (for evaluation and trying models)."""
    from enhancer.data.degrade import degrade_video

    _configure_ffmpeg(ffmpeg_path, verbose)
    d = _until_done(lambda: degrade_video(input_path, output, preset=preset, scale=int(scale), seed=seed,
                                          progress=not quiet, start=_seconds(start), duration=_seconds(duration)))
    if as_json:
        print(json.dumps({"input": input_path, "output": output, "preset": preset, **d.to_dict()}))
    elif not quiet:
        print(f"done: {input_path} -> {output} ({preset}, x{scale}, seed {d.seed}, codec {d.codec} "
              f"q{d.codec_quality})", file=sys.stderr)


def _check_writable(output: str) -> None:
    """Refuse, before any work, an output file whose folder cannot be made or written."""
    from enhancer.errors import shown

    out = Path(output)
    folder = out.absolute().parent
    while not folder.exists():  # the folders that would be made
        folder = folder.parent
    if not folder.is_dir():
        _fail(f"{shown(output)}: cannot be written ({shown(folder)} is a file)", 2)
    if not os.access(folder, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        _fail(f"{shown(output)}: cannot be written here (permission denied)", 2)


def _check_set_path(output: str) -> None:
    """Refuse, before any work, a training set name that prepare could not write as given: one
    not ending in .npz (numpy would add it), a folder, or a place that cannot be written."""
    from enhancer.data.dataset import check_set_path

    try:
        check_set_path(output)
    except EnhancerError as e:
        _fail(str(e), 2)
    _check_writable(output)


@main.command("prepare")
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

    _configure_ffmpeg(None, False)
    for src in sources:
        if not os.path.exists(src):
            _fail(f"{shown(src)}: no such file or folder", 2)
    _check_set_path(output)
    try:
        path = prepare(PrepareConfig(sources=list(sources), out=output, exclude=list(exclude), sequences=sequences,
                                     frames=frames, hr_size=hr_size, scale=scale, versions=versions, preset=preset,
                                     video_ratio=video_ratio, seed=seed, compress=compress),
                       progress=not quiet, workers=workers)
    except EnhancerError as e:
        _fail(str(e), 2)
    except OSError as e:  # a source that cannot be read, a set that cannot be written (disk full ...)
        _fail(f"{shown(e.filename or output)}: {e.strerror or e}", 1)
    print(f"wrote {path} ({path.stat().st_size / 2 ** 20:.0f} MiB)", file=sys.stderr)


@main.group("train", invoke_without_command=True)
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

    _configure_ffmpeg(None, False)
    # a training run says where it starts, what the time box fitted and where it stopped: a few
    # lines a run, kept with -q too (which hides the progress bar; GPU windows read these lines)
    logging.getLogger("enhancer.train").setLevel(logging.INFO)
    try:
        cfg = TrainConfig.from_toml(config_path, overrides)
    except (ValueError, TypeError) as e:  # a TOML syntax error, an unknown or mistyped option
        from enhancer.errors import shown

        _fail(f"{shown(config_path)}: {e}", 2)
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
        _check_writable(output)
    try:
        print(plot_run(run_dir, output))
    except EnhancerError as e:
        _fail(str(e), 1 if isinstance(e, OutputError) else 2)


@main.command("export")
@click.argument("checkpoint")
@click.option("-o", "--output", required=True, help="weights/NAME.safetensors")
@click.option("--name", default=None, help="Model name (default: the file name).")
@click.option("--damage", default="", help="What the model repairs, for its card.")
@click.option("--metrics", "metrics_path", default=None, help="A JSON file of measured metrics to put on the card.")
@click.option("--notes", default="", help="Free text for the card.")
@click.option("--task", type=click.Choice(["web", "archive"]), default=None,
              help="The job it does (default: archive for x1 models, web otherwise).")
def export_cmd(checkpoint, output, name, damage, metrics_path, notes, task):
    """Write a training checkpoint's EMA generator as shipped safetensors weights."""
    from enhancer.errors import OutputError, shown
    from enhancer.train.export import export

    try:
        metrics = json.loads(Path(metrics_path).read_text()) if metrics_path else None
    except OSError as e:
        _fail(f"{shown(metrics_path)}: cannot read the metrics ({e.strerror or e})", 2)
    except ValueError as e:  # not JSON, or not UTF-8
        _fail(f"{shown(metrics_path)}: cannot read the metrics ({e})", 2)
    if metrics is not None and not isinstance(metrics, dict):
        _fail(f"{shown(metrics_path)}: cannot read the metrics (not a JSON object)", 2)
    _check_writable(output)
    try:
        print(export(checkpoint, output, name=name, damage=damage, metrics=metrics, notes=notes, task=task))
    except EnhancerError as e:
        _fail(str(e), 1 if isinstance(e, OutputError) else 2)


# evaluate's and benchmark's metrics, as enhancer.evaluate.METRICS (not imported here: the CLI starts fast)
_METRICS = ("psnr_y", "psnr_rgb", "ssim_y", "vmaf", "perceptual", "tof", "tlp", "fde", "warp")


def _chosen_metrics(text: str) -> tuple[str, ...]:
    """--metrics as names, or a usage error naming the unknown ones."""
    from enhancer.evaluate import EXTRA, METRICS

    chosen = tuple(m.strip() for m in text.split(",") if m.strip())
    if not chosen:
        raise click.BadParameter("name at least one metric", param_hint="--metrics")
    bad = [m for m in chosen if m not in METRICS + EXTRA]
    if bad:
        raise click.BadParameter(f"unknown metrics {', '.join(bad)}; use {', '.join(METRICS + EXTRA)}",
                                 param_hint="--metrics")
    return chosen


@main.command("evaluate")
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
              "on whole frames, not on frames of at most 320x180 pixels (much slower; README: Evaluation).")
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
    from enhancer.evaluate import ANALYSIS_PIXELS, METRIC_INFO, METRICS, evaluate

    _configure_ffmpeg(None, verbose)
    chosen = _chosen_metrics(metrics)
    if as_json and as_csv:
        raise click.UsageError("--json and --csv: choose one")
    if reference_scale and candidate_scale:
        raise click.UsageError("--reference-scale and --candidate-scale: scale one side, not both")
    from enhancer.errors import shown

    if html_dir:  # before any work: scoring can take minutes
        if Path(html_dir).exists() and not Path(html_dir).is_dir():
            _fail(f"{shown(html_dir)}: is a file; --html takes a folder for the report", 2)
        _check_writable(str(Path(html_dir) / "index.html"))
    if degraded and not os.path.exists(degraded):
        _fail(f"{shown(degraded)}: no such file (--input)", 2)
    results = _until_done(lambda: [evaluate(reference, c, metrics=chosen, perceptual_net=perceptual_net,
                                            progress=not quiet and not as_json, reference_scale=reference_scale,
                                            candidate_scale=candidate_scale,
                                            analysis_pixels=None if full_size else ANALYSIS_PIXELS)
                                   for c in candidates])
    if html_dir:
        from enhancer.reports.html import for_scores, write_report

        page = _until_done(lambda: write_report(for_scores(reference, results, degraded), html_dir))
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


@main.command("benchmark")
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
@click.option("-q", "--quiet", is_flag=True)
def benchmark_cmd(clean, preset, scale, models, output, seed, start, duration, perceptual_net, quiet, metrics):
    """Degrade CLEAN clips, restore them with each model and the classical baselines, score all."""
    from enhancer import weights
    from enhancer.benchmark import run_benchmark, write_outputs
    from enhancer.progress import write

    _configure_ffmpeg(None, False)
    chosen = _chosen_metrics(metrics)
    if models:
        names = [m.strip() for m in models.split(",") if m.strip()]
    else:
        names = [n for n, _, card in weights.catalogue() if card.scale == int(scale)]
    from enhancer.errors import ModelError

    # a model named that cannot be used is a usage error, as in enhance
    res = _until_done(lambda: run_benchmark(
        list(clean), output, preset=preset, scale=int(scale), models=names, seed=seed, start=_seconds(start),
        duration=_seconds(duration), metrics=chosen, perceptual_net=perceptual_net, progress=not quiet,
        log=(lambda m: None) if quiet else write), usage=(ModelError,))
    import shlex

    from enhancer.benchmark import for_report
    from enhancer.reports.html import write_report

    paths = write_outputs(res, output, command="enhancer benchmark " + shlex.join(sys.argv[2:]))
    if quiet:  # errors still print (as they happened, without -q)
        for msg in res.failed.values():
            write(f"error: {msg}")
    if not res.results:  # every clip failed, each said why
        _fail(f"no clip could be scored ({len(res.failed)} failed); details: {paths['json']}", 1)
    try:
        page = write_report(for_report(res), Path(output) / "report")
    except EnhancerError as e:
        _fail(str(e), 1)
    print(res.markdown())
    print(f"\nreport: {page}  table: {paths['markdown']}  data: {paths['json']}", file=sys.stderr)
    if res.failed:  # the others were scored; the run as a whole did not do all it was asked
        _fail(f"{len(res.failed)} of {len(clean)} clips could not be scored (see above)", 1)


@main.command("compare")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", required=True, help="OUT.mp4 (video) or OUT.png (still).")
@click.option("--mode", type=click.Choice(["side", "split", "grid"]), default="side", show_default=True)
@click.option("--frame", type=int, default=None, help="Frame index for a still (default 0).")
@click.option("--crop", default=None, help="x,y,w,h in the largest input's pixels.")
@click.option("--labels", default=None, help="Comma-separated labels (default: file names).")
@click.option("--start", default=None)
@click.option("--duration", default=None)
@click.option("-q", "--quiet", is_flag=True)
def compare_cmd(inputs, output, mode, frame, crop, labels, start, duration, quiet):
    """Show versions of a clip side by side, split, or in a grid, labelled and time-aligned."""
    from enhancer.compare import Crop, compare

    _configure_ffmpeg(None, False)
    path = _until_done(lambda: compare(list(inputs), output, mode=mode, labels=labels.split(",") if labels else None,
                                       frame=frame, crop=Crop.parse(crop) if crop else None, start=_seconds(start),
                                       duration=_seconds(duration), progress=not quiet))
    if output != "-":  # stdout holds the video
        print(path)


@main.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print the model cards as JSON lines.")
@click.option("--inspect", "inspect_path", default=None, metavar="PATH|NAME",
              help="Describe one model (a .pth, .pt, .ckpt, .safetensors or .onnx file, or an installed model's "
                   "name) and what enhance will do with it on this machine, one item a line.")
def models_cmd(as_json, inspect_path):
    """List the installed models by task, with their measured figures."""
    from enhancer import weights

    if inspect_path is not None:
        from enhancer.infer.inspect import inspect_model

        try:
            items = inspect_model(inspect_path)
        except EnhancerError as e:
            _fail(str(e), 2)
        print(json.dumps(dict(items)) if as_json else "\n".join(f"{k}: {v}" for k, v in items))
        return
    cards = weights.catalogue()  # a file that does not read is a warning; its name's next file stands in
    if not cards and not weights.available():
        print("no models installed (classical: lanczos, bicubic, bilinear, nearest)")
        return
    if as_json:
        for name, path, card in cards:
            print(json.dumps({"name": name, "path": str(path), **card.__dict__}))
        return
    groups: dict[tuple[str, int], list] = {}
    for entry in cards:
        groups.setdefault((weights.task_of(entry[2]), entry[2].scale), []).append(entry)
    for (task, scale), entries in sorted(groups.items(), key=lambda kv: (kv[0][0] != "web", kv[0][1])):
        verb = "upscale" if scale > 1 else "restore"
        default = ""
        try:
            default = weights.pick(task, scale)
        except EnhancerError:
            pass
        flags = f"--task {task}" + (f" --scale {scale}" if scale != weights.DEFAULT_SCALE[task] else "")
        print(f"{verb} x{scale}, {weights.TASKS[task]}  ({flags}; default {default or 'none'})")
        for name, path, card in sorted(entries, key=lambda e: (e[2].variant != "fidelity", e[0])):
            size = f"{card.arch}, {card.config.get('channels', '?')}ch"
            print(f"  {name}  [{card.variant}]  ({size})  {path}")
            if card.damage:
                print(f"      repairs: {card.damage}")
            for key, val in card.metrics.items():
                print(f"      {key}: {val}")
            if card.notes:
                print(f"      {card.notes}")


@main.command("probe")
@click.argument("file")
@click.option("--json", "as_json", is_flag=True, help="Print the VideoInfo as JSON.")
@click.option("--count", is_flag=True, help="Count frames exactly (reads the whole file, no decoding).")
@click.option("--ffmpeg", "ffmpeg_path", default=None, help="ffmpeg binary to use.")
@click.option("-v", "--verbose", is_flag=True, help="Print every ffmpeg command.")
def probe_cmd(file, as_json, count, ffmpeg_path, verbose):
    """Describe a video file."""
    from enhancer.io.probe import count_frames, probe

    _configure_ffmpeg(ffmpeg_path, verbose)
    try:
        info = probe(file)
        if count and not info.repeats:  # an AVI's ticks were counted by probing (empty packets too)
            info.frame_count = count_frames(file, stream=info.video_index)
            info.frame_count_exact = True
    except EnhancerError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    if as_json:
        print(json.dumps(info.to_dict(), ensure_ascii=False))
        return
    d = info.to_dict()
    fc = f"{info.frame_count}" + ("" if info.frame_count_exact else " (estimate)") if info.frame_count else "unknown"
    if info.repeats:
        fc += (f" ({info.repeats} of them empty packets: the frame before, shown again; {info.frame_count - info.repeats} "
               "pictures decode)")
    lines = [
        f"file:        {info.path}",
        f"container:   {info.container}",
        f"video:       {info.codec}, {info.width}x{info.height}"
        + (f" (shown {info.display_width}x{info.display_height}, rotated {info.rotation})" if info.rotation else "")
        + f", SAR {d['sar']}, {info.pix_fmt} ({info.bit_depth}-bit)",
        f"frame rate:  {d['fps']} ({d['fps_float']} fps), time base {d['time_base'] or 'unknown'}",
        f"duration:    {info.duration if info.duration is not None else 'unknown'} s, start {info.start_time} s",
        f"frames:      {fc}",
        f"colour:      range {info.color_range or '?'}, matrix {info.color_space or '?'}, "
        f"primaries {info.color_primaries or '?'}, transfer {info.color_transfer or '?'}",
        f"scan:        {info.field_order}",
        "audio:       " + (", ".join(f"#{a.index} {a.codec} {a.sample_rate or '?'} Hz {a.channels or ''}".strip()
                                      for a in info.audio) or "none"),
        "subtitles:   " + (", ".join(f"#{s.index} {s.codec}" for s in info.subtitles) or "none"),
        f"chapters:    {info.chapters}",
        f"probed with: {info.probed_with}",
    ]
    print("\n".join(lines))


@main.group("study")
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

    _configure_ffmpeg(None, False)
    try:
        study = make_study(list(folders), output, seed=seed, repeats=repeat,
                           log=(lambda m: None) if quiet else (lambda m: print(m, file=sys.stderr, flush=True)))
    except EnhancerError as e:
        _fail(str(e), 2 if isinstance(e, UsageError) else 1)
    print(describe(study))


@study_cmd.command("score")
@click.argument("results", nargs=-1, required=True)
def study_score_cmd(results):
    """Preference rates with 95% intervals and a verdict per pair, from the exported RESULTS CSV files."""
    from enhancer.reports.preference import expand, score_files

    try:
        print(score_files(expand(list(results))))
    except EnhancerError as e:
        _fail(str(e), 1)


if __name__ == "__main__":
    main()
