"""Many inputs: discovery, output naming, skip, per-file isolation and the summary.

One file's failure never stops the others: each becomes a :class:`FileResult` with a one-line
reason, and the batch goes on.
"""
from __future__ import annotations

import glob
import json
import os
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from enhancer.errors import EnhancerError, InputError, OutputError
from enhancer.infer.engine import EnhanceOptions, enhance_video
from enhancer.infer.restorer import Restorer
from enhancer.io.muxer import CONTAINERS, IMAGE_CODECS, EncodeOptions, default_extension
from enhancer.io.probe import probe
from enhancer.progress import bar

VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mkv", ".mov", ".avi", ".webm", ".ts", ".mts", ".m2ts", ".flv", ".wmv",
                    ".mpg", ".mpeg", ".m2v", ".ogv", ".ogg", ".3gp", ".vob", ".mxf", ".gif", ".dv", ".y4m", ".nut",
                    ".asf", ".rm", ".rmvb", ".divx", ".f4v", ".qt", ".mjpeg", ".264", ".h264", ".hevc", ".265"}


@dataclass
class Job:
    input: str
    output: str
    display: str | None = None  # what to call the input in reports (stdin's spool file is "-")


@dataclass
class FileResult:
    input: str
    output: str | None
    status: str  # done | skipped | failed | planned
    frames: int = 0
    seconds: float = 0.0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


@dataclass
class BatchSummary:
    results: list[FileResult]
    seconds: float

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def frames(self) -> int:
        return sum(r.frames for r in self.results)

    @property
    def exit_code(self) -> int:
        return 1 if self.count("failed") else 0

    def to_dict(self) -> dict:
        return {"done": self.count("done"), "skipped": self.count("skipped"), "failed": self.count("failed"),
                "seconds": self.seconds, "frames": self.frames,
                "frames_per_second": self.frames / self.seconds if self.seconds > 0 else 0.0,
                "files": [asdict(r) for r in self.results]}

    def line(self) -> str:
        fps = self.frames / self.seconds if self.seconds > 0 else 0.0
        return (f"{self.count('done')} done, {self.count('skipped')} skipped, {self.count('failed')} failed"
                f" in {self.seconds:.1f} s ({self.frames} frames, {fps:.1f} frames/s)")


def _is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def discover(inputs: Iterable[str], recursive: bool = False) -> list[tuple[str, Path | None]]:
    """Expand files, folders and globs into ``(file, root)`` pairs; ``root`` is the folder an input
    was found under (outputs mirror the tree below it) or None for files named directly.
    Names that do not exist are kept, so they fail later with a clear reason."""
    found: list[tuple[str, Path | None]] = []
    seen: set[str] = set()

    def add(path: str, root: Path | None) -> None:
        key = os.path.abspath(path)
        if key not in seen:
            seen.add(key)
            found.append((path, root))

    for item in inputs:
        from enhancer.io.sequence import is_image_sequence

        if item == "-":
            add(item, None)
        elif is_image_sequence(item):
            add(item, None)
        elif os.path.isdir(item):
            root = Path(item)
            pattern = "**/*" if recursive else "*"
            for p in sorted(root.glob(pattern)):
                if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS and not p.name.startswith("."):
                    add(str(p), root)
        elif not os.path.exists(item) and _is_glob(item):
            matches = sorted(glob.glob(item, recursive=recursive))
            if not matches:
                add(item, None)  # fails as "no such file"
            for m in matches:
                if os.path.isfile(m):
                    add(m, None)
        else:
            add(item, None)
    return found


def plan_jobs(found: list[tuple[str, Path | None]], output: str, codec: str, container: str | None = None,
              single_file_ok: bool = True) -> list[Job]:
    """Name each output. With one file input and ``output`` naming a file (an extension ffmpeg
    can write, not an existing folder), that is the output; otherwise ``output`` is a folder and
    the inputs' tree is mirrored below it. An output never lands on its input."""
    if output == "-":
        if len(found) != 1:
            raise OutputError("-o - (stdout) takes exactly one input")
        return [Job(found[0][0], "-")]
    out = Path(output)
    is_file_target = (single_file_ok and len(found) == 1 and found[0][1] is None and not out.is_dir()
                      and out.suffix.lower() in CONTAINERS and codec not in IMAGE_CODECS)
    if is_file_target:
        return [Job(found[0][0], str(out))]
    jobs: list[Job] = []
    taken: dict[str, str] = {}
    from enhancer.io.sequence import is_image_sequence, sequence_name

    for src, root in found:
        sp = Path(src) if src != "-" else Path("stdin.mkv")
        rel = sp.relative_to(root) if root is not None else Path(sp.name)
        if src != "-" and is_image_sequence(src):
            sp = rel = Path(sequence_name(src))
        if codec in IMAGE_CODECS:
            target = out / rel.parent / f"{rel.stem}_frames"
        else:
            ext = ("." + container.lstrip(".")) if container else default_extension(codec, sp.suffix)
            target = out / rel.parent / (rel.stem + ext)
        if src != "-" and os.path.abspath(target) == os.path.abspath(src):
            target = target.with_name(f"{rel.stem}.enhanced{target.suffix}")
        key = os.path.abspath(target)
        if key in taken:  # a.avi and a.ts would both become a.mkv
            target = target.with_name(f"{rel.stem}_{sp.suffix.lstrip('.')}{target.suffix}")
            key = os.path.abspath(target)
        taken[key] = src
        jobs.append(Job(src, str(target)))
    return jobs


