"""Many inputs: discovery, output naming, skip, per-file isolation and the summary.

One file's failure never stops the others: each becomes a :class:`FileResult` with a one-line
reason, and the batch goes on.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from enhancer.errors import option
from enhancer.errors import (EnhancerError, FFmpegError, InputError, InternalError, LockedError, OutputError, escape,
                             shown)
from enhancer.pipeline.engine import EnhanceOptions
from enhancer.pipeline.enhance import enhance_video
from enhancer.restore.restorer import Restorer
from enhancer.media.encode import EncodeOptions
from enhancer.media.files import same_file
from enhancer.media.probe import probe
from enhancer.media.temps import spool_path, sweep, sweep_output, sweep_spools
from enhancer.batch.naming import VIDEO_EXTENSIONS, Job, discover, plan_jobs, preview_path  # noqa: F401  (the batch API)
from enhancer.pipeline.recipe import Recipe
from enhancer.progress import write
from enhancer.batch.state import RECORDS, Decision
from enhancer.batch.status import FileStatus, RecordStatus

log = logging.getLogger(__name__)

@dataclass
class FileResult:
    input: str
    output: str | None
    status: FileStatus  # done | skipped | busy (another run is making it) | failed | planned
    frames: int = 0
    seconds: float = 0.0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    incomplete: bool = False  # the input held fewer frames than its container announced
    resumed: int = 0  # of ``frames``, those an earlier run had already encoded
    # failed for a reason outside the input (a full disk, an output it may not write): not
    # recorded as the input's failure, so a rerun (and watch) tries it again
    environment: bool = False

    def __post_init__(self) -> None:
        self.status = FileStatus(self.status)  # "done" given as text is FileStatus.DONE

    @property
    def fps(self) -> float:
        """Frames made per second in this run (resumed frames were made before)."""
        return (self.frames - self.resumed) / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


@dataclass
class BatchSummary:
    """What a batch did; ``enhancer.Result`` in the Python API."""

    results: list[FileResult]
    seconds: float
    report_written: bool | None = None  # the request's report: None where none was asked for

    @property
    def files(self) -> list[FileResult]:
        """One result per input, in order."""
        return self.results

    @property
    def outputs(self) -> list[str]:
        """The outputs that exist now: made by this run, or by an earlier one (skipped)."""
        return [r.output for r in self.results if r.status in (FileStatus.DONE, FileStatus.SKIPPED) and r.output]

    def count(self, status: FileStatus | str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def frames(self) -> int:
        return sum(r.frames for r in self.results)

    @property
    def made(self) -> int:
        """Frames made in this run (resumed frames were made by an earlier one)."""
        return sum(r.frames - r.resumed for r in self.results)

    @property
    def exit_code(self) -> int:
        """1 where a file failed or was left to another run still making it (this run cannot
        tell whether that one will succeed), else 0."""
        return 1 if self.count(FileStatus.FAILED) or self.count(FileStatus.BUSY) else 0

    @property
    def incomplete(self) -> int:
        return sum(r.incomplete and r.status != FileStatus.FAILED for r in self.results)

    def to_dict(self) -> dict:
        return {"done": self.count(FileStatus.DONE), "skipped": self.count(FileStatus.SKIPPED),
                "busy": self.count(FileStatus.BUSY), "failed": self.count(FileStatus.FAILED),
                "incomplete": self.incomplete, "seconds": self.seconds, "frames": self.frames,
                "frames_per_second": self.made / self.seconds if self.seconds > 0 else 0.0,
                "files": [asdict(r) for r in self.results]}

    def line(self) -> str:
        fps = self.made / self.seconds if self.seconds > 0 else 0.0
        inc = f" ({self.incomplete} from incomplete inputs)" if self.incomplete else ""
        busy = f", {self.count(FileStatus.BUSY)} left to another run" if self.count(FileStatus.BUSY) else ""
        return (f"{self.count(FileStatus.DONE)} done, {self.count(FileStatus.SKIPPED)} skipped{inc}{busy}, "
                f"{self.count(FileStatus.FAILED)} failed in {self.seconds:.1f} s ({self.frames} frames, "
                f"{rate_text(fps)} frames/s)")


def rate_text(fps: float) -> str:
    """A rate with two significant figures however slow (0.032, not 0.0), one decimal from 10."""
    if fps <= 0:
        return "0"
    if fps >= 10:
        return f"{fps:.1f}"
    return f"{fps:.2g}" if fps >= 1 else f"{fps:.2g}".replace("e-0", "e-")


@dataclass
class JobDecision:
    """What a run will do with one job, decided before any work: a result where the job is not
    run (skipped, or failed in an earlier run), else how it runs."""

    target: str  # the output (or preview) path
    recipe: Recipe | None
    result: FileResult | None  # set when the job is not run
    overwrite: bool  # an existing output is replaced (asked for, or our own from another recipe)
    done: bool = False  # the output is finished with this very recipe (its parts are of no more use)
    notes: list[str] = field(default_factory=list)  # warnings for the result of a job that runs


def job_recipe(job: Job, restorer: Restorer, encode: EncodeOptions, opts: EnhanceOptions) -> Recipe | None:
    """The recipe of a job's output; None for stdin or a missing input (probing says so)."""
    try:
        return Recipe.of(job.input, restorer, encode, opts) if job.input != "-" else None
    except OSError:
        return None


