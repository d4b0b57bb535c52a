"""What a batch has finished, per output folder, and the lock that keeps two runs apart.

``.enhancer-state.json`` in the output folder records, for each output, the input's identity
(path, size, modification time), the model and the options that made it, and whether it is done
or failed (with the reason). A rerun skips what is done and unchanged, redoes what changed, and
retries failures only when asked. The file is rewritten atomically after every file, so an
interrupted run leaves it consistent.

``.enhancer.lock`` holds the pid and host of the run writing into the folder; a second run is
refused while that process lives, and a stale lock (its process gone) is taken over.
"""
from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from enhancer.errors import EnhancerError

STATE_NAME = ".enhancer-state.json"
LOCK_NAME = ".enhancer.lock"


def input_identity(path: str) -> dict:
    st = os.stat(path)
    return {"path": os.path.abspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


@dataclass
class Entry:
    status: str  # done | failed
    input: dict
    recipe: dict
    error: str | None = None
    frames: int = 0
    finished: float = 0.0


class BatchState:
    """The state file of one output folder."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / STATE_NAME
        self.entries: dict[str, Entry] = {}
        if self.path.is_file():
            try:
                raw = json.loads(self.path.read_text())
                self.entries = {k: Entry(**v) for k, v in raw.get("outputs", {}).items()}
            except (ValueError, TypeError):
                self.entries = {}  # unreadable: start afresh, outputs on disk still count as existing

    def key(self, output: str) -> str:
        try:
            return str(Path(output).resolve().relative_to(self.folder.resolve()))
        except ValueError:
            return str(Path(output).resolve())

    def lookup(self, output: str) -> Entry | None:
        return self.entries.get(self.key(output))

    def decide(self, input_path: str, output: str, recipe: dict, *, retry_failed: bool) -> tuple[str, str | None]:
        """('run' | 'skip' | 'failed-before', reason) for one job."""
        entry = self.lookup(output)
        if entry is None:
            return "run", None
        try:
            ident = input_identity(input_path)
        except OSError:
            return "run", None
        same = entry.input == ident and entry.recipe == recipe
        if entry.status == "done":
            if same and os.path.exists(output):
                return "skip", "done in an earlier run"
            return "run", "input or options changed since the earlier run" if not same else None
        if entry.status == "failed" and same and not retry_failed:
            return "failed-before", entry.error
        return "run", None

    def record(self, input_path: str, output: str, recipe: dict, status: str, error: str | None = None,
               frames: int = 0) -> None:
        """Remember one outcome and rewrite the file (a full disk must not break the batch)."""
        try:
            ident = input_identity(input_path)
        except OSError:
            ident = {"path": os.path.abspath(input_path)}
        self.entries[self.key(output)] = Entry(status=status, input=ident, recipe=recipe, error=error, frames=frames,
                                               finished=time.time())
        try:
            self.save()
        except OSError:
            pass

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"version": 1, "outputs": {k: v.__dict__ for k, v in self.entries.items()}},
                                  indent=1))
        os.replace(tmp, self.path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class FolderLock:
    """An exclusive lock on an output folder (a file created with O_EXCL)."""

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / LOCK_NAME
        self.held = False
        self.took_over: str | None = None

    def acquire(self) -> "FolderLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    other = json.loads(self.path.read_text() or "{}")
                except (OSError, ValueError):
                    other = {}
                pid, host = int(other.get("pid", 0) or 0), other.get("host")
                if host == socket.gethostname() and pid and not _alive(pid):
                    self.took_over = f"took over a stale lock from process {pid}, which is no longer running"
                    self.path.unlink(missing_ok=True)
                    continue
                where = f"process {pid} on {host}" if pid else "another run"
                raise EnhancerError(f"another enhancer run ({where}) is writing into this folder",
                                    path=str(self.path.parent),
                                    hint=f"wait for it to finish, or delete {self.path} if it is not running")
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held = True
            return self
        raise EnhancerError("cannot take the folder lock", path=str(self.path))

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
