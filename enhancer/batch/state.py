"""What a batch has finished, per output, and the per-output locks that keep writers apart.

Each output has its own record, ``.enhancer-records/<digest>.json`` in the batch's output folder:
the recipe that made it (:class:`~enhancer.pipeline.recipe.Recipe`: input identity, weights hash,
settings) and its key, and whether it is done, incomplete (the input held fewer frames than its
container announced) or failed (with the reason). A rerun skips what is done with the same
recipe, redoes what changed, and retries failures only when asked. A record of an output made
holds its fingerprint (size and hashes of its ends): an output cut short since is made again, and a
file that is not the one written (nor any file under a failure's name) is replaced only with
``--overwrite``. A made output's record is written before the file takes its name, so a crash
between the two never leaves an output no record knows. A record is written whole
under a temporary name and renamed into place, and no writer ever rewrites another output's
record, so any number of runs (on one machine or on the nodes of a cluster sharing the folder)
can record side by side. A record that does not check out is set aside (renamed
``...corrupt-TIME``, with a warning); it is never half-trusted. ``.enhancer-state.json``, the
single table earlier versions kept, is still read (a record overrides it) and never written.

The output's lock, ``.NAME.lock`` beside it, is held with an OS file lock (``flock``)
while a run makes that output, its parts and its temporaries. The OS releases it when the process
ends, however it ends, so a crashed run never blocks the output and two runs can never both
hold it (on a shared folder this needs a filesystem with working locks, as NFS has). The file's
content (pid, host) only names the holder in messages.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from enhancer.errors import InternalError, LockedError, RecordError, option
from enhancer.media.temps import atomic_write, publish
from enhancer.pipeline.recipe import Recipe
from enhancer.batch.status import Decision, RecordStatus  # noqa: F401  (Decision: the state API)

STATE_NAME = ".enhancer-state.json"  # earlier versions' single table: read, never written
RECORDS = ".enhancer-records"
STATE_VERSION = 2
STATUSES = tuple(RecordStatus)


@dataclass
class Entry:
    status: RecordStatus
    input: dict
    recipe: dict
    key: str | None = None  # Recipe.key(); None in files written before recipes had keys
    error: str | None = None  # the reason it failed, or the warning it was incomplete with
    frames: int = 0
    finished: float = 0.0
    # the output file as it was written (see fingerprint): a rerun tells our file, intact or cut
    # short since, from another file put under its name; None in older records and for folders
    made: dict | None = None

    @classmethod
    def parse(cls, raw) -> "Entry":
        """An entry from the state file, or :class:`RecordError` saying what is wrong with it."""
        if not isinstance(raw, dict):
            raise RecordError("an entry is not an object")
        fields = set(cls.__dataclass_fields__)
        if set(raw) - fields or not {"status", "input", "recipe"} <= set(raw):
            raise RecordError("an entry has unexpected or missing fields")
        e = cls(**raw)
        if not isinstance(e.status, str) or e.status not in STATUSES or not isinstance(e.input, dict) \
                or not isinstance(e.recipe, dict):
            raise RecordError("an entry has a bad status, input or recipe")
        e.status = RecordStatus(e.status)
        if not (e.key is None or isinstance(e.key, str)) or not (e.error is None or isinstance(e.error, str)):
            raise RecordError("an entry has a bad key or error")
        if isinstance(e.frames, bool) or not isinstance(e.frames, int) or e.frames < 0:
            raise RecordError("an entry has a bad frame count")
        if isinstance(e.finished, bool) or not isinstance(e.finished, (int, float)) or not math.isfinite(e.finished):
            raise RecordError("an entry has a bad time")
        if e.made is not None and not (isinstance(e.made, dict) and set(e.made) == {"size", "head", "digest"}
                                       and isinstance(e.made["size"], int) and not isinstance(e.made["size"], bool)
                                       and isinstance(e.made["head"], str) and isinstance(e.made["digest"], str)):
            raise RecordError("an entry has a bad output fingerprint")
        return e


_HEAD = 4096  # bytes a file cut short keeps of what was written (every container's header lies in them)
_SAMPLE = 64 << 10  # bytes read at each end for the fingerprint: cheap on any file size


def fingerprint(path: str | Path) -> dict | None:
    """What a rerun compares to tell whether an output is still the file this tool wrote: its size,
    a hash of its first bytes, and a hash of its first and last 64 KiB. None for what is not a
    regular file (an image-sequence folder)."""
    try:
        if not os.path.isfile(path):
            return None
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            first = f.read(_SAMPLE)
            f.seek(max(0, size - _SAMPLE))
            last = f.read(_SAMPLE)
    except OSError:
        return None
    return {"size": size, "head": hashlib.sha256(first[:_HEAD]).hexdigest()[:32],
            "digest": hashlib.sha256(first + last).hexdigest()[:32]}


def still_ours(made: dict, path: str | Path) -> tuple[str, int]:
    """Whether the file at ``path`` is still the one fingerprinted as ``made``: ``intact``;
    ``damaged`` (cut short or emptied since: what is left begins as it did); or ``changed``
    (another file under its name). Also its size now."""
    now = fingerprint(path)
    if now is None:
        return ("intact", 0) if os.path.isdir(path) else ("changed", 0)
    if now["size"] == made["size"]:
        return ("intact" if now["digest"] == made["digest"] else "changed"), now["size"]
    if now["size"] < made["size"] and (now["size"] < _HEAD or now["head"] == made["head"]):
        return "damaged", now["size"]
    return "changed", now["size"]


def _parse(text: str) -> dict[str, Entry]:
    try:
        raw = json.loads(text)
    except RecursionError:
        raise RecordError("nested too deeply") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("outputs"), dict):
        raise RecordError("not a state file (no table of outputs)")
    return {str(k): Entry.parse(v) for k, v in raw["outputs"].items()}


def record_stem(key: str) -> str:
    """The file name (without extension) of one output's record."""
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def _parse_record(text: str) -> tuple[str, Entry]:
    try:
        raw = json.loads(text)
    except RecursionError:
        raise RecordError("nested too deeply") from None
    if not isinstance(raw, dict) or set(raw) != {"version", "output", "entry"} or not isinstance(raw["output"], str):
        raise RecordError("not an output record")
    return raw["output"], Entry.parse(raw["entry"])