def decide_job(job: Job, restorer: Restorer, encode: EncodeOptions, opts: EnhanceOptions, *, overwrite: bool,
               state=None, retry_failed: bool = False, strict: bool = False,
               recipe: Recipe | None = None) -> JobDecision:
    """The decisions a run makes about one job before it starts on it, the same for ``--dry-run``:
    outputs done with this recipe or existing are skipped, failures of an earlier run reported
    again. Raises :class:`OutputError` where the output would replace the input."""
    target = str(preview_path(job.output)) if opts.preview and job.output != "-" else job.output
    recipe = recipe or job_recipe(job, restorer, encode, opts)
    notes: list[str] = []
    if target != "-" and os.path.exists(target) and same_file(target, job.input):
        raise OutputError("the output would replace the input; refused", path=target)
    if state is not None and recipe is not None and not overwrite:
        decision, why = state.decide(target, recipe, retry_failed=retry_failed)
        if decision is Decision.SKIP:
            return JobDecision(target, recipe, FileResult(job.input, target, FileStatus.SKIPPED, error=why), overwrite,
                               done=True)
        if decision is Decision.CHANGED:  # not ours any more: kept, and said, whatever --quiet
            return JobDecision(target, recipe, FileResult(job.input, target, FileStatus.SKIPPED, error=why,
                                                          warnings=[why]), overwrite)
        if decision is Decision.SKIP_INCOMPLETE:
            if strict:
                res = FileResult(job.input, target, FileStatus.FAILED, incomplete=True,
                                 error=f"{shown(job.input)}: {why} [{option('strict', True)}; {option('retry_failed', True)} tries again]")
            else:
                res = FileResult(job.input, target, FileStatus.SKIPPED, error="made in an earlier run", incomplete=True,
                                 warnings=[f"{why} (in an earlier run; {option('retry_failed', True)} tries again)"])
            return JobDecision(target, recipe, res, overwrite, done=True)
        if decision is Decision.FAILED_BEFORE:
            return JobDecision(target, recipe, FileResult(
                job.input, target, FileStatus.FAILED,
                error=f"{why} [failed in an earlier run; {option('retry_failed', True)} tries again]"), overwrite)
        if decision is Decision.OTHER_INPUT:
            return JobDecision(target, recipe, FileResult(job.input, target, FileStatus.SKIPPED, error=why), overwrite)
        if decision is Decision.REDO and os.path.exists(target):
            overwrite = True  # our own earlier output (another input or recipe, or cut short since)
            if why and "cut short" in why:
                notes.append(why)
    if job.output != "-" and os.path.exists(target) and not overwrite:
        what = "preview" if opts.preview else "output"
        return JobDecision(target, recipe, FileResult(job.input, target, FileStatus.SKIPPED,
                                                      error=f"{what} exists (use {option('overwrite', True)} to redo)"), overwrite)
    return JobDecision(target, recipe, None, overwrite, notes=notes)


