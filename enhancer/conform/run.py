"""A conform's ranges through the batch, one job each (locally, or on Ray), reported with the
range they make; the relinked edit written once every range's output is there."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from enhancer.batch.runner import BatchSummary, FileResult, plan_batch, run_batch
from enhancer.conform.edit import edit_bytes, write_edit
from enhancer.conform.plan import Conform
from enhancer.errors import escape, shown
from enhancer.progress import write
from enhancer.batch.status import FileStatus


def run(plan: Conform, restorer, encode, opts, *, overwrite: bool = False, verbose: bool = False,
        retry_failed: bool = False, fail_fast: bool = False, strict: bool = False,
        on_result: Callable[[FileResult], None] | None = None, executor: Callable | None = None) -> BatchSummary:
    """Enhance every range as the batch enhances a file (lock, record, resume, skip), each over
    its own span of its source; ``executor`` (jobs, per-job options) -> summary runs them
    elsewhere (Ray). Writes the relinked edit when every range is done or skipped."""
    jobs, each = plan.jobs(), plan.options(opts)
    _drop_stale(plan)
    if executor is not None:
        summary = executor(jobs, each)
    else:
        summary = run_batch(jobs, restorer, encode, each, overwrite=overwrite, verbose=verbose,
                            folder=Path(plan.output), retry_failed=retry_failed, fail_fast=fail_fast, strict=strict,
                            on_result=on_result)
    if complete(summary):
        write_edit(plan.edit, plan.relinked_timeline(), plan.relinked, plan.picture_files())
    return summary


def _drop_stale(plan: Conform) -> None:
    """Remove a relinked edit an earlier conform left in the folder that is not the one this run
    writes (other handles, another cut): until this run writes its own, it would be taken for it
    and point at ranges this run does not make. One that says what this run would write stays."""
    path = Path(plan.relinked)
    try:
        there = path.read_bytes() if path.is_file() else None
    except OSError:
        return
    if there is not None and there != edit_bytes(plan.edit, plan.relinked_timeline(), plan.picture_files()):
        path.unlink(missing_ok=True)
        write(f"removed {shown(str(path))}: an earlier conform's relinked edit, not this one's "
              "(it is written again once every range is made)")


# what the batch says of an output an earlier run made with this very recipe (enhancer.batch.state,
# enhancer.batch.runner.decide_job); a file skipped for another reason (there, but not recorded as made from
# this source this way) is not one the relinked edit may point at
_MADE_BEFORE = ("done in an earlier run", "made in an earlier run")


def complete(summary: BatchSummary) -> bool:
    """Whether every range's output is there, made by this run or by an earlier one with the same
    recipe: only then is the relinked edit written, so it never points at a missing or foreign file."""
    return all(r.status == FileStatus.DONE or (r.status == FileStatus.SKIPPED and r.error in _MADE_BEFORE
                                               and bool(r.output) and Path(r.output).exists())
               for r in summary.results)


def dry_run(plan: Conform, restorer, encode, opts, *, overwrite: bool = False, retry_failed: bool = False,
            strict: bool = False) -> BatchSummary:
    """What :func:`run` would do with each range, decided by the batch's own code, nothing written."""
    return plan_batch(plan.jobs(), restorer, encode, plan.options(opts), overwrite=overwrite,
                      folder=Path(plan.output), retry_failed=retry_failed, strict=strict)


def report(plan: Conform, res: FileResult, *, as_json: bool, quiet: bool = False, dry_run: bool = False) -> None:
    """One range's outcome: a JSON line on stdout (the batch's fields, and the range's), or a line
    for people on stderr."""
    from enhancer.batch.runner import report as file_report

    r = next((r for r in plan.ranges if r.output == res.output), None)
    if as_json:
        print(json.dumps({**asdict(res), **(r.describe() if r else {})}, ensure_ascii=False), flush=True)
        if res.status == FileStatus.FAILED:
            write(f"{'would fail' if dry_run else 'error'}: {escape(res.error or '')}")
        return
    if res.status == FileStatus.PLANNED and r is not None:
        write(f"would enhance: {shown(res.input)} {r.line()} -> {shown(res.output)}")
        for w in res.warnings:
            write(f"warning: {shown(res.input)}: {escape(w)}")
        return
    file_report(res, as_json=False, quiet=quiet, dry_run=dry_run)
