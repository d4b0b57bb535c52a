"""What a batch has finished, per output folder, and the lock that keeps two runs apart.

``.enhancer-state.json`` in the output folder records, for each output, the recipe that made it
(:class:`~enhancer.pipeline.recipe.Recipe`: input identity, weights hash, settings) and its key,
and whether it is done, incomplete (the input held fewer frames than its container announced) or
failed (with the reason). A rerun skips what is done with the same recipe, redoes what changed,
and retries failures only when asked. The file is rewritten atomically after every file, so an
interrupted run leaves it consistent. A state file that does not check out is set aside (renamed
``.enhancer-state.json.corrupt-TIME``, with a warning) and rebuilt; it is never half-trusted.

``.enhancer.lock`` is held with an OS file lock (``flock``) for as long as a run writes into the
folder. The OS releases it when the process ends, however it ends, so a crashed run never blocks
the folder and two runs can never both hold it. The file's content (pid, host) only names the
holder in messages.
"""
from __future__ import annotations

import enum
import json
import math
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from enhancer.errors import LockedError
from enhancer.pipeline.recipe import Recipe

STATE_NAME = ".enhancer-state.json"
LOCK_NAME = ".enhancer.lock"
STATE_VERSION = 2
STATUSES = ("done", "incomplete", "failed")


class Decision(enum.Enum):
    """What to do with one job, given what the state file remembers."""

    RUN = "run"  # nothing recorded
    REDO = "redo"  # recorded, but the input or the recipe changed: our own output is replaced
    SKIP = "skip"  # done with this very recipe
    SKIP_INCOMPLETE = "skip-incomplete"  # made with this recipe from an input that was incomplete
    FAILED_BEFORE = "failed-before"  # failed with this recipe; retried only with --retry-failed


@dataclass
class Entry:
    status: str  # done | incomplete | failed
    input: dict
    recipe: dict
    key: str | None = None  # Recipe.key(); None in files written before recipes had keys
    error: str | None = None  # the reason it failed, or the warning it was incomplete with
    frames: int = 0
    finished: float = 0.0

    @classmethod
    def parse(cls, raw) -> "Entry":
        """An entry from the state file, or ValueError saying what is wrong with it."""
        if not isinstance(raw, dict):
            raise ValueError("an entry is not an object")
        fields = set(cls.__dataclass_fields__)
        if set(raw) - fields or not {"status", "input", "recipe"} <= set(raw):
            raise ValueError("an entry has unexpected or missing fields")
        e = cls(**raw)
        if e.status not in STATUSES or not isinstance(e.input, dict) or not isinstance(e.recipe, dict):
            raise ValueError("an entry has a bad status, input or recipe")
        if not (e.key is None or isinstance(e.key, str)) or not (e.error is None or isinstance(e.error, str)):
            raise ValueError("an entry has a bad key or error")
        if isinstance(e.frames, bool) or not isinstance(e.frames, int) or e.frames < 0:
            raise ValueError("an entry has a bad frame count")
        if isinstance(e.finished, bool) or not isinstance(e.finished, (int, float)) or not math.isfinite(e.finished):
            raise ValueError("an entry has a bad time")
        return e


def _parse(text: str) -> dict[str, Entry]:
    try:
        raw = json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("outputs"), dict):
        raise ValueError("not a state file (no table of outputs)")
    return {str(k): Entry.parse(v) for k, v in raw["outputs"].items()}


