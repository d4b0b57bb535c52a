"""Find ffmpeg/ffprobe, build nothing but argv lists, run them, and turn failures into errors.

The only module that starts subprocesses. Every path handed to ffmpeg goes through
:func:`file_arg`, so a file called ``-y`` or ``concat:x`` is read as a file, never as an option
or a protocol.
"""
from __future__ import annotations

import collections
import io
import logging
import os
import re
import shlex
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from enhancer.errors import FFmpegError, UsageError, option

log = logging.getLogger(__name__)

_TAIL_LINES = 30
# The oldest ffmpeg enhancer runs with: 5.1 brought -fps_mode (older builds stop with "Option not
# found"), and 5.1 (Debian 12's) is the oldest build the tests run against.
MINIMUM = (5, 1)
# libavcodec's major version -> the release it shipped in, for builds whose banner names a git
# revision (N-112233-g...) instead of a release; 59 was both 5.0 and 5.1 (5.1 from minor 37)
_AVCODEC_RELEASES = {57: (3, 4), 58: (4, 4), 59: (5, 0), 60: (6, 0), 61: (7, 0), 62: (8, 0), 63: (9, 0)}


@dataclass(frozen=True)
class Tools:
    """The ffmpeg (and optional ffprobe) this process uses, its version, where the choice came
    from, and whether to print commands."""

    ffmpeg: str
    ffprobe: str | None
    verbose: bool = False
    version: tuple[int, int] | None = None  # (major, minor); None where the build does not say
    version_text: str = "unknown version"  # as the build names itself: "7.0.2-static", "n9.0.2-17-g..."
    chosen_by: str = "PATH"  # --ffmpeg | ENHANCER_FFMPEG | PATH | bundled (imageio-ffmpeg)

    def describe(self) -> dict:
        """Which ffmpeg a run used, for -v and --report."""
        return {"ffmpeg": self.ffmpeg, "version": self.version_text, "chosen_by": self.chosen_by,
                "ffprobe": self.ffprobe}

    def line(self) -> str:
        probe = f"; ffprobe {self.ffprobe}" if self.ffprobe else "; no ffprobe (probing with ffmpeg)"
        return f"ffmpeg {self.version_text} ({self.ffmpeg}, chosen by {self.chosen_by}){probe}"


def parse_version(text: str) -> tuple[tuple[int, int] | None, str]:
    """((major, minor), name) of an ffmpeg from its ``-version`` output. Releases name themselves
    (``ffmpeg version 5.1.9-0+deb12u1``, ``n9.0.2-17-g2a571b6068``); a build from git
    (``N-112233-g...``) is placed by its libavcodec version."""
    first = text.splitlines()[0] if text else ""
    m = re.match(r"\S+ version (\S+)", first)
    name = m.group(1) if m else "unknown version"
    rel = re.match(r"n?(\d+)\.(\d+)", name)
    if rel:
        return (int(rel.group(1)), int(rel.group(2))), name
    lib = re.search(r"^libavcodec\s+(\d+)\.\s*(\d+)", text, re.M)
    if lib:
        major, minor = int(lib.group(1)), int(lib.group(2))
        release = _AVCODEC_RELEASES.get(major, (99, 0) if major > max(_AVCODEC_RELEASES) else (0, 0))
        if major == 59 and minor >= 37:
            release = (5, 1)
        return release, name
    return None, name


