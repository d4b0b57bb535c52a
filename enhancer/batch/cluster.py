"""``--executor ray``: a batch spread over a Ray cluster, one task per file, or per part of a long one.

Each task runs the local executor's own :func:`~enhancer.batch.runner.run_job` on a worker: it takes
the output's lock, reads its record, skips what is done with the same recipe, resumes from
finished parts, writes under temporary names and records the outcome (see
:mod:`enhancer.batch.state`), so the promises of a local batch hold whichever node makes a file and
however many drivers share the folder. A worker that dies (killed, out of memory, its node
lost) has its task retried, a bounded number of times, by Ray; the retry takes over the dead
worker's lock and continues after its last finished part. Inputs and outputs must lie on a path
every node sees (a shared filesystem, with working file locks); a node that cannot see them says
so for each file.

A file longer than ``split`` seconds (``--ray-split``, 10 minutes by default) is made by several
tasks at once: a planning task decides, as the local executor would, whether the file is to be
made at all and cuts its timeline into spans of ``split`` seconds; a task per span makes that
span's frames (with the real frames on either side as the model's context, so the spans join
into the frames one process would have made), in resumable parts of its own under a lock of its
own; and a last task, under the output's lock, hands the spans' parts to the ordinary join of
parts (:func:`~enhancer.pipeline.spans.merge_spans`), which counts every frame before the output
takes its name, and records the outcome. A span that keeps failing fails its file, in one line,
recorded like any failure; what the other spans made is kept for the next run.

Ray is an optional extra (``pip install 'enhancer[ray]'``); nothing else in enhancer imports it.
"""
from __future__ import annotations

import os
import shutil
import socket
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

from enhancer.batch.runner import BatchSummary, FileResult, Job
from enhancer.errors import UsageError, escape, option, shown
from enhancer.pipeline.engine import EnhanceOptions
from enhancer.pipeline.request import DEFAULT_SPLIT, ModelChoice
from enhancer.media.encode import EncodeOptions
from enhancer.batch.status import FileStatus, RecordStatus

DEFAULT_RETRIES = 2  # tries after the first, for a task whose worker died


_loaded: dict = {}  # per worker process: the restorer of each spec, loaded once


def _make_one(job: Job, spec: ModelChoice, encode: EncodeOptions, opts: EnhanceOptions, folder: str | None,
              ffmpeg: str | None, overwrite: bool, retry_failed: bool, strict: bool,
              spans: tuple | None = None) -> FileResult:
    """One file, on a worker (the body of the Ray task); no progress output (the driver reports
    each file as it comes back). ``spans`` (key, spans, error): the spans other tasks made,
    joined here, or the error of the one that failed, recorded here."""
    from enhancer.progress import using

    with using("none"):
        return _make(job, spec, encode, opts, folder, ffmpeg, overwrite, retry_failed, strict, spans)


def _missing(job: Job, folder: str | None) -> str | None:
    """Why this node cannot work on the job: an input or output folder it does not see."""
    here = socket.gethostname()
    for path, what in ((job.input, "input"), (folder or str(Path(job.output).parent), "output folder")):
        if not os.path.exists(path):
            return (f"{shown(path)}: the {what} is not there on node {here}: with {option('executor')} ray every node must "
                    "see inputs and outputs at the same path (a shared filesystem)")
    return None


def _restorer(spec: ModelChoice, ffmpeg: str | None):
    """The worker's ffmpeg set up and the spec's model, loaded once per worker process."""
    from enhancer.media import ffmpeg as ff

    if ff._tools is None:
        ff.configure(ffmpeg=ffmpeg, verbose=False)
    if spec not in _loaded:
        _loaded[spec] = spec.load()
    return _loaded[spec]