def recipe_of(restorer: Restorer, encode: EncodeOptions, opts: EnhanceOptions) -> dict:
    """What makes an output what it is: a change here means the output must be redone."""
    return {"restorer": restorer.describe() | {"tile": None, "oom_retries": None, "device": None, "chunk": None},
            "encode": asdict(encode),
            "deinterlace": opts.deinterlace, "start": opts.start, "duration": opts.duration, "preview": opts.preview}


def run_job(job: Job, restorer: Restorer, encode: EncodeOptions, opts: EnhanceOptions, *, overwrite: bool,
            verbose: bool = False, desc: str | None = None, state=None, retry_failed: bool = False) -> FileResult:
    """Enhance one file; every failure becomes a result with a one-line reason."""
    t0 = time.perf_counter()
    recipe = recipe_of(restorer, encode, opts)
    target = str(preview_path(job.output)) if opts.preview and job.output != "-" else job.output
    try:
        if state is not None and not overwrite and job.input != "-":
            decision, why = state.decide(job.input, target, recipe, retry_failed=retry_failed)
            if decision == "skip":
                return FileResult(job.input, target, "skipped", error=why)
            if decision == "failed-before":
                return FileResult(job.input, target, "failed",
                                  error=f"{why} [failed in an earlier run; --retry-failed tries again]")
            if decision == "run" and why and os.path.exists(target):
                overwrite = True  # our own earlier output, made from another input or recipe
        if job.output != "-" and os.path.exists(target) and not overwrite:
            return FileResult(job.input, target, "skipped", error="output exists (use --overwrite to redo)")
        if job.output != "-":
            parent = Path(job.output).parent
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise OutputError(f"cannot create output folder: {e.strerror}", path=str(parent)) from None
            if not os.access(parent, os.W_OK):
                raise OutputError("output folder is not writable", path=str(parent))
        info = probe(job.input)
        if opts.preview:
            result = _preview(job, info, restorer, opts, overwrite, desc, t0)
        else:
            res = enhance_video(info, job.output, restorer, encode, opts, desc=desc)
            result = FileResult(job.input, res.output or "-", "done", frames=res.frames, seconds=res.seconds,
                                warnings=res.warnings)
    except EnhancerError as e:
        if e.path is None:
            e.path = job.input
        result = FileResult(job.input, target, "failed", seconds=time.perf_counter() - t0, error=e.line())
    except MemoryError:
        result = FileResult(job.input, target, "failed", seconds=time.perf_counter() - t0,
                            error=f"{job.input}: out of memory (try a smaller --tile or --chunk)")
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # a bug of ours: keep the batch going, say so plainly
        if verbose:
            traceback.print_exc()
        result = FileResult(job.input, target, "failed", seconds=time.perf_counter() - t0,
                            error=f"{job.input}: internal error: {type(e).__name__}: {e} (run with -v for details)")
    if state is not None and job.display is None and result.status in ("done", "failed"):
        state.record(job.input, target, recipe, result.status, result.error, result.frames)
    if job.display is not None:
        result.input = job.display
        if result.error:
            result.error = result.error.replace(job.input, job.display)
    return result


def preview_path(output: str) -> Path:
    out = Path(output)
    return out.with_name(out.stem + ".preview.mp4")