class BatchState:
    """The state file of one output folder. ``read_only`` (a dry run) reads it and changes
    nothing: a file that does not check out is only reported."""

    def __init__(self, folder: str | Path, read_only: bool = False):
        self.read_only = read_only
        self.folder = Path(folder)
        self.path = self.folder / STATE_NAME
        self.entries: dict[str, Entry] = {}
        self.notes: list[str] = []  # warnings for people (a state file set aside)
        if not self.path.is_file():
            return
        try:
            self.entries = _parse(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError, TypeError, UnicodeDecodeError) as e:
            self._set_aside(str(e) or type(e).__name__)

    def _set_aside(self, why: str) -> None:
        if self.read_only:
            self.notes.append(f"the state file could not be read ({why}); a real run sets it aside and rebuilds it")
            return
        aside = self.path.with_name(f"{STATE_NAME}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
        try:
            os.replace(self.path, aside)
            where = f"set aside as {aside.name}"
        except OSError as e:
            where = f"could not be set aside ({e.strerror}); it will be overwritten"
        self.entries = {}
        self.notes.append(f"the state file could not be read ({why}); {where} and rebuilt: outputs it listed "
                          "count as existing files, not as finished work")

    def key(self, output: str) -> str:
        try:
            return str(Path(output).resolve().relative_to(self.folder.resolve()))
        except ValueError:
            return str(Path(output).resolve())

    def lookup(self, output: str) -> Entry | None:
        return self.entries.get(self.key(output))

    def outputs(self) -> set[str]:
        """Absolute paths of every output this folder's state records (they are never inputs)."""
        return {str((self.folder / k).resolve()) for k in self.entries}

    def decide(self, output: str, recipe: Recipe, *, retry_failed: bool) -> tuple[Decision, str | None]:
        """What to do with one job, and why."""
        entry = self.lookup(output)
        if entry is None:
            return Decision.RUN, None
        same = entry.key is not None and entry.key == recipe.key()
        exists = os.path.exists(output)
        if same and entry.status == "done" and exists:
            return Decision.SKIP, "done in an earlier run"
        if same and entry.status == "incomplete" and exists and not retry_failed:
            return Decision.SKIP_INCOMPLETE, entry.error
        if same and entry.status == "failed" and not retry_failed:
            return Decision.FAILED_BEFORE, entry.error
        if not same:
            return Decision.REDO, "input or options changed since the earlier run"
        return Decision.REDO, None

    def record(self, output: str, recipe: Recipe, status: str, error: str | None = None, frames: int = 0) -> None:
        """Remember one outcome and rewrite the file (a full disk must not break the batch)."""
        if self.read_only:
            raise RuntimeError("a read-only state records nothing")
        self.entries[self.key(output)] = Entry(status=status, input=recipe.input, recipe=recipe.to_dict(),
                                               key=recipe.key(), error=error, frames=frames, finished=time.time())
        try:
            self.save()
        except OSError:
            pass

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps({"version": STATE_VERSION,
                                       "outputs": {k: v.__dict__ for k, v in self.entries.items()}}, indent=1))
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)


def recorded_outputs(folder: str | Path) -> set[str]:
    """The outputs a folder's state file records, read without judging or changing the file
    (discovery uses it to never take this tool's own outputs for inputs)."""
    path = Path(folder) / STATE_NAME
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        names = raw.get("outputs", {}) if isinstance(raw, dict) else {}
    except (OSError, ValueError, RecursionError, UnicodeDecodeError):
        return set()
    if not isinstance(names, dict):
        return set()
    return {os.path.normpath(os.path.join(os.path.abspath(folder), str(k))) for k in names}


# ---- the folder lock -------------------------------------------------------------------------
try:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
except ImportError:  # Windows
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False


def _owner(fd: int) -> dict | None:
    """The pid and host a lock file names, when it names them sensibly (else None)."""
    try:
        data = os.pread(fd, 4096, 0) if hasattr(os, "pread") else b""
        raw = json.loads(data.decode("utf-8")) if data else None
    except (OSError, ValueError, RecursionError, UnicodeDecodeError):
        return None
    if not isinstance(raw, dict):
        return None
    pid, host = raw.get("pid"), raw.get("host")
    if isinstance(pid, bool) or not isinstance(pid, int) or not 0 < pid < 2 ** 31:
        return None
    return {"pid": pid, "host": host if isinstance(host, str) else None}


class FolderLock:
    """An exclusive lock on an output folder, held with ``flock`` on ``.enhancer.lock``."""

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / LOCK_NAME
        self.fd: int | None = None
        self.took_over: str | None = None

    @property
    def held(self) -> bool:
        return self.fd is not None

    def acquire(self) -> "FolderLock":
        """Take the lock or raise :class:`LockedError`; OSError when the folder cannot hold one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(20):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if not _try_lock(fd):
                other = _owner(fd)
                os.close(fd)
                where = f"process {other['pid']} on {other['host'] or 'an unknown host'}" if other else "another run"
                raise LockedError(f"another enhancer run ({where}) is writing into this folder",
                                  path=str(self.path.parent), hint="wait for it to finish")
            try:  # the lock is on the file we opened: make sure it is still the one at this path
                st, mine = os.stat(self.path), os.fstat(fd)
                current = (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)
            except FileNotFoundError:
                current = False
            if not current:  # its holder removed it while we waited: try the new one
                os.close(fd)
                continue
            previous = _owner(fd)
            if previous and previous["pid"] != os.getpid():
                self.took_over = (f"took over the lock left by process {previous['pid']}, which no longer holds it "
                                  "(the run ended without releasing it)")
            me = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}).encode()
            try:  # only for messages: a full disk must not stop the run (the flock is what counts)
                os.ftruncate(fd, 0)
                os.pwrite(fd, me, 0)
            except OSError:
                pass
            self.fd = fd
            return self
        raise LockedError("cannot take the folder lock: it keeps changing", path=str(self.path.parent))

    def release(self) -> None:
        if self.fd is None:
            return
        try:  # remove it while still holding it, so nobody takes a lock on a file about to vanish
            self.path.unlink()
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