def run_job(job: Job, restorer: Restorer, encode: EncodeOptions, opts: EnhanceOptions, *, overwrite: bool,
            verbose: bool = False, desc: str | None = None, state=None, retry_failed: bool = False,
            strict: bool = False, before=None) -> FileResult:
    """Enhance one file; every failure becomes a result with a one-line reason. With ``strict``,
    an input that holds fewer frames than its container announces is a failure. With ``state``,
    the output's lock is held throughout (an output another run is making is ``busy``), the
    temporaries crashed runs left for it are removed, and the outcome is recorded. ``before``
    (called with the recipe's key) runs once the file is to be made, under the lock: a cluster
    hands the parts its workers made to the join there."""
    from enhancer.batch.state import OutputLock

    target = str(preview_path(job.output)) if opts.preview and job.output != "-" else job.output
    shown_input = job.input if job.display is None else job.display
    lock = None
    if state is not None and not state.read_only and target != "-":
        parent = Path(target).parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            lock = OutputLock(target).acquire()
        except LockedError as e:
            return FileResult(shown_input, target, FileStatus.BUSY, error=e.reason + (f" ({e.hint})" if e.hint else ""))
        except OSError as e:
            what = "create the output folder" if not parent.is_dir() else "lock the output in its folder"
            return FileResult(shown_input, target, FileStatus.FAILED,
                              error=f"{shown(str(parent))}: cannot {what}: {e.strerror or e}")
    try:
        notes = len(state.notes) if state is not None else 0
        if lock is not None:
            sweep_output(target)
            state.refresh(target)
        result = _run_job(job, restorer, encode, opts, overwrite=overwrite, verbose=verbose, desc=desc, state=state,
                          retry_failed=retry_failed, strict=strict, before=before)
        if state is not None:  # a record set aside or not written while this file was made
            result.warnings[:0] = state.notes[notes:]
        if lock is not None and lock.took_over and result.status != FileStatus.SKIPPED:
            result.warnings.insert(0, lock.took_over)
        return result
    finally:
        if lock is not None:
            lock.release()


def _run_job(job: Job, restorer: Restorer, encode: EncodeOptions, opts: EnhanceOptions, *, overwrite: bool,
             verbose: bool = False, desc: str | None = None, state=None, retry_failed: bool = False,
             strict: bool = False, before=None) -> FileResult:
    t0 = time.perf_counter()
    target = str(preview_path(job.output)) if opts.preview and job.output != "-" else job.output
    recipe = job_recipe(job, restorer, encode, opts)
    status = RecordStatus.DONE  # what the output's record will say
    try:
        decided = decide_job(job, restorer, encode, opts, overwrite=overwrite, state=state,
                             retry_failed=retry_failed, strict=strict, recipe=recipe)
        overwrite = decided.overwrite
        if decided.result is not None:
            if decided.done and state is not None and not state.read_only:
                _drop_parts(target, recipe)
            return decided.result
        if job.output != "-":
            parent = Path(job.output).parent
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise OutputError(f"cannot create output folder: {e.strerror}", path=str(parent)) from None
            if not os.access(parent, os.W_OK):
                raise OutputError("output folder is not writable", path=str(parent))
        info = probe(job.input, fps=opts.fps)
        if before is not None and recipe is not None:
            before(recipe.key())
        if opts.preview:
            result = _preview(job, info, restorer, opts, overwrite, desc, t0)
        else:
            def staged(path: Path, frames: int) -> None:  # recorded before it takes the output's name
                state.record(target, recipe, RecordStatus.DONE, None, frames, made=path)
            recorded = state is not None and recipe is not None and job.display is None
            res = enhance_video(info, job.output, restorer, encode, opts, desc=desc,
                                recipe_key=recipe.key() if recipe else None, started=t0,
                                on_staged=staged if recorded else None)
            result = FileResult(job.input, res.output or "-", FileStatus.DONE, frames=res.frames, seconds=res.seconds,
                                warnings=decided.notes + res.warnings, incomplete=bool(res.incomplete),
                                resumed=res.resumed)
            if res.incomplete:
                status = RecordStatus.INCOMPLETE
                if strict:
                    if res.output:
                        Path(res.output).unlink(missing_ok=True)
                    result.status = FileStatus.FAILED
                    result.warnings = [w for w in res.warnings if "incomplete" not in w]
                    result.error = f"{shown(job.input)}: incomplete input: {escape(res.incomplete)} [{option('strict', True)}]"
                    status = RecordStatus.FAILED
    except EnhancerError as e:
        if e.path is None:
            e.path = job.input
        if verbose and isinstance(e, InternalError):  # a bug of ours, said as one: where it happened too
            log.error("%s: internal error, where it happened:", shown(job.input), exc_info=True)
        result = FileResult(job.input, target, FileStatus.FAILED, seconds=time.perf_counter() - t0, error=e.line(),
                            environment=environment_failure(e, target))
        status = RecordStatus.FAILED
    except OSError as e:  # the file system refused (a full disk, an output folder made read-only meanwhile)
        result = FileResult(job.input, target, FileStatus.FAILED, seconds=time.perf_counter() - t0,
                            error=f"{shown(e.filename or target)}: cannot write: {e.strerror or e}",
                            environment=environment_failure(e, target))
        status = RecordStatus.FAILED
    except MemoryError:
        result = FileResult(job.input, target, FileStatus.FAILED, seconds=time.perf_counter() - t0,
                            error=f"{shown(job.input)}: out of memory (try a smaller {option('tile')} or {option('chunk')})")
        status = RecordStatus.FAILED
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # a bug of ours: keep the batch going, say so plainly
        if verbose:
            log.error("%s: internal error, where it happened:", shown(job.input), exc_info=True)
        result = FileResult(job.input, target, FileStatus.FAILED, seconds=time.perf_counter() - t0,
                            error=f"{shown(job.input)}: internal error: {type(e).__name__}: {escape(str(e))} "
                                  "(run with -v for details)")
        status = RecordStatus.FAILED
    if result.environment:
        result.error = f"{result.error} [not the input's fault: a rerun tries it again]"
    elif state is not None and recipe is not None and job.display is None and result.status != FileStatus.SKIPPED:
        error = result.error if status == RecordStatus.FAILED else next(
            (w for w in result.warnings if "incomplete" in w), None)
        state.record(target, recipe, status, error, result.frames)
    if job.display is not None:
        result.input = job.display
        if result.error:
            result.error = result.error.replace(job.input, job.display)
    return result