def _version_of(exe: str, what: str) -> tuple[tuple[int, int] | None, str]:
    try:
        proc = subprocess.run([exe, "-hide_banner", "-version"], stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise UsageError(f"{what} cannot be run: {getattr(e, 'strerror', None) or e}", path=exe,
                         hint=f"point {option('ffmpeg')} at a working ffmpeg") from None
    # -hide_banner does not hide -version's own lines
    return parse_version(proc.stdout.decode("utf-8", "replace"))


def _check_version(exe: str, what: str, chosen_by: str) -> tuple[tuple[int, int] | None, str]:
    version, name = _version_of(exe, what)
    if version is not None and version < MINIMUM:
        bundled = _bundled_ffmpeg()
        other = f"; the bundled one is {bundled}" if bundled and os.path.abspath(bundled) != os.path.abspath(exe) \
            else ""
        raise UsageError(f"{what} {name} (chosen by {chosen_by}) is older than {MINIMUM[0]}.{MINIMUM[1]}, the oldest "
                         "enhancer supports", path=exe,
                         hint=f"install ffmpeg {MINIMUM[0]}.{MINIMUM[1]} or newer, or pass {option('ffmpeg')} PATH{other}")
    return version, name


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


def _locate_ffmpeg(override: str | None) -> tuple[str, str]:
    """(the ffmpeg to use, what chose it)."""
    for candidate, source in ((override, f"{option('ffmpeg')}"), (os.environ.get("ENHANCER_FFMPEG"), "ENHANCER_FFMPEG")):
        if candidate == "bundled":  # the imageio-ffmpeg build, whatever is on PATH
            bundled = _bundled_ffmpeg()
            if not bundled:
                raise FFmpegError(f"{source} asks for the bundled ffmpeg, and imageio-ffmpeg is not installed",
                                  hint="pip install imageio-ffmpeg")
            return bundled, f"{source} (bundled, imageio-ffmpeg)"
        if candidate:
            found = shutil.which(candidate) or (candidate if os.access(candidate, os.X_OK) else None)
            if not found or os.path.isdir(found):
                raise FFmpegError(f"ffmpeg given by {source} is not an executable file", path=candidate,
                                  hint="point it at an ffmpeg binary, or unset it to use the bundled one")
            return found, source
    on_path = shutil.which("ffmpeg")
    if on_path:
        return on_path, "PATH"
    bundled = _bundled_ffmpeg()
    if not bundled:
        raise FFmpegError("no ffmpeg found",
                          hint=f"pip install imageio-ffmpeg, install ffmpeg, or pass {option('ffmpeg')} PATH")
    return bundled, "bundled (imageio-ffmpeg)"


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
    the binary shipped by imageio-ffmpeg (``bundled`` as the argument or variable asks for it). ffprobe is used when ``ENHANCER_FFPROBE`` names it or it
    sits beside the chosen ffmpeg. Raises :class:`UsageError` (one line naming the version found
    and the minimum) for an ffmpeg or ffprobe older than :data:`MINIMUM`, before any work."""
    global _tools
    with _lock:
        exe, chosen_by = _locate_ffmpeg(ffmpeg)
        probe = _locate_ffprobe(exe) if use_ffprobe else None
        probe_check: dict = {}
        if probe:  # ffprobe's version is asked beside ffmpeg's (each takes about 0.1 s to start)
            def check_probe() -> None:
                try:
                    _check_version(probe, "ffprobe", "ENHANCER_FFPROBE" if os.environ.get("ENHANCER_FFPROBE")
                                   else "its place beside ffmpeg")
                except BaseException as e:  # noqa: BLE001 - raised below, after ffmpeg's own check
                    probe_check["error"] = e

            beside = threading.Thread(target=check_probe, name="ffprobe-version", daemon=True)
            beside.start()
        version, name = _check_version(exe, "ffmpeg", chosen_by)  # ffmpeg's problem is the one to report
        if probe:
            beside.join()
            if "error" in probe_check:
                raise probe_check["error"]
        prev_verbose = _tools.verbose if _tools else False
        _tools = Tools(ffmpeg=exe, ffprobe=probe, verbose=prev_verbose if verbose is None else verbose,
                       version=version, version_text=name, chosen_by=chosen_by)
        return _tools


_filters: dict[str, frozenset[str]] = {}


def has_filter(name: str, exe: str | None = None) -> bool:
    """Whether the configured ffmpeg (or ``exe``) has a filter (``libvmaf`` is not in every build:
    Debian's 5.1 lacks it)."""
    exe = exe or tools().ffmpeg
    if exe not in _filters:
        proc = run([exe, "-hide_banner", "-nostdin", "-filters"], what="listing filters failed", timeout=60, check=False)
        names = set()
        for line in proc.stdout.decode("utf-8", "replace").splitlines():
            parts = line.split()
            # " TSC libvmaf  VV->V  Calculate the VMAF ...": flags, name, pads, description
            if len(parts) >= 3 and "->" in parts[2]:
                names.add(parts[1])
        _filters[exe] = frozenset(names)
    return name in _filters[exe]


_decoders: dict[str, frozenset[str]] = {}


def has_decoder(name: str, exe: str | None = None) -> bool:
    """Whether the configured ffmpeg (or ``exe``) has a decoder (``libvpx-vp9``, which alone
    decodes a VP9 stream's alpha plane, is not in every build)."""
    exe = exe or tools().ffmpeg
    if exe not in _decoders:
        proc = run([exe, "-hide_banner", "-nostdin", "-decoders"], what="listing decoders failed", timeout=60,
                   check=False)
        # " V....D libvpx-vp9  libvpx VP9 (codec vp9)": flags, name, description
        _decoders[exe] = frozenset(parts[1] for line in proc.stdout.decode("utf-8", "replace").splitlines()
                                   if len(parts := line.split()) >= 2 and len(parts[0]) == 6 and parts[0][0] in "VAS")
    return name in _decoders[exe]


def with_filter(name: str) -> str | None:
    """An ffmpeg that has the filter ``name``: the configured one, else the bundled one (for
    measurements only, such as VMAF; decoding and encoding stay with the configured ffmpeg)."""
    if has_filter(name):
        return tools().ffmpeg
    bundled = _bundled_ffmpeg()
    if bundled and has_filter(name, bundled):
        return bundled
    return None


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
    """Log a command, quoted, when verbose (at INFO: the CLI's -v shows it)."""
    if tools().verbose:
        log.info("$ %s", shlex.join(argv))


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


def crashed(returncode: int | None) -> str | None:
    """'crashed (SIGSEGV)' where a process was killed by a signal, else None (some builds crash on
    some inputs: imageio-ffmpeg 0.6.0's static 7.0.2 on every MPEG-TS file)."""
    if returncode is None or returncode >= 0:
        return None
    import signal

    if hasattr(signal, "SIGXFSZ") and -returncode == signal.SIGXFSZ:  # the file system's limit, not a bug of ffmpeg's
        return "file too large: the output grew past the size this process may write (ulimit -f) or its disk holds"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    return f"{Path(tools().ffmpeg).name} crashed ({name}); another ffmpeg build may read it ({option('ffmpeg')} PATH)"


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
        raise FFmpegError(f"{what}: {crashed(proc.returncode) or summarize(tail)}", argv=argv, stderr_tail=tail,
                          path=path)
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
        # the pipes are unbuffered (a frame on stdout is one read); a raw pipe's readline reads a
        # byte at a time, a system call per byte of the decoder's per-frame log: buffer stderr
        for raw in iter(io.BufferedReader(self.proc.stderr, 1 << 16).readline, b""):
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
        reason = reason or crashed(self.proc.poll()) or summarize(tail)
        return FFmpegError(f"{self.what}: {reason}", argv=self.argv, stderr_tail=tail, path=self.path)

    def wait(self, timeout: float | None = None) -> int:
        rc = self.proc.wait(timeout=timeout)
        self._drain.join(timeout=5)
        return rc

    def check(self, timeout: float | None = None) -> None:
        """Wait for exit and raise :class:`FFmpegError` if it failed."""
        if self.wait(timeout=timeout) != 0:
            raise self.error()

    def feed(self, frames: Iterable) -> None:
        """Write raw frames (numpy arrays) to the process's stdin, close it and wait; raise
        :class:`FFmpegError` if it failed (a process that stops reading ends the writing)."""
        import numpy as np

        try:
            for frame in frames:
                self.proc.stdin.write(np.ascontiguousarray(frame).tobytes())
            self.proc.stdin.close()
        except OSError:
            pass
        self.check()

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