def _make(job: Job, spec: ModelChoice, encode: EncodeOptions, opts: EnhanceOptions, folder: str | None,
          ffmpeg: str | None, overwrite: bool, retry_failed: bool, strict: bool,
          spans: tuple | None = None) -> FileResult:
    from enhancer.batch.runner import run_job
    from enhancer.errors import EnhancerError
    from enhancer.batch.state import BatchState

    missing = _missing(job, folder)
    if missing:
        return FileResult(job.input, job.output, FileStatus.FAILED, error=missing)
    try:
        restorer = _restorer(spec, ffmpeg)
    except EnhancerError as e:
        return FileResult(job.input, job.output, FileStatus.FAILED,
                          error=f"{e.line()} (on node {socket.gethostname()})")
    state = BatchState(folder, scan=False) if folder is not None else None  # this file's record only
    if spans is None:
        return run_job(job, restorer, encode, opts, overwrite=overwrite, state=state, retry_failed=retry_failed,
                       strict=strict)
    from fractions import Fraction

    from enhancer.pipeline.parts import parts_folder
    from enhancer.pipeline.spans import merge_spans

    bounds, error = spans
    if error is not None:
        return _record_failure(job, restorer, encode, opts, state, error)
    cuts = [(Fraction(lo), Fraction(hi) if hi is not None else None) for lo, hi in bounds]
    result = run_job(job, restorer, encode, opts, overwrite=overwrite, state=state, retry_failed=retry_failed,
                     strict=strict, before=lambda key: merge_spans(job.output, key, cuts))
    if result.status == FileStatus.SKIPPED:  # made meanwhile by another run: what the spans made is not needed
        shutil.rmtree(parts_folder(job.output) / "spans", ignore_errors=True)
    return result


def _record_failure(job: Job, restorer, encode: EncodeOptions, opts: EnhanceOptions, state, error: str) -> FileResult:
    """A file whose span kept failing: failed, and recorded so under the output's lock, as the
    local executor records a failure (a rerun says so; --retry-failed tries again)."""
    from enhancer.batch.runner import job_recipe
    from enhancer.errors import LockedError
    from enhancer.batch.state import Decision, OutputLock

    result = FileResult(job.input, job.output, FileStatus.FAILED, error=error)
    recipe = job_recipe(job, restorer, encode, opts)
    if state is None or state.read_only or recipe is None:
        return result
    try:
        lock = OutputLock(job.output).acquire()
    except (LockedError, OSError):
        return result
    try:
        state.refresh(job.output)
        if state.decide(job.output, recipe, retry_failed=False)[0] in (Decision.SKIP, Decision.SKIP_INCOMPLETE):
            # made meanwhile by another run: said so, and its record left as it is
            return FileResult(job.input, job.output, FileStatus.SKIPPED, error="made by another run meanwhile")
        state.record(job.output, recipe, RecordStatus.FAILED, error, 0)
    finally:
        lock.release()
    return result


def _plan_one(job: Job, spec: ModelChoice, encode: EncodeOptions, opts: EnhanceOptions, folder: str | None,
              ffmpeg: str | None, overwrite: bool, retry_failed: bool, strict: bool, split: float):
    """Whether a file is made by a task per span: its spans [(lo, hi), ...] as strings, or None
    where one task makes it (short, not to be made, or anything unusual: that task decides again
    and says why). Each span task and the last task take the recipe's key from their own model
    (a precision can differ between kinds of node); the last task joins only spans made with its
    own and makes anything else itself."""
    from enhancer.batch.runner import decide_job
    from enhancer.errors import EnhancerError
    from enhancer.pipeline.parts import _resumable
    from enhancer.pipeline.spans import plan_spans
    from enhancer.media.probe import probe
    from enhancer.progress import using
    from enhancer.batch.state import BatchState

    if _missing(job, folder) or opts.preview or opts.splice or not opts.segment.whole:
        return None
    with using("none"):
        try:
            restorer = _restorer(spec, ffmpeg)
            state = BatchState(folder, scan=False) if folder is not None else None
            decided = decide_job(job, restorer, encode, opts, overwrite=overwrite, state=state,
                                 retry_failed=retry_failed, strict=strict)
            if decided.result is not None or decided.recipe is None:
                return None
            info = probe(job.input, fps=opts.fps)
        except EnhancerError:
            return None
    if not _resumable(info, job.output, encode, opts) or not info.duration or info.duration <= split:
        return None
    return [(str(lo), None if hi is None else str(hi)) for lo, hi in plan_spans(info, split)]