_ENVIRONMENT = ("no space left", "disk quota", "file too large", "read-only file system", "permission denied",
                "output folder is not writable", "cannot create output folder")
_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}


def environment_failure(e: BaseException, target: str) -> bool:
    """Whether a file failed because of where it was written, not of what it holds: a full disk
    (said by ffmpeg, by the file system, or seen as almost no space left beside the output), a
    quota, a read-only or forbidden output. Such a failure is not the input's, and is not recorded."""
    if isinstance(e, OSError):
        return e.errno in _ENVIRONMENT_ERRNOS
    said = " ".join([str(e), *getattr(e, "stderr_tail", [])]).lower()
    if isinstance(e, (OutputError, FFmpegError)) and any(w in said for w in _ENVIRONMENT):
        return True
    if target != "-" and isinstance(e, (OutputError, FFmpegError)):
        import shutil

        try:
            return shutil.disk_usage(Path(target).parent).free < 64 << 20
        except OSError:
            return False
    return False


def _drop_parts(target: str, recipe: Recipe | None) -> None:
    """Remove the parts folder of an output finished with ``recipe``: a crash between its final
    rename and this clean-up left it (under the output's lock only)."""
    import shutil

    from enhancer.pipeline.parts import parts_folder

    folder = parts_folder(target)
    try:
        key = json.loads((folder / "manifest.json").read_text(encoding="utf-8")).get("key")
    except (OSError, ValueError, AttributeError, RecursionError):
        return
    if recipe is not None and key == recipe.key():
        shutil.rmtree(folder, ignore_errors=True)


def _preview(job: Job, info, restorer: Restorer, opts: EnhanceOptions, overwrite: bool, desc: str | None,
             t0: float) -> FileResult:
    """Enhance the first ``opts.preview`` seconds (from --start) and write them beside the input,
    split down the middle, as ``NAME.preview.mp4`` next to where the output would go."""
    import dataclasses
    import tempfile

    from enhancer.media.compare import compare

    target = preview_path(job.output)
    if target.exists() and not overwrite:
        return FileResult(job.input, str(target), FileStatus.SKIPPED, error=f"preview exists (use {option('overwrite', True)} to redo)")
    seg = dataclasses.replace(opts, duration=opts.preview)
    from enhancer.media.temps import hidden_sibling

    work = hidden_sibling(target, f".preview-{os.getpid()}-").name  # named after its output: swept with it
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=work) as tmp:
        enhanced = str(Path(tmp) / "enhanced.mkv")
        res = enhance_video(info, enhanced, restorer, EncodeOptions(codec="ffv1"), seg, desc=desc)
        compare([job.input, enhanced], str(target), mode="split", labels=["input", f"enhanced ({restorer.name})"],
                duration=opts.preview, starts=[opts.start, None], progress=False)
    return FileResult(job.input, str(target), FileStatus.DONE, frames=res.frames, seconds=time.perf_counter() - t0,
                      warnings=res.warnings)


STALE_SECONDS = 600.0  # a temporary nobody here owns, unchanged this long, is a crashed run's