class BatchState:
    """The records of one output folder. ``read_only`` (a dry run) reads them and changes
    nothing: a record that does not check out is only reported."""

    def __init__(self, folder: str | Path, read_only: bool = False, scan: bool = True):
        """``scan`` False reads no record until :meth:`refresh` asks for one (a cluster worker
        making one file of a large batch)."""
        self.read_only = read_only
        self.folder = Path(folder)
        self.path = self.folder / STATE_NAME
        self.records = self.folder / RECORDS
        self.entries: dict[str, Entry] = {}
        self.notes: list[str] = []  # warnings for people (a record set aside)
        if self.path.is_file():
            try:
                self.entries = _parse(self.path.read_text(encoding="utf-8"))
            except (OSError, RecordError, ValueError, TypeError, UnicodeDecodeError) as e:  # ValueError: not JSON
                self._set_aside(self.path, str(e) or type(e).__name__)
        try:
            names = sorted(p for p in self.records.iterdir() if p.suffix == ".json") if scan else []
        except OSError:
            names = []
        for path in names:
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            key, entry = _parse_record(path.read_text(encoding="utf-8"))
            if path.stem != record_stem(key):
                raise RecordError("a record under another output's name")
        except FileNotFoundError:  # removed by another run meanwhile
            return
        except (OSError, RecordError, ValueError, TypeError, UnicodeDecodeError) as e:  # ValueError: not JSON
            self._set_aside(path, str(e) or type(e).__name__)
            return
        self.entries[key] = entry

    def refresh(self, output: str) -> None:
        """Read one output's record again (another run may have written it since)."""
        path = self.records / f"{record_stem(self.key(output))}.json"
        if path.is_file():
            self._load(path)

    def _set_aside(self, path: Path, why: str) -> None:
        what = "the state file" if path == self.path else f"the record {path.name}"
        if self.read_only:
            self.notes.append(f"{what} could not be read ({why}); a real run sets it aside")
            return
        aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
        try:
            publish(path, aside)
            where = f"set aside as {aside.name}"
        except OSError as e:
            where = f"could not be set aside ({e.strerror})"
        if path == self.path:
            self.entries = {}
        self.notes.append(f"{what} could not be read ({why}); {where}: the outputs it listed count as existing "
                          "files, not as finished work")

    def key(self, output: str) -> str:
        return self.key_in(self.folder, output)

    @staticmethod
    def key_in(folder: str | Path, output: str) -> str:
        """How an output is named in its folder's records: relative to the folder where it lies inside."""
        try:
            return str(Path(output).resolve().relative_to(Path(folder).resolve()))
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
        # only a record of an output made says whose file is there: a failure's record reserves
        # nothing, and a file that is no longer the one written is someone else's
        ours = exists and entry.status != RecordStatus.FAILED
        if ours and entry.made is not None:
            held, size = still_ours(entry.made, output)
            if held == "changed":
                return Decision.CHANGED, ("output exists and is not the file an earlier run made there (changed or "
                                          f"replaced since); use {option('overwrite', True)} to replace it")
            if held == "damaged":
                return Decision.REDO, (f"the output was cut short since an earlier run made it ({size} of "
                                       f"{entry.made['size']} bytes left): made again")
        made_from = entry.input.get("path") if isinstance(entry.input, dict) else None
        if ours and made_from and made_from != recipe.input.get("path"):
            return Decision.OTHER_INPUT, (f"output exists, made from another input ({made_from}); "
                                          f"use {option('overwrite', True)} to replace it")
        if same and entry.status == RecordStatus.DONE and exists:
            return Decision.SKIP, "done in an earlier run"
        if same and entry.status == RecordStatus.INCOMPLETE and exists and not retry_failed:
            return Decision.SKIP_INCOMPLETE, entry.error
        if same and entry.status == RecordStatus.FAILED and not retry_failed:
            return Decision.FAILED_BEFORE, entry.error
        if exists and not ours:  # a file this tool never wrote: the caller replaces it only when told to
            return Decision.RUN, None
        if not same:
            return Decision.REDO, "input or options changed since the earlier run"
        return Decision.REDO, None

    def record(self, output: str, recipe: Recipe, status: RecordStatus, error: str | None = None,
               frames: int = 0, made: str | Path | None = None) -> None:
        """Remember one outcome in the output's own record (a full disk must not break the batch).
        An output made is fingerprinted as ``made`` (default: the output itself) holds it: the file
        about to be renamed into place, where the record is written first."""
        if self.read_only:
            raise InternalError("a read-only state (a dry run) was asked to record an outcome")
        key = self.key(output)
        status = RecordStatus(status)
        entry = Entry(status=status, input=recipe.input, recipe=recipe.to_dict(), key=recipe.key(),
                      error=error, frames=frames, finished=time.time(),
                      made=fingerprint(made or output) if status != RecordStatus.FAILED else None)
        self.entries[key] = entry
        path = self.records / f"{record_stem(key)}.json"
        try:
            self.records.mkdir(parents=True, exist_ok=True)
            # written as NAME.PID.tmp beside it (what sweep() knows as an output's record being written)
            atomic_write(path, json.dumps({"version": STATE_VERSION, "output": key, "entry": entry.__dict__},
                                          indent=1), hidden=False)
        except OSError as e:
            self.notes.append(f"this outcome could not be recorded in {self.records} ({e.strerror or e}): a rerun "
                              "will not know it")