def _preview(job: Job, info, restorer: Restorer, opts: EnhanceOptions, overwrite: bool, desc: str | None,
             t0: float) -> FileResult:
    """Enhance the first ``opts.preview`` seconds (from --start) and write them beside the input,
    split down the middle, as ``NAME.preview.mp4`` next to where the output would go."""
    import dataclasses
    import tempfile

    from enhancer.compare import compare

    target = preview_path(job.output)
    if target.exists() and not overwrite:
        return FileResult(job.input, str(target), "skipped", error="preview exists (use --overwrite to redo)")
    seg = dataclasses.replace(opts, duration=opts.preview)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".preview-") as tmp:
        enhanced = str(Path(tmp) / "enhanced.mkv")
        res = enhance_video(info, enhanced, restorer, EncodeOptions(codec="ffv1"), seg, desc=desc)
        compare([job.input, enhanced], str(target), mode="split", labels=["input", f"enhanced ({restorer.name})"],
                duration=opts.preview, starts=[opts.start, None], progress=False)
    return FileResult(job.input, str(target), "done", frames=res.frames, seconds=time.perf_counter() - t0,
                      warnings=res.warnings)


def state_folder(jobs: list[Job], output: str) -> Path | None:
    """The folder whose state file and lock a batch uses (None when writing to stdout)."""
    if output == "-":
        return None
    if len(jobs) == 1 and Path(jobs[0].output) == Path(output) and not Path(output).is_dir():
        return Path(output).parent
    return Path(output)


def run_batch(jobs: list[Job], restorer: Restorer, encode: EncodeOptions, opts: EnhanceOptions, *,
              overwrite: bool = False, verbose: bool = False, folder: Path | None = None,
              retry_failed: bool = False, fail_fast: bool = False,
              on_result: Callable[[FileResult], None] | None = None) -> BatchSummary:
    """Enhance every job in turn; a failure is reported and the batch goes on (unless
    ``fail_fast``). With ``folder``, the folder is locked and its state file kept up to date."""
    from enhancer.state import BatchState, FolderLock

    t0 = time.perf_counter()
    results: list[FileResult] = []
    many = len(jobs) > 1
    lock = None
    if folder is not None:
        try:
            lock = FolderLock(folder).acquire()
        except OSError:  # cannot even create the folder: each file will say so
            folder = None
    try:
        if lock is not None and lock.took_over:
            print(f"warning: {folder}: {lock.took_over}", file=sys.stderr)
        state = BatchState(folder) if folder is not None else None
        with bar(total=len(jobs), desc="files", unit="file", enabled=opts.progress and many, position=0) as files:
            stopped = False
            for job in jobs:
                if stopped:
                    res = FileResult(job.input, job.output, "skipped", error="not run: --fail-fast stopped the batch")
                else:
                    desc = Path(job.input).name if job.input != "-" else "stdin"
                    res = run_job(job, restorer, encode, opts, overwrite=overwrite, verbose=verbose, desc=desc[:40],
                                  state=state, retry_failed=retry_failed)
                    stopped = fail_fast and res.status == "failed"
                results.append(res)
                if on_result is not None:
                    on_result(res)
                files.update(1)
    finally:
        if lock is not None:
            lock.release()
    return BatchSummary(results, time.perf_counter() - t0)


def report(res: FileResult, *, as_json: bool, quiet: bool = False) -> None:
    """Print one file's outcome: a JSON line on stdout, or a line for people on stderr."""
    if as_json:
        print(res.to_json(), flush=True)
        if res.status == "failed":
            print(f"error: {res.error}", file=sys.stderr, flush=True)
        return
    if res.status == "failed":
        print(f"error: {res.error}", file=sys.stderr, flush=True)
    elif not quiet:
        if res.status == "done":
            fps = res.frames / res.seconds if res.seconds else 0
            print(f"done: {res.input} -> {res.output} ({res.frames} frames, {res.seconds:.1f} s, {fps:.1f} frames/s)",
                  file=sys.stderr, flush=True)
        elif res.status == "skipped":
            print(f"skipped: {res.input} -> {res.output} ({res.error})", file=sys.stderr, flush=True)
        elif res.status == "planned":
            print(f"would enhance: {res.input} -> {res.output}", file=sys.stderr, flush=True)
    for w in res.warnings:
        print(f"warning: {res.input}: {w}", file=sys.stderr, flush=True)


def spool_stdin() -> str:
    """Copy a video piped on stdin to a temporary file (probing and the audio mapping both need
    to read it, and a pipe can be read once). Returns its path; the caller removes it."""
    import shutil
    import tempfile

    fd, path = tempfile.mkstemp(prefix="enhancer-stdin-")
    with os.fdopen(fd, "wb") as f:
        shutil.copyfileobj(sys.stdin.buffer, f, length=1 << 20)
    if os.path.getsize(path) == 0:
        os.unlink(path)
        raise InputError("nothing arrived on stdin", path="-")
    return path


def reject_missing(found: list[tuple[str, Path | None]]) -> None:
    """Raise for nothing to do at all (an empty folder, a glob with no matches)."""
    if not found:
        raise InputError("no video files found", hint="check the path, or add --recursive for sub-folders")