def state_folder(jobs: list[Job], output: str) -> Path | None:
    """The folder whose records a batch keeps (None when writing to stdout)."""
    if output == "-":
        return None
    one = len(jobs) == 1 and not Path(output).is_dir()
    # one file named by -o (or, where -o named the input itself, its .enhanced sibling): its folder
    if one and (Path(jobs[0].output) == Path(output) or Path(jobs[0].output).parent == Path(output).parent):
        return Path(output).parent
    return Path(output)


def run_batch(jobs: list[Job], restorer: Restorer, encode: EncodeOptions,
              opts: EnhanceOptions | list[EnhanceOptions], *,
              overwrite: bool = False, verbose: bool = False, folder: Path | None = None,
              retry_failed: bool = False, fail_fast: bool = False, strict: bool = False,
              on_result: Callable[[FileResult], None] | None = None) -> BatchSummary:
    """Enhance every job in turn; a failure is reported and the batch goes on (unless
    ``fail_fast``). With ``folder``, each output is made under its own lock and recorded in the
    folder's records (see :mod:`enhancer.batch.state`): other runs may write into the same folder.
    ``opts`` may be a list, one per job (conform: each job is its own span of its source)."""
    from enhancer.batch.state import BatchState

    t0 = time.perf_counter()
    each = list(opts) if isinstance(opts, (list, tuple)) else [opts] * len(jobs)
    results: list[FileResult] = []
    # what crashed runs left: each output's own temporaries go when it is made (under its lock);
    # the rest once no process here owns them and nobody has written them for a while
    for where in {Path(j.output).parent for j in jobs if j.output != "-"} | ({folder} if folder else set()):
        sweep(where, min_age=STALE_SECONDS)
        sweep(Path(where) / RECORDS, min_age=STALE_SECONDS)
    state = BatchState(folder) if folder is not None else None
    for note in state.notes if state else []:
        log.warning("%s: %s", shown(state.folder), note)
    stopped = False
    for k, job in enumerate(jobs):
        if stopped:
            res = FileResult(job.input, job.output, FileStatus.SKIPPED, error=f"not run: {option('fail_fast', True)} stopped the batch")
        else:
            res = run_job(job, restorer, encode, each[k], overwrite=overwrite, verbose=verbose,
                          desc=bar_label(job, k, len(jobs)), state=state, retry_failed=retry_failed,
                          strict=strict)
            stopped = fail_fast and res.status == FileStatus.FAILED
        results.append(res)
        if on_result is not None:
            on_result(res)
    return BatchSummary(results, time.perf_counter() - t0)


def bar_label(job: Job, k: int, n: int) -> str:
    """What a file's progress bar is called: its name (``stdin`` for a piped input), and its place
    in a batch of several."""
    name = job.display if job.display is not None else job.input
    label = "stdin" if name == "-" else escape(Path(name).name)[:40]
    return f"[{k + 1}/{n}] {label}" if n > 1 else label


def plan_batch(jobs: list[Job], restorer: Restorer, encode: EncodeOptions,
               opts: EnhanceOptions | list[EnhanceOptions], *,
               overwrite: bool = False, folder: Path | None = None, retry_failed: bool = False,
               strict: bool = False) -> BatchSummary:
    """What :func:`run_batch` would do, decided by the same code (``--dry-run``), without locking,
    sweeping or writing anything: ``planned`` for the jobs it would run, and the ``skipped`` and
    ``failed`` results it would report without running them. ``opts``: as :func:`run_batch` takes it."""
    from enhancer.batch.state import BatchState

    t0 = time.perf_counter()
    state = BatchState(folder, read_only=True) if folder is not None else None
    for note in state.notes if state else []:
        log.warning("%s: %s", shown(state.folder), note)
    results = []
    each = list(opts) if isinstance(opts, (list, tuple)) else [opts] * len(jobs)
    for job, opts in zip(jobs, each):
        try:
            decided = decide_job(job, restorer, encode, opts, overwrite=overwrite, state=state,
                                 retry_failed=retry_failed, strict=strict)
            res = decided.result or FileResult(job.input, decided.target, FileStatus.PLANNED,
                                               warnings=list(decided.notes))
            if res.status == FileStatus.PLANNED and opts.splice:  # what the splice would do with this file, or why not
                from enhancer.pipeline import splice

                info = probe(job.input, fps=opts.fps)
                splice.check(info, job.output, opts.segment, preview=opts.preview)
                res.warnings.append(splice.plan_splice(info, encode, restorer.scale, job.output).note
                                    .replace(" was ", " would be ").replace(" were ", " would be "))
        except EnhancerError as e:
            if e.path is None:
                e.path = job.input
            res = FileResult(job.input, job.output, FileStatus.FAILED, error=e.line())
        if job.display is not None:
            res.input = job.display
        results.append(res)
    return BatchSummary(results, time.perf_counter() - t0)