def recorded_outputs(folder: str | Path) -> set[str]:
    """The outputs a folder's records (and an earlier version's state file) name, read without
    judging or changing them (discovery uses it to never take this tool's own outputs for inputs)."""
    names: set[str] = set()
    try:
        raw = json.loads((Path(folder) / STATE_NAME).read_text(encoding="utf-8"))
        table = raw.get("outputs", {}) if isinstance(raw, dict) else {}
        names |= {str(k) for k, v in table.items() if not (isinstance(v, dict) and v.get("status") == "failed")} \
            if isinstance(table, dict) else set()
    except (OSError, ValueError, RecursionError, UnicodeDecodeError):
        pass
    try:
        paths = [p for p in (Path(folder) / RECORDS).iterdir() if p.suffix == ".json"]
    except OSError:
        paths = []
    for path in paths:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError, UnicodeDecodeError):
            continue
        entry = raw.get("entry") if isinstance(raw, dict) else None
        if isinstance(entry, dict) and entry.get("status") == RecordStatus.FAILED:
            continue  # a failure made nothing: a file under that name is someone else's (an input, maybe)
        if isinstance(raw, dict) and isinstance(raw.get("output"), str):
            names.add(raw["output"])
    return {os.path.normpath(os.path.join(os.path.abspath(folder), k)) for k in names}


# ---- the per-output lock ---------------------------------------------------------------------
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


class OutputLock:
    """An exclusive lock on one output (its file, parts and temporaries), held with ``flock`` on
    ``.NAME.lock`` beside it: one lock per output file, whichever run (and whichever state
    folder) makes it."""

    def __init__(self, output: str | Path):
        from enhancer.media.temps import hidden_sibling

        self.output = str(output)
        self.path = hidden_sibling(Path(os.path.realpath(output)), ".lock")
        self.fd: int | None = None
        self.took_over: str | None = None

    @property
    def held(self) -> bool:
        return self.fd is not None

    def acquire(self) -> "OutputLock":
        """Take the lock or raise :class:`LockedError`; OSError when the folder cannot hold one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(20):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if not _try_lock(fd):
                other = _owner(fd)
                os.close(fd)
                where = f"process {other['pid']} on {other['host'] or 'an unknown host'}" if other else "another run"
                raise LockedError(f"another enhancer run ({where}) is making this output", path=self.output,
                                  hint="wait for it to finish")
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
                self.took_over = (f"took over the lock left by process {previous['pid']} on "
                                  f"{previous['host'] or 'an unknown host'}, which no longer holds it (the run ended "
                                  "without releasing it)")
            me = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}).encode()
            try:  # only for messages: a full disk must not stop the run (the flock is what counts)
                os.ftruncate(fd, 0)
                os.pwrite(fd, me, 0)
            except OSError:
                pass
            self.fd = fd
            return self
        raise LockedError("cannot take the output's lock: it keeps changing", path=self.output)

    def release(self) -> None:
        if self.fd is None:
            return
        try:  # remove it while still holding it, so nobody takes a lock on a file about to vanish
            self.path.unlink()
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None
