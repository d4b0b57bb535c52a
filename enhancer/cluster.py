"""``--executor ray``: a batch spread over a Ray cluster, one task per file.

Each task runs the local executor's own :func:`~enhancer.batch.run_job` on a worker: it takes
the output's lock, reads its record, skips what is done with the same recipe, resumes from
finished parts, writes under temporary names and records the outcome (see
:mod:`enhancer.state`), so the promises of a local batch hold whichever node makes a file and
however many drivers share the folder. A worker that dies (killed, out of memory, its node
lost) has its task retried, a bounded number of times, by Ray; the retry takes over the dead
worker's lock and continues after its last finished part. Inputs and outputs must lie on a path
every node sees (a shared filesystem, with working file locks); a node that cannot see them says
so for each file.

Ray is an optional extra (``pip install 'enhancer[ray]'``); nothing else in enhancer imports it.
"""
from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from enhancer.batch import BatchSummary, FileResult, Job
from enhancer.errors import UsageError, escape, shown
from enhancer.infer.engine import EnhanceOptions
from enhancer.io.muxer import EncodeOptions

DEFAULT_RETRIES = 2  # tries after the first, for a task whose worker died


@dataclass(frozen=True)
class ModelSpec:
    """What a worker loads: the arguments of :func:`~enhancer.infer.models.load_restorer`."""

    model: str
    scale: int | None = None
    device: str = "auto"
    precision: str = "auto"
    tile: int | str | None = "auto"
    chunk: int | None = None

    def load(self):
        from enhancer.infer.models import load_restorer

        return load_restorer(self.model, scale=self.scale, device=self.device, precision=self.precision,
                             tile=self.tile, chunk=self.chunk)


_loaded: dict = {}  # per worker process: the restorer of each spec, loaded once


def _make_one(job: Job, spec: ModelSpec, encode: EncodeOptions, opts: EnhanceOptions, folder: str | None,
              ffmpeg: str | None, overwrite: bool, retry_failed: bool, strict: bool) -> FileResult:
    """One file, on a worker (the body of the Ray task); no progress output (the driver reports
    each file as it comes back)."""
    from enhancer.progress import using

    with using("none"):
        return _make(job, spec, encode, opts, folder, ffmpeg, overwrite, retry_failed, strict)


def _make(job: Job, spec: ModelSpec, encode: EncodeOptions, opts: EnhanceOptions, folder: str | None,
          ffmpeg: str | None, overwrite: bool, retry_failed: bool, strict: bool) -> FileResult:
    from enhancer.batch import run_job
    from enhancer.errors import EnhancerError
    from enhancer.io import ffmpeg as ff
    from enhancer.state import BatchState

    here = socket.gethostname()
    for path, what in ((job.input, "input"), (folder or str(Path(job.output).parent), "output folder")):
        if not os.path.exists(path):
            return FileResult(job.input, job.output, "failed",
                              error=f"{shown(path)}: the {what} is not there on node {here}: with --executor ray "
                                    "every node must see inputs and outputs at the same path (a shared filesystem)")
    try:
        if ff._tools is None:
            ff.configure(ffmpeg=ffmpeg, verbose=False)
        if spec not in _loaded:
            _loaded[spec] = spec.load()
        restorer = _loaded[spec]
    except EnhancerError as e:
        return FileResult(job.input, job.output, "failed", error=f"{e.line()} (on node {here})")
    state = BatchState(folder, scan=False) if folder is not None else None  # this file's record only
    return run_job(job, restorer, encode, opts, overwrite=overwrite, state=state, retry_failed=retry_failed,
                   strict=strict)


def gpus_per_task(total_gpus: float, parameters: int | None) -> float:
    """A whole GPU for a large model, a share of one for a small model (several files then run
    on each GPU at once), none on a cluster without GPUs."""
    if not total_gpus:
        return 0.0
    return 0.25 if parameters is not None and parameters < 2_000_000 else 1.0


def run_batch_ray(jobs: list[Job], spec: ModelSpec, encode: EncodeOptions, opts: EnhanceOptions, *,
                  address: str | None = None, folder: Path | None = None, ffmpeg: str | None = None,
                  overwrite: bool = False, retry_failed: bool = False, strict: bool = False,
                  retries: int = DEFAULT_RETRIES, parameters: int | None = None,
                  on_result: Callable[[FileResult], None] | None = None) -> BatchSummary:
    """Run every job as a Ray task on the cluster at ``address`` (None: a local Ray instance).
    Results come back in the jobs' order; ``on_result`` sees each as it finishes."""
    try:
        import ray
    except ImportError:
        raise UsageError("--executor ray needs Ray, which is not installed",
                         hint="pip install 'enhancer[ray]'") from None
    if any(j.input == "-" or j.output == "-" for j in jobs):
        raise UsageError("--executor ray reads and writes files on a shared path: stdin and stdout are not for it")
    t0 = time.perf_counter()
    given = jobs
    # every node resolves paths itself: absolute ones mean the same file everywhere on a shared mount
    jobs = [Job(os.path.abspath(j.input), os.path.abspath(j.output), j.display) for j in jobs]
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        folder = folder.resolve()
    if spec.model.endswith(".safetensors") and os.path.exists(spec.model):
        spec = ModelSpec(os.path.abspath(spec.model), spec.scale, spec.device, spec.precision, spec.tile, spec.chunk)
    if address and address != "auto" and not address.startswith("ray://"):
        host, _, port = address.rpartition(":")
        if not port.isdigit():
            raise UsageError(f"--ray-address takes HOST:PORT (or auto), not {address!r}",
                             hint="the head node's address, as 'ray start --head' printed it")
        try:  # Ray itself keeps trying for minutes: say at once that nothing answers there
            socket.create_connection((host or "127.0.0.1", int(port)), timeout=10).close()
        except (OSError, ValueError) as e:
            why = escape(getattr(e, "strerror", None) or str(e))
            raise UsageError(f"cannot reach the Ray cluster at {address}: {why}",
                             hint="start it with 'ray start --head', or omit --ray-address") from None
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                 configure_logging=False, ignore_reinit_error=True)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise UsageError(f"cannot reach the Ray cluster at {address or 'a local instance'}: "
                         f"{escape(str(e).splitlines()[0] if str(e) else type(e).__name__)}",
                         hint="start it with 'ray start --head', or omit --ray-address") from None
    try:
        gpus = gpus_per_task(ray.cluster_resources().get("GPU", 0), parameters)
        task = ray.remote(_make_one).options(num_cpus=1, num_gpus=gpus, max_retries=retries,
                                             retry_exceptions=True, name="enhance-file")
        pending = {task.remote(job, spec, encode, opts, str(folder) if folder else None, ffmpeg, overwrite,
                               retry_failed, strict): k for k, job in enumerate(jobs)}
        results: list[FileResult | None] = [None] * len(jobs)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                k = pending.pop(ref)
                try:
                    res = ray.get(ref)
                except Exception as e:  # the worker died on every try, or the task raised each time
                    why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                    res = FileResult(jobs[k].input, jobs[k].output, "failed",
                                     error=f"{shown(jobs[k].input)}: failed on the cluster {retries + 1} times "
                                           f"({escape(why[:200])})")
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