def _span_one(job: Job, spec: ModelChoice, encode: EncodeOptions, opts: EnhanceOptions, folder: str | None,
              ffmpeg: str | None, index: int, lo: str, hi: str | None, overwrite: bool = False) -> dict:
    """Span ``index`` of a file, on a worker, under the span's own lock: its summary;
    {"skipped": True} where the output was made meanwhile; {"busy": line} where another run is
    making this span; {"error": line} for a failure that another try would repeat."""
    from fractions import Fraction

    from enhancer.batch.runner import job_recipe
    from enhancer.errors import EnhancerError, LockedError
    from enhancer.pipeline.spans import enhance_span, span_folder
    from enhancer.media.probe import probe
    from enhancer.progress import using
    from enhancer.batch.state import BatchState, Decision, OutputLock

    missing = _missing(job, folder)
    if missing:
        return {"error": missing}
    here = socket.gethostname()
    with using("none"):
        try:
            restorer = _restorer(spec, ffmpeg)
            recipe = job_recipe(job, restorer, encode, opts)
            if recipe is None:
                return {"error": f"{shown(job.input)}: the input is gone (part {index + 1}, on node {here})"}
            if folder is not None and not overwrite:
                state = BatchState(folder, scan=False)
                state.refresh(job.output)
                if state.decide(job.output, recipe, retry_failed=False)[0] is Decision.SKIP:
                    return {"skipped": True}
            target = span_folder(job.output, index)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                lock = OutputLock(target).acquire()
            except LockedError as e:
                return {"busy": f"{shown(job.input)}: part {index + 1} is being made by another run ({e.reason})"}
            try:
                info = probe(job.input, fps=opts.fps)
                return enhance_span(info, job.output, restorer, encode, opts, recipe.key(), index, Fraction(lo),
                                    Fraction(hi) if hi is not None else None)
            finally:
                lock.release()
        except EnhancerError as e:
            if e.path is None:
                e.path = job.input
            return {"error": f"{e.line()} (part {index + 1}, on node {here})"}
        except OSError as e:
            return {"error": f"{shown(job.input)}: part {index + 1}: {escape(e.strerror or str(e))} (on node {here})"}


PROBE_THREADS = 8  # the driver's probes at once (ffmpeg processes)


def _longer_than(path: str, split: float, opts: EnhanceOptions) -> bool:
    """Whether a file may be worth a task per span (the planning task decides): a probe here, so
    that short files, most of a batch, go straight to a task of their own."""
    from enhancer.errors import EnhancerError
    from enhancer.media.probe import probe

    if opts.preview or opts.splice or not opts.segment.whole:
        return False
    try:
        info = probe(path, fps=opts.fps)
    except (EnhancerError, OSError):
        return False
    return bool(info.duration and info.duration > split)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def gpus_per_task(total_gpus: float, parameters: int | None) -> float:
    """A whole GPU for a large model, a share of one for a small model (several files then run
    on each GPU at once), none on a cluster without GPUs."""
    if not total_gpus:
        return 0.0
    return 0.25 if parameters is not None and parameters < 2_000_000 else 1.0