def report(res: FileResult, *, as_json: bool, quiet: bool = False, dry_run: bool = False) -> None:
    """Print one file's outcome: a JSON line on stdout, or a line for people on stderr (through
    :func:`enhancer.progress.write`, so it never lands on a progress bar). A dry run says what a
    real run would do: ``would enhance``, ``would skip``, ``would fail``."""
    if as_json:
        print(res.to_json(), flush=True)
        if res.status == FileStatus.FAILED:
            write(f"{'would fail' if dry_run else 'error'}: {escape(res.error or '')}")
        return
    if res.status == FileStatus.FAILED:
        write(f"{'would fail' if dry_run else 'error'}: {escape(res.error or '')}")
    elif not quiet:
        src, dst = shown(res.input), shown(res.output)
        if res.status == FileStatus.DONE:
            resumed = f", {res.resumed} of them resumed" if res.resumed else ""
            write(f"done: {src} -> {dst} ({res.frames} frames{resumed}, {res.seconds:.1f} s, "
                  f"{rate_text(res.fps)} frames/s)")
        elif res.status == FileStatus.SKIPPED:
            write(f"{'would skip' if dry_run else 'skipped'}: {src} -> {dst} ({escape(res.error or '')})")
        elif res.status == FileStatus.BUSY:
            write(f"left to another run: {src} -> {dst} ({escape(res.error or '')})")
        elif res.status == FileStatus.PLANNED:
            write(f"would enhance: {src} -> {dst}")
    for w in res.warnings:
        write(f"warning: {shown(res.input)}: {escape(w)}")


def spool_stdin() -> str:
    """Copy a video piped on stdin to a temporary file (probing and the audio mapping both need
    to read it, and a pipe can be read once). Returns its path; the caller removes it."""
    import shutil

    sweep_spools()  # what runs killed while spooling left behind
    fd, path = spool_path()
    try:
        with os.fdopen(fd, "wb") as f:
            shutil.copyfileobj(sys.stdin.buffer, f, length=1 << 20)
    except BaseException:  # Ctrl-C, SIGTERM, a full disk: leave nothing behind
        Path(path).unlink(missing_ok=True)
        raise
    if os.path.getsize(path) == 0:
        os.unlink(path)
        raise InputError("nothing arrived on stdin", path="-")
    return path


def reject_missing(found: list[tuple[str, Path | None]]) -> None:
    """Raise for nothing to do at all (an empty folder, a glob with no matches)."""
    if not found:
        raise InputError("no video files found", hint=f"check the path, or add {option('recursive', True)} for sub-folders")
Result = BatchSummary  # the Python API name (enhancer.Result)


def check_report_path(report_path: str, inputs: list[str], outputs: list[str] = ()) -> None:
    """Refuse a report path that cannot be written, or that names an input or one of the
    batch's outputs (or lies in an image-sequence output's folder), before any work is done."""
    from enhancer.batch.naming import _inside
    from enhancer.errors import RequestError, option

    flag = option("report")
    path = Path(report_path)
    if path.is_dir():
        raise RequestError("report", f"{shown(report_path)}: {flag} names a folder; give a file name such as "
                                     "report.json")
    if path.exists() and any(i != "-" and os.path.exists(i) and os.path.samefile(i, path) for i in inputs):
        raise RequestError("report", f"{shown(report_path)}: {flag} names an input file")
    where = os.path.realpath(report_path)
    for out in outputs:
        if out != "-" and (same_file(report_path, out) or _inside(where, os.path.realpath(out))):
            raise RequestError("report", f"{shown(report_path)}: {flag} names an output of this batch "
                                         f"({shown(out)}); give another file name such as report.json")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RequestError("report", f"{shown(report_path)}: cannot create the folder for {flag}: {e.strerror}")
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise RequestError("report", f"{shown(report_path)}: {flag} cannot be written here (permission denied)")


def write_report(report_path: str, data: dict) -> bool:
    """The batch's JSON summary, written whole or not at all; False (and an error logged) where
    it cannot be written: the outputs are made all the same."""
    from enhancer.media.temps import atomic_write

    try:
        atomic_write(report_path, json.dumps(data, indent=1))
        return True
    except OSError as e:
        log.error("%s: cannot write the report: %s", shown(report_path), e.strerror)
        return False

