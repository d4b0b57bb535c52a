"""Find ffmpeg/ffprobe, build nothing but argv lists, run them, and turn failures into errors.

The only module that starts subprocesses. Every path handed to ffmpeg goes through
:func:`file_arg`, so a file called ``-y`` or ``concat:x`` is read as a file, never as an option
or a protocol.
"""
from __future__ import annotations

import collections
import os
import re
import shlex
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from enhancer.errors import FFmpegError

_TAIL_LINES = 30


@dataclass
class Tools:
    """The ffmpeg (and optional ffprobe) this process uses, and whether to print commands."""

    ffmpeg: str
    ffprobe: str | None
    verbose: bool = False


_tools: Tools | None = None
_lock = threading.Lock()


def _bundled_ffmpeg() -> str | None:
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:
        return None


def _locate_ffmpeg(override: str | None) -> str:
    for candidate, source in ((override, "--ffmpeg"), (os.environ.get("ENHANCER_FFMPEG"), "ENHANCER_FFMPEG")):
        if candidate:
            found = shutil.which(candidate) or (candidate if os.access(candidate, os.X_OK) else None)
            if not found or os.path.isdir(found):
                raise FFmpegError(f"ffmpeg given by {source} is not an executable file", path=candidate,
                                  hint="point it at an ffmpeg binary, or unset it to use the bundled one")
            return found
    found = shutil.which("ffmpeg") or _bundled_ffmpeg()
    if not found:
        raise FFmpegError("no ffmpeg found",
                          hint="pip install imageio-ffmpeg, install ffmpeg, or pass --ffmpeg PATH")
    return found


def _locate_ffprobe(ffmpeg: str) -> str | None:
    env = os.environ.get("ENHANCER_FFPROBE")
    if env:
        return shutil.which(env) or (env if os.access(env, os.X_OK) else None)
    sibling = Path(ffmpeg).with_name("ffprobe.exe" if ffmpeg.lower().endswith(".exe") else "ffprobe")
    if sibling.is_file() and os.access(sibling, os.X_OK):
        return str(sibling)
    return None


def configure(ffmpeg: str | None = None, verbose: bool | None = None, use_ffprobe: bool = True) -> Tools:
    """Choose the binaries once: ``ffmpeg`` argument, then ``ENHANCER_FFMPEG``, then ``PATH``, then
    the binary shipped by imageio-ffmpeg. ffprobe is used when ``ENHANCER_FFPROBE`` names it or it
    sits beside the chosen ffmpeg."""
    global _tools
    with _lock:
        exe = _locate_ffmpeg(ffmpeg)
        probe = _locate_ffprobe(exe) if use_ffprobe else None
        prev_verbose = _tools.verbose if _tools else False
        _tools = Tools(ffmpeg=exe, ffprobe=probe, verbose=prev_verbose if verbose is None else verbose)
        return _tools


def tools() -> Tools:
    """The configured tools, configuring defaults on first use."""
    if _tools is None:
        return configure()
    return _tools


def file_arg(path: str | os.PathLike) -> str:
    """A path as ffmpeg must see it: ``-`` stays stdin/stdout, everything else is a ``file:`` URL."""
    p = os.fspath(path)
    if p in ("-", "pipe:", "pipe:0", "pipe:1"):
        return "pipe:" if p == "-" else p
    return "file:" + os.path.abspath(p)


def show(argv: list[str]) -> None:
    """Print a command, quoted, when verbose."""
    if tools().verbose:
        from enhancer.progress import write  # clears a progress bar first

        write("$ " + shlex.join(argv))


_PREFIX = re.compile(r"^\[[^\]]+ @ 0x[0-9a-f]+\]\s*")
_GENERIC = ("conversion failed", "exiting normally", "error opening output file", "nothing was written",
            "error opening input file", "error applying encoder options", "error while opening encoder",
            "could not open encoder before eof", "error initializing output stream",
            "last message repeated", "terminating thread", "task finished with error", "error sending frames",
            "error while filtering", "error closing file")


def summarize(tail: Iterable[str]) -> str:
    """The most telling line of ffmpeg's stderr tail (without ``[codec @ 0x..]`` prefixes)."""
    lines = [_PREFIX.sub("", ln).strip() for ln in tail]
    lines = [ln for ln in lines if ln]
    for ln in reversed(lines):
        if not any(g in ln.lower() for g in _GENERIC):
            return ln
    return lines[-1] if lines else "ffmpeg failed without a message"


def run(argv: list[str], path: str | None = None, what: str = "ffmpeg failed",
        timeout: float | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command to completion, capturing output; raise :class:`FFmpegError` on failure
    (with ``check=False`` a non-zero exit is returned, not raised)."""
    show(argv)
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise FFmpegError(f"{what}: timed out after {timeout:.0f} s", argv=argv, path=path) from e
    except OSError as e:
        raise FFmpegError(f"cannot start {argv[0]}: {e.strerror}", argv=argv, path=path) from e
    if check and proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").splitlines()[-_TAIL_LINES:]
        raise FFmpegError(f"{what}: {summarize(tail)}", argv=argv, stderr_tail=tail, path=path)
    return proc


class Process:
    """A running ffmpeg with its stderr drained by a thread (last lines kept for errors).

    ``on_line`` sees every stderr line as it arrives (the reader uses it for per-frame timestamps).
    """

    def __init__(self, argv: list[str], *, stdin=None, stdout=None, path: str | None = None,
                 on_line: Callable[[str], None] | None = None, what: str = "ffmpeg failed"):
        show(argv)
        self.argv = argv
        self.path = path
        self.what = what
        self.tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        self._on_line = on_line
        try:
            self.proc = subprocess.Popen(argv, stdin=stdin if stdin is not None else subprocess.DEVNULL,
                                         stdout=stdout if stdout is not None else subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, bufsize=0)
        except OSError as e:
            raise FFmpegError(f"cannot start {argv[0]}: {e.strerror}", argv=argv, path=path) from e
        self._drain = threading.Thread(target=self._read_stderr, daemon=True)
        self._drain.start()

    def _read_stderr(self) -> None:
        for raw in iter(self.proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if self._on_line is not None:
                self._on_line(line)
            self.tail.append(line)

    @property
    def stdin(self):
        return self.proc.stdin

    @property
    def stdout(self):
        return self.proc.stdout

    def error(self, reason: str | None = None) -> FFmpegError:
        self._drain.join(timeout=5)
        tail = list(self.tail)
        return FFmpegError(f"{self.what}: {reason or summarize(tail)}", argv=self.argv, stderr_tail=tail,
                           path=self.path)

    def wait(self, timeout: float | None = None) -> int:
        rc = self.proc.wait(timeout=timeout)
        self._drain.join(timeout=5)
        return rc

    def check(self, timeout: float | None = None) -> None:
        """Wait for exit and raise :class:`FFmpegError` if it failed."""
        if self.wait(timeout=timeout) != 0:
            raise self.error()

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        self._drain.join(timeout=2)