def run_batch_ray(jobs: list[Job], spec: ModelChoice, encode: EncodeOptions,
                  opts: EnhanceOptions | list[EnhanceOptions], *,
                  address: str | None = None, folder: Path | None = None, ffmpeg: str | None = None,
                  overwrite: bool = False, retry_failed: bool = False, strict: bool = False,
                  retries: int = DEFAULT_RETRIES, parameters: int | None = None, split: float = DEFAULT_SPLIT,
                  on_result: Callable[[FileResult], None] | None = None) -> BatchSummary:
    """Run every job as a Ray task on the cluster at ``address`` (None: a local Ray instance),
    files longer than ``split`` seconds (0: none) as a task per span. Results come back in the
    jobs' order; ``on_result`` sees each as it finishes. ``opts`` may be a list, one per job
    (conform: each job is its own span of its source)."""
    try:
        import ray
    except ImportError:
        raise UsageError(f"{option('executor')} ray needs Ray, which is not installed",
                         hint="pip install 'enhancer[ray]'") from None
    if any(j.input == "-" or j.output == "-" for j in jobs):
        raise UsageError(f"{option('executor')} ray reads and writes files on a shared path: stdin and stdout are not for it")
    t0 = time.perf_counter()
    each = list(opts) if isinstance(opts, (list, tuple)) else [opts] * len(jobs)
    given = jobs
    # every node resolves paths itself: absolute ones mean the same file everywhere on a shared mount
    jobs = [Job(os.path.abspath(j.input), os.path.abspath(j.output), j.display) for j in jobs]
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        folder = folder.resolve()
    if os.path.isfile(spec.model):  # a model file (enhancer's or the field's), all its settings kept
        spec = replace(spec, model=os.path.abspath(spec.model))
    if address and address != "auto" and not address.startswith("ray://"):
        host, _, port = address.rpartition(":")
        if not port.isdigit():
            raise UsageError(f"{option('ray_address')} takes HOST:PORT (or auto), not {address!r}",
                             hint="the head node's address, as 'ray start --head' printed it")
        try:  # Ray itself keeps trying for minutes: say at once that nothing answers there
            socket.create_connection((host or "127.0.0.1", int(port)), timeout=10).close()
        except (OSError, ValueError) as e:
            why = escape(getattr(e, "strerror", None) or str(e))
            raise UsageError(f"cannot reach the Ray cluster at {address}: {why}",
                             hint=f"start it with 'ray start --head', or omit {option('ray_address')}") from None
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                 configure_logging=False, ignore_reinit_error=True)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise UsageError(f"cannot reach the Ray cluster at {address or 'a local instance'}: "
                         f"{escape(str(e).splitlines()[0] if str(e) else type(e).__name__)}",
                         hint=f"start it with 'ray start --head', or omit {option('ray_address')}") from None
    try:
        gpus = gpus_per_task(ray.cluster_resources().get("GPU", 0), parameters)
        common = dict(max_retries=retries, retry_exceptions=True)
        task = ray.remote(_make_one).options(num_cpus=1, num_gpus=gpus, name="enhance-file", **common)
        span_task = ray.remote(_span_one).options(num_cpus=1, num_gpus=gpus, name="enhance-part", **common)
        # the plan loads the model (for the recipe) on the same kind of node as the tasks that follow
        plan_task = ray.remote(_plan_one).options(num_cpus=1, num_gpus=gpus, name="plan-file", **common)
        where = str(folder) if folder else None
        args = lambda k: (jobs[k], spec, encode, each[k], where, ffmpeg, overwrite, retry_failed, strict)  # noqa: E731
        pending: dict = {}
        # the inputs are probed a few at a time (thousands of files are not probed one by one),
        # each sent off as soon as its probe, and those before it, are done
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=PROBE_THREADS) as pool:
            longer = pool.map(lambda k: bool(split and split > 0 and _longer_than(jobs[k].input, split, each[k])),
                              range(len(jobs)))
            for k, long in enumerate(longer):
                if long:
                    pending[plan_task.remote(*args(k), split)] = ("plan", k, None)
                else:
                    pending[task.remote(*args(k))] = ("file", k, None)
        spans: dict[int, dict] = {}  # per split file: its key, spans, how many are left, the first error
        results: list[FileResult | None] = [None] * len(jobs)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                kind, k, index = pending.pop(ref)
                if kind == "plan":
                    try:
                        plan = ray.get(ref)
                    except Exception:  # noqa: BLE001 - the file task decides again and says why
                        plan = None
                    if plan is None:
                        pending[task.remote(*args(k))] = ("file", k, None)
                        continue
                    spans[k] = {"bounds": plan, "left": len(plan), "error": None, "busy": None}
                    for i, (lo, hi) in enumerate(plan):
                        pending[span_task.remote(jobs[k], spec, encode, each[k], where, ffmpeg, i, lo, hi,
                                                 overwrite)] = ("span", k, i)
                    continue
                if kind == "span":
                    try:
                        out = ray.get(ref)
                    except Exception as e:  # noqa: BLE001 - the worker died on every try
                        out = {"error": f"{shown(jobs[k].input)}: part {index + 1} failed on the cluster "
                                        f"{retries + 1} times ({escape(_first_line(e)[:200])})"}
                    sp = spans[k]
                    sp["left"] -= 1
                    for what in ("error", "busy"):
                        if out.get(what) and sp[what] is None:
                            sp[what] = out[what]
                    if sp["left"]:
                        continue
                    if sp["busy"] and not sp["error"]:  # another run is on it: said, not recorded
                        res = FileResult(jobs[k].input, jobs[k].output, FileStatus.BUSY, error=sp["busy"])
                    else:
                        pending[task.remote(*args(k), (sp["bounds"], sp["error"]))] = ("file", k, None)
                        continue
                else:
                    try:
                        res = ray.get(ref)
                    except Exception as e:  # noqa: BLE001 - the worker died on every try, or the task raised each time
                        res = FileResult(jobs[k].input, jobs[k].output, FileStatus.FAILED,
                                         error=f"{shown(jobs[k].input)}: failed on the cluster {retries + 1} times "
                                               f"({escape(_first_line(e)[:200])})")
                # reported as the user named them (the tasks had them absolute)
                for attr, absolute, named in (("input", jobs[k].input, given[k].input),
                                              ("output", jobs[k].output, given[k].output)):
                    if getattr(res, attr) == absolute:
                        setattr(res, attr, named)
                if res.error:
                    res.error = res.error.replace(jobs[k].input, given[k].input)
                results[k] = res
                if on_result is not None:
                    on_result(res)
    finally:
        ray.shutdown()
    return BatchSummary([r for r in results if r is not None], time.perf_counter() - t0)
