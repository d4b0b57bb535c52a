"""``conform``: enhance's request for the ranges an edit uses (:func:`enhancer.api.conform`)."""
from __future__ import annotations

import sys

import click

from enhancer.cli.common import CONTEXT, Interrupts, fail, refused, start
from enhancer.cli.enhance import enhance, notes, request_of, shared
from enhancer.errors import EnhancerError, UsageError

# enhance's options that mean the same for each range of a conform (not inputs, segments, splice, preview)
SHARED = {"model", "task", "scale", "crf", "preset", "pix_fmt", "square_pixels", "container", "audio",
          "no_subtitles", "deinterlace", "chunk", "tile", "device", "precision", "part_seconds", "strict",
          "retry_failed", "as_json", "ffmpeg_path", "progress_mode", "quiet", "verbose", "encoder_args",
          "size_text", "width", "height", "skip_existing", "keep_going", "report_path", "dry_run",
          "executor", "ray_address", "ray_split", "temporal"}


def conform(edit, media, output, handles, **kw):
    """Enhance only the frames EDIT uses (its events' source ranges, plus handles) from the media
    under --media, one file per range into OUTPUT, and write the edit relinked to them there."""
    start(kw["verbose"])
    Interrupts().install()  # from the start: Ctrl-C while the media folders are probed or the model loads exits 130
    try:
        _conform(edit, media, output, handles, kw)
    except KeyboardInterrupt:
        print("interrupted: partial outputs removed; run the same command again to continue", file=sys.stderr)
        sys.exit(130)


def _conform(edit, media, output, handles, kw: dict) -> None:
    from dataclasses import replace

    from enhancer import api, progress
    from enhancer.conform import complete, report

    quiet, as_json, dry = kw["quiet"], kw["as_json"], kw["dry_run"]
    progress.set_mode("none" if quiet else kw["progress_mode"])
    request = request_of(media, output, kw)
    request = replace(request, encode=replace(request.encode, codec=kw["codec"]))
    plans: list = []
    try:
        plan, summary = api.conform(request, edit, handles=handles, on_note=notes(quiet), on_plan=plans.append,
                                    on_result=lambda r: report(plans[0], r, as_json=as_json, quiet=quiet))
    except EnhancerError as e:
        if getattr(e, "before_work", False):
            refused(e, 2)
        fail(str(e), 2 if isinstance(e, UsageError) else 1)
    if dry:
        for res in summary.results:
            report(plan, res, as_json=as_json, quiet=quiet, dry_run=True)
        progress.write(f"would write the relinked edit {plan.relinked}")
        sys.exit(summary.exit_code)
    code = summary.exit_code or (1 if summary.report_written is False else 0)
    done = complete(summary)
    if not quiet:
        progress.write(summary.line())
        progress.write(f"relinked edit: {plan.relinked}" if done else
                       "the relinked edit is written once every range is made by this conform (see above)")
    sys.exit(code or (0 if done else 1))


def command() -> click.Command:
    return click.Command(
        "conform", callback=conform, help=conform.__doc__, no_args_is_help=True, context_settings=CONTEXT,
        params=[click.Argument(["edit"]),
                click.Option(["--media"], multiple=True, required=True, metavar="DIR",
                             help="A folder (searched with its sub-folders) that holds the edit's media; repeat for "
                                  "more."),
                click.Option(["-o", "--output"], required=True,
                             help="Output folder: the enhanced ranges and NAME.enhanced.EXT, the relinked edit."),
                click.Option(["--handles"], type=click.IntRange(0, None), default=12, show_default=True,
                             metavar="FRAMES",
                             help="Frames enhanced before and after each event's source range (cut to the media's "
                                  "ends)."),
                # an editor's codec by default: the ranges go back into an editing application
                click.Option(["--codec"], type=next(p for p in enhance.params if p.name == "codec").type,
                             default="prores", show_default=True,
                             help="Output codec: prores and dnxhr for editing applications, ffv1 lossless, h264, "
                                  "h265.")]
        + shared(SHARED))
