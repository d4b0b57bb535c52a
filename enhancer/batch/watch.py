"""``enhancer watch``: enhance what lands in a folder, once it is completely written.

A file is taken when it has stood still for ``settle`` seconds (same size and modification time
over consecutive looks) and, where the system can tell (Linux's /proc), no process holds it open
for writing: an editor's export, a copy or a download still in progress is left alone until it
is done. Hidden files (``.name.part``) are never inputs, as in ``enhance``.

Everything else is the batch path's: the output folder's records decide what is done (a
restart skips it; an input that changes is redone), outputs are written under temporary names
and appear whole, and a file that fails is reported once and tried again only when it changes (a failure of the
output's disk or rights, not the file's own, is tried again a minute later).
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from enhancer.batch.runner import FileResult, discover, plan_jobs, run_batch
from enhancer.pipeline.engine import EnhanceOptions
from enhancer.restore.restorer import Restorer
from enhancer.media.encode import CONTAINERS, EncodeOptions
from enhancer.batch.status import FileStatus

log = logging.getLogger(__name__)
ENVIRONMENT_RETRY = 60.0  # seconds before a file that failed for want of space (or rights) is tried again


def _signature(path: str) -> tuple | None:
    """What changes while a file (or an image-sequence folder) is being written; None if gone."""
    try:
        st = os.stat(path)
        if not os.path.isdir(path):
            return (st.st_size, st.st_mtime_ns)
        sizes = [(e.stat().st_size, e.stat().st_mtime_ns) for e in os.scandir(path) if e.is_file()]
        return (len(sizes), sum(s for s, _ in sizes), max((m for _, m in sizes), default=st.st_mtime_ns))
    except OSError:
        return None


def writers(paths: list[str]) -> set[str]:
    """Of ``paths`` (files), those some process has open for writing, as far as this system
    shows: on Linux the open descriptors in /proc of the processes we may look at; elsewhere
    none (the stable-size rule alone decides)."""
    proc = Path("/proc")
    if not paths or not (proc / "self" / "fd").is_dir():
        return set()
    wanted = {}
    for p in paths:
        try:
            st = os.stat(p)
            wanted[(st.st_dev, st.st_ino)] = p
        except OSError:
            pass
    busy: set[str] = set()
    for pid in os.listdir(proc):
        if not pid.isdigit():
            continue
        fd_dir = proc / pid / "fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:  # another user's process, or gone
            continue
        for fd in fds:
            try:
                st = os.stat(fd_dir / fd)
                key = (st.st_dev, st.st_ino)
                if key not in wanted:
                    continue
                flags = int((proc / pid / "fdinfo" / fd).read_text().split("flags:")[1].split()[0], 8)
            except (OSError, IndexError, ValueError):
                continue
            if flags & (os.O_WRONLY | os.O_RDWR):
                busy.add(wanted[key])
    return busy


@dataclass
class Watcher:
    """Which inputs under ``folders`` are ready: seen unchanged for ``settle`` seconds and not
    open for writing. Remembers what it has handed out (by input and signature), so a file is
    handed out again only when it changes."""

    folders: list[str]
    output: str
    recursive: bool = True
    settle: float = 5.0
    clock: Callable[[], float] = time.monotonic
    _seen: dict = field(default_factory=dict)  # input -> (signature, since)
    _given: dict = field(default_factory=dict)  # input -> signature handed out

    def found(self) -> list[tuple[str, Path | None]]:
        return [(src, root) for src, root in discover(self.folders, recursive=self.recursive, exclude=[self.output])
                if src != "-"]

    def ready(self, found: list[tuple[str, Path | None]]) -> list[str]:
        now = self.clock()
        candidates = []
        present = set()
        for src, _ in found:
            present.add(src)
            sig = _signature(src)
            if sig is None:
                continue
            before = self._seen.get(src)
            if before is None or before[0] != sig:
                self._seen[src] = (sig, now)
                continue
            if now - before[1] >= self.settle and self._given.get(src) != sig:
                candidates.append(src)
        for gone in set(self._seen) - present:  # deleted or renamed: forget it
            self._seen.pop(gone, None)
            self._given.pop(gone, None)
        busy = writers([c for c in candidates if os.path.isfile(c)])
        ready = [c for c in candidates if c not in busy]
        for c in ready:
            self._given[c] = self._seen[c][0]
        return ready


def watch(folders: list[str], output: str, restorer: Restorer, encode: EncodeOptions, opts: EnhanceOptions, *,
          container: str | None = None, recursive: bool = False, settle: float = 5.0, interval: float = 2.0,
          once: bool = False, strict: bool = False, verbose: bool = False, retry_failed: bool = False,
          on_result: Callable[[FileResult], None] | None = None, idle: Callable[[], None] | None = None,
          status: dict | None = None) -> int:
    """Enhance files as they become ready, until interrupted (KeyboardInterrupt propagates, after
    the file in progress has been cleaned up). With ``once``, wait for what is there now to
    become ready, do it, and return. Returns the number of files that failed. ``status["busy"]``
    says whether a batch is running (for the message on Ctrl-C). ``output`` is a folder, created
    first: a name ending like a video file (``out.mp4``) is a :class:`UsageError`."""
    status = status if status is not None else {}
    from enhancer.errors import OutputError, UsageError

    out = Path(output)
    if not out.is_dir() and out.suffix.lower() in CONTAINERS:
        raise UsageError("names a video file, and watch writes into a folder", path=output,
                         hint="give a folder for -o (it is created)")
    if container:  # a codec the container cannot hold: refused before any work, not once per file
        from enhancer.media.encode import check_container

        check_container(encode.codec, out / f"outputs.{container}")
    try:  # a folder from the start, so that plan_jobs never takes it for a file's name
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create the output folder: {e.strerror or e}", path=output) from None
    watcher = Watcher(folders, output, recursive=recursive, settle=settle)
    again: dict[str, float] = {}  # inputs that failed for the environment's reasons -> when to try again
    failed = 0
    said = None
    while True:
        for src, when in list(again.items()):
            if watcher.clock() >= when:
                watcher._given.pop(src, None)
                del again[src]
        found = watcher.found()
        ready = set(watcher.ready(found))
        if ready:
            # named over everything found, so a file's output name does not depend on when it was ready
            try:
                jobs = [j for j in plan_jobs(found, output, encode.codec, container)
                        if j.input in ready]
            except UsageError as e:  # names that collide: say so once, and wait for a rename
                if str(e) != said:
                    log.error("%s", e)
                    said = str(e)
                for src in ready:
                    watcher._given.pop(src, None)
                if once:
                    return failed + len(ready)
                time.sleep(interval)
                continue
            said = None
            status["busy"] = True
            summary = run_batch(jobs, restorer, encode, opts, verbose=verbose, folder=Path(output), strict=strict,
                                retry_failed=retry_failed, on_result=on_result)
            status["busy"] = False
            failed += summary.count(FileStatus.FAILED)
            for res in summary.results:  # another run was making it: look again on the next pass
                if res.status == FileStatus.BUSY:
                    watcher._given.pop(res.input, None)
                elif res.environment and not once:  # a full disk, say: not the file's fault, so tried again a while later
                    again[res.input] = watcher.clock() + ENVIRONMENT_RETRY
        elif once and all(watcher._given.get(src) == _signature(src) for src, _ in found):
            return failed
        if idle is not None:
            idle()
        time.sleep(interval)
