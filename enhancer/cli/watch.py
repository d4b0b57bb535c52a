"""``watch``: enhance's request for folders, run as files arrive (:func:`enhancer.api.watch`)."""
from __future__ import annotations

import sys

import click

from enhancer.cli.common import CONTEXT, Interrupts, fail, refused, start
from enhancer.cli.enhance import notes, request_of, shared
from enhancer.errors import EnhancerError, UsageError

SHARED = {"recursive", "model", "task", "scale", "codec", "crf", "preset", "pix_fmt", "square_pixels", "container",
          "audio", "no_subtitles", "deinterlace", "chunk", "tile", "device", "precision", "part_seconds", "strict",
          "retry_failed", "as_json", "ffmpeg_path", "progress_mode", "quiet", "verbose", "encoder_args", "size_text",
          "width", "height", "temporal"}


def watch(folders, output, settle, interval, once, **kw):
    """Enhance videos as they arrive in FOLDERS (once completely written), into OUTPUT; Ctrl-C stops."""
    from enhancer import api, progress
    from enhancer.batch.runner import report
    from enhancer.errors import shown

    start(kw["verbose"])
    quiet, as_json = kw["quiet"], kw["as_json"]
    progress.set_mode("none" if quiet else kw["progress_mode"])
    Interrupts().install()
    request = request_of(folders, output, kw)

    def started(restorer) -> None:
        if not quiet:
            print(f"watching {', '.join(shown(f) for f in folders)} -> {shown(output)} with {restorer.name} "
                  f"(x{restorer.scale}); files are taken once unchanged for {settle:g} s; "
                  + ("stops when done" if once else "Ctrl-C stops"), file=sys.stderr)

    status: dict = {}
    try:
        failed = api.watch(request, settle=settle, interval=interval, once=once, status=status, on_start=started,
                           on_note=notes(quiet), on_result=lambda r: report(r, as_json=as_json, quiet=quiet))
    except EnhancerError as e:  # an output named like a file (2), a folder that cannot be made (1)
        if getattr(e, "before_work", False):
            refused(e, 2)
        fail(str(e), 2 if isinstance(e, UsageError) else 1)
    except KeyboardInterrupt:
        if status.get("busy"):
            print("interrupted: partial outputs removed; watch again to continue", file=sys.stderr)
            sys.exit(130)
        if not quiet:
            print("stopped watching", file=sys.stderr)
        sys.exit(0)
    sys.exit(1 if failed else 0)


def command() -> click.Command:
    return click.Command(
        "watch", callback=watch, help=watch.__doc__, no_args_is_help=True, context_settings=CONTEXT,
        params=[click.Argument(["folders"], nargs=-1, required=True),
                click.Option(["-o", "--output"], required=True, help="Output folder (mirrors the watched tree)."),
                click.Option(["--settle"], type=click.FloatRange(0, None), default=5.0, show_default=True,
                             help="Seconds a file must stay unchanged (size and time) before it is taken."),
                click.Option(["--interval"], type=click.FloatRange(0.05, None), default=2.0, show_default=True,
                             help="Seconds between looks at the folders."),
                click.Option(["--once"], is_flag=True,
                             help="Do what is there (once it is completely written), then exit: for cron and "
                                  "scripts.")]
        + shared(SHARED))
