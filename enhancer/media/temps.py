"""Hidden temporary names beside an output, file names that fit, writing files into place
atomically, and sweeping up after processes that are gone.

Every file this tool writes for others to read (outputs, records, manifests, checkpoints, model
files) is written under a temporary name in its own folder and renamed into place in one step,
through :func:`atomic_write` (the bytes are at hand) or :func:`publish` (a temporary already
made, by ffmpeg or ``torch.save``): a reader sees the old file or the new one, never half of one.

Every temporary this tool leaves beside an output carries the id of the process that made it
(``.NAME.partial-PID-XXXXXX.EXT``, ``.NAME.PID.ffconcat``, ``.enhancer-state.json.PID.tmp``,
``.preview-PID-XXXXXX``), so a later run can tell a crashed run's leftovers (remove them) from a
live run's work (leave it).
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
import uuid
from pathlib import Path

# Generated names stay well below the usual 255-byte limit, so the hidden temporaries made
# from them (longer by up to ~30 bytes) fit too.
NAME_LIMIT = 200
_HARD_LIMIT = 255

_TEMPORARY = [
    re.compile(r"^\..*\.partial-(\d+)-[0-9a-f]{6}"),  # outputs being encoded (files or frame folders)
    re.compile(r"^\..*\.(\d+)\.ffconcat$"),  # part lists being joined
    re.compile(r"^\..*\.old-(\d+)-[0-9a-f]{6}$"),  # a replaced frame folder being removed
    re.compile(r"^\.enhancer-state\.json\.(\d+)\.tmp$"),  # (earlier versions' state file)
    re.compile(r"^[0-9a-f]{32}\.json\.(\d+)\.tmp$"),  # an output's record being written
    re.compile(r"^\.preview-(\d+)-"),  # (earlier versions' preview folders)
    re.compile(r"^\..*\.preview-(\d+)-"),
]
STDIN_PREFIX = "enhancer-stdin-"
_STDIN = re.compile(r"^enhancer-stdin-(\d+)-")


def _cut_utf8(text: str, limit: int) -> str:
    """The longest prefix of ``text`` whose UTF-8 encoding fits in ``limit`` bytes."""
    data = text.encode("utf-8", "surrogateescape")[:limit]
    return data.decode("utf-8", "ignore")


def fit_name(name: str, limit: int = NAME_LIMIT, keep_suffix: str | None = None) -> str:
    """``name`` itself when it fits in ``limit`` bytes; otherwise its stem cut short and followed
    by ``~`` and a hash of the whole name, so the result is the same on every run and two long
    names that differ only at the end stay apart. ``keep_suffix`` (default: the extension) is
    kept whole."""
    if len(name.encode("utf-8", "surrogateescape")) <= limit:
        return name
    suffix = keep_suffix if keep_suffix is not None else Path(name).suffix
    if len(suffix.encode("utf-8", "surrogateescape")) > 32:
        suffix = ""
    stem = name[: len(name) - len(suffix)] if suffix else name
    tag = "~" + hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:10]
    room = limit - len(tag.encode()) - len(suffix.encode("utf-8", "surrogateescape"))
    return _cut_utf8(stem, room) + tag + suffix


def temp_path_for(final: Path, pid: int | None = None, tag: str | None = None) -> Path:
    """A hidden name in the same folder, so the final rename is atomic and never half-visible
    (``pid`` and ``tag`` given: the name that process gave it)."""
    tail = f".partial-{os.getpid() if pid is None else pid}-{tag or uuid.uuid4().hex[:6]}{final.suffix}"
    stem = fit_name(final.stem, _HARD_LIMIT - 1 - len(tail.encode()), keep_suffix="")
    return final.with_name(f".{stem}{tail}")


def hidden_sibling(final: Path, tail: str) -> Path:
    """``.NAME<tail>`` beside ``final``, shortened to fit where the name is long."""
    name = fit_name(final.name, _HARD_LIMIT - 1 - len(tail.encode()), keep_suffix="")
    return final.with_name(f".{name}{tail}")


def atomic_write(path: str | Path, data: bytes | str, *, hidden: bool = True) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` under a temporary name in the same folder, then
    rename it into place (:func:`publish`), so ``path`` holds the old file or the new one, never
    half of one. The temporary is ``.NAME.PID.tmp`` (``NAME.PID.tmp`` where ``hidden`` is
    False), this process's own; where writing or renaming fails it is removed and the
    :class:`OSError` raised. The folder must exist; nothing is synced to disk."""
    path = Path(path)
    tmp = path.with_name(f"{'.' if hidden else ''}{path.name}.{os.getpid()}.tmp")
    try:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
        publish(tmp, path)
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise


def publish(tmp: str | Path, final: str | Path, *, aside: str | Path | None = None) -> None:
    """Give the finished temporary ``tmp`` (a file or folder beside ``final``) the name ``final``
    in one step (``os.replace``: atomic within a folder, replacing a file already there). A folder
    cannot replace a folder that way: with ``aside`` given and ``final`` there, ``final`` is first
    renamed to ``aside`` (a hidden name beside it) and that folder removed once ``tmp`` took its
    place. On failure the :class:`OSError` is raised and ``tmp`` left where it is (its maker
    cleans up)."""
    if aside is not None and os.path.exists(final):
        os.replace(final, aside)
        os.replace(tmp, final)
        shutil.rmtree(aside, ignore_errors=True)
        return
    os.replace(tmp, final)


def alive(pid: int) -> bool:
    """Whether a process with this id exists (a permission error means it does)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError, ValueError):
        return False
    except PermissionError:
        return True
    return True


def _owner(name: str) -> int | None:
    for pattern in _TEMPORARY:
        m = pattern.match(name)
        if m:
            return int(m.group(1))
    return None


def _remove(path: Path) -> bool:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        return True
    except OSError:
        return False


def _last_change(entry: os.DirEntry) -> float:
    """When a temporary was last written: a folder (frames, a preview's work) by the newest of
    itself and what it holds, since writing a file inside does not change the folder's time."""
    newest = entry.stat(follow_symlinks=False).st_mtime
    if entry.is_dir(follow_symlinks=False):
        with os.scandir(entry.path) as inside:
            for child in inside:
                try:
                    newest = max(newest, child.stat(follow_symlinks=False).st_mtime)
                except OSError:
                    pass
    return newest


def sweep(folder: str | Path, min_age: float = 0.0) -> list[Path]:
    """Remove the temporaries in ``folder`` (not below it) whose process is gone and that were
    last changed at least ``min_age`` seconds ago (a folder shared by machines may hold another
    machine's live work, which this one cannot see as a process but sees being written). Returns
    what was removed."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    me = os.getpid()
    for entry in entries:
        pid = _owner(entry.name)
        if pid is None or pid == me or alive(pid):
            continue
        if min_age:
            try:
                if time.time() - _last_change(entry) < min_age:
                    continue
            except OSError:
                continue
        if _remove(Path(entry.path)):
            removed.append(Path(entry.path))
    return removed


_OF_OUTPUT = re.compile(r"\.partial-(\d+)-([0-9a-f]{6})|\.(\d+)\.ffconcat$|\.old-(\d+)-([0-9a-f]{6})$|"
                        r"\.preview-(\d+)-")


def _of_output(final: Path, name: str) -> bool:
    """Whether ``name`` is one of the temporaries this tool makes for the output ``final``."""
    for m in _OF_OUTPUT.finditer(name):
        if m.group(1):
            if name == temp_path_for(final, int(m.group(1)), m.group(2)).name:
                return True
        elif m.group(3):
            if name == hidden_sibling(final, f".{m.group(3)}.ffconcat").name:
                return True
        elif m.group(4):
            if name == hidden_sibling(final, f".old-{m.group(4)}-{m.group(5)}").name:
                return True
        elif name.startswith(hidden_sibling(final, f".preview-{m.group(6)}-").name):
            return True
    return False


def sweep_output(final: str | Path) -> list[Path]:
    """Remove the temporaries of one output, whichever process (on whichever machine) made them.
    Only for a caller that holds the output's lock: nobody else can be writing them."""
    final = Path(final)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(final.parent))
    except OSError:
        return removed
    for entry in entries:
        if entry.name.startswith(".") and _of_output(final, entry.name) and _remove(Path(entry.path)):
            removed.append(Path(entry.path))
    return removed


def spool_path() -> tuple[int, str]:
    """An open temporary file for a stream read from stdin (fd, path), named after this process."""
    return tempfile.mkstemp(prefix=f"{STDIN_PREFIX}{os.getpid()}-")


def sweep_spools() -> list[Path]:
    """Remove stdin spool files left in the temporary folder by processes that are gone."""
    removed: list[Path] = []
    folder = Path(tempfile.gettempdir())
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _STDIN.match(entry.name)
        if m and int(m.group(1)) != os.getpid() and not alive(int(m.group(1))) and _remove(Path(entry.path)):
            removed.append(Path(entry.path))
    return removed
