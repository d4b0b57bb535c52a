"""``enhance``: click options -> an EnhanceRequest -> :func:`enhancer.api.run` -> an exit code.
``watch`` and ``conform`` take the same options (those that mean the same there)."""
from __future__ import annotations

import sys

import click

from enhancer.cli.common import CONTEXT, Interrupts, fail, refused, start
from enhancer.errors import EnhancerError, UsageError
from enhancer.restore.restorer import MODEL_CHUNK


@click.command(context_settings=CONTEXT)
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", required=True,
              help="Output folder (mirrors the input tree), or a file name when there is one input, or - for stdout.")
@click.option("-r", "--recursive", is_flag=True, help="Look for videos in sub-folders too.")
@click.option("--model", "-m", default=None,
              help="Model name (see `enhancer models`), a .safetensors path, a file of the field's models (.pth, "
                   ".pt, .ckpt or .safetensors read by spandrel; .onnx), or lanczos | bicubic | bilinear | "
                   "nearest [default: the installed model for --task and --scale: general-x2].")
@click.option("--task", type=click.Choice(["web", "archive", "clean"]), default=None,
              help="What to do when no --model is named: web (upscale web and broadcast video, x2 unless "
                   "--scale says otherwise), archive (restore film and tape at their own size) or clean (upscale "
                   "clean sources: masters, renders, high-bitrate files; x4) [default: web].")
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
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16", "int8"]), default="auto",
              show_default=True,
              help="auto: on the CPU int8 for enhancer's calibrated aligned-fusion models (not the texture variants) "
                   "where the CPU has VNNI (on AVX2 CPUs without it: general-x2, general-x4 and clean-x4, 7-bit "
                   "weights), else bf16 where it has AVX512-BF16 or AMX, else fp32; bf16 (or fp16) on "
                   "CUDA.")
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
def enhance(inputs, output, **kw):
    """Enhance videos: files, folders and globs in INPUTS, results under OUTPUT."""
    from enhancer import progress

    start(kw["verbose"])
    progress.set_mode("none" if kw["quiet"] else kw["progress_mode"])
    Interrupts().install()  # from the start: Ctrl-C while the model loads or stdin spools exits 130 too
    try:
        _enhance(inputs, output, kw)
    except KeyboardInterrupt:
        print("interrupted: partial outputs removed; run the same command again to continue", file=sys.stderr)
        sys.exit(130)


def request_of(inputs, output, kw: dict):
    """The request the command line's options make (``kw``: click's values by parameter name;
    options a command does not have keep the request's defaults)."""
    from enhancer.pipeline.request import EnhanceRequest

    ctx = click.get_current_context()

    def given(name: str) -> bool:
        return name in kw and ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE

    size = kw.get("size_text")
    if size is not None and (kw.get("width") is not None or kw.get("height") is not None):
        raise click.UsageError("give --size WxH, or --width and --height, not both")
    if size is None and (kw.get("width") is not None or kw.get("height") is not None):
        size = (kw.get("width"), kw.get("height"))
    flat = dict(
        recursive=kw.get("recursive", False), model=kw.get("model"), task=kw.get("task"),
        scale=int(kw["scale"]) if kw.get("scale") else None, device=kw.get("device", "auto"),
        precision=kw.get("precision", "auto"), tile=kw.get("tile", "auto"), chunk=kw.get("chunk"),
        temporal=kw.get("temporal", "auto"),
        codec=kw["codec"] if given("codec") else None, crf=kw.get("crf"), preset=kw.get("preset"),
        pix_fmt=kw.get("pix_fmt"), container=kw.get("container"), audio=kw.get("audio", "copy"),
        subtitles=not kw.get("no_subtitles", False), square_pixels=kw.get("square_pixels", False),
        encoder_args=kw.get("encoder_args") or (), size=size,
        start=kw.get("start"), duration=kw.get("duration"), deinterlace=kw.get("deinterlace", "auto"),
        fps=kw.get("fps_text"), splice=kw.get("splice", False), preview=kw.get("preview"),
        part_seconds=kw.get("part_seconds", 120.0),
        overwrite=not kw.get("skip_existing", True), retry_failed=kw.get("retry_failed", False),
        strict=kw.get("strict", False), fail_fast=not kw.get("keep_going", True), dry_run=kw.get("dry_run", False),
        executor=kw.get("executor", "local"), ray_address=kw.get("ray_address"),
        ray_split=kw["ray_split"] if given("ray_split") else None,
        report=kw.get("report_path"), ffmpeg=kw.get("ffmpeg_path"),
        progress="none" if kw.get("quiet") else kw.get("progress_mode", "bar"), verbose=kw.get("verbose", False))
    return EnhanceRequest.of(list(inputs), output, **flat)


def notes(quiet: bool):
    """Notes for the user (no model installed: lanczos) as ``note:`` lines, none with -q."""
    return lambda note: None if quiet else print(f"note: {note}", file=sys.stderr)


def _enhance(inputs, output, kw: dict) -> None:
    from enhancer.api import run
    from enhancer.batch.runner import report

    as_json, quiet = kw["as_json"], kw["quiet"]
    if output == "-" and as_json:
        raise click.UsageError("--json writes to stdout, which -o - uses for the video")
    request = request_of(inputs, output, kw)
    try:
        summary = run(request, on_result=lambda r: report(r, as_json=as_json, quiet=quiet), on_note=notes(quiet))
    except EnhancerError as e:
        if getattr(e, "before_work", False):
            refused(e, 2)
        fail(str(e), 2 if isinstance(e, UsageError) else 1)  # an error of the batch, not of one file
    if request.batch.dry_run:  # the same decisions as a real run (state file, existing outputs), nothing written
        for res in summary.results:
            report(res, as_json=as_json, quiet=False, dry_run=True)
        sys.exit(summary.exit_code)
    code = summary.exit_code or (1 if summary.report_written is False else 0)
    if not quiet and len(summary.results) > 1:
        from enhancer.batch.status import FileStatus
        from enhancer.errors import escape
        from enhancer.progress import write

        write(summary.line())
        for r in summary.results:
            if r.status == FileStatus.FAILED:
                write(f"  failed: {escape(r.error or '')}")
    sys.exit(code)


def shared(names: set[str]) -> list[click.Parameter]:
    """enhance's options named ``names``, for the commands that take them too."""
    return [p for p in enhance.params if p.name in names]
