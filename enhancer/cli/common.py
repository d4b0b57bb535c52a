"""What every command shares: the log on stderr, the ffmpeg choice, Ctrl-C, one-line errors and
their exit codes (0 all done, 1 some file failed, 2 usage error, 130 interrupted), and the one
table of flags that the library's messages name options by."""
from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

import click

from enhancer.errors import EnhancerError, RequestError, option, spell_options

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

# a request's fields (and the other options library messages name) as this command line spells them
FLAGS = {
    "inputs": "INPUTS", "output": "-o", "recursive": "--recursive", "model": "--model", "task": "--task",
    "scale": "--scale", "device": "--device", "precision": "--precision", "tile": "--tile", "chunk": "--chunk",
    "temporal": "--temporal", "codec": "--codec", "crf": "--crf", "preset": "--preset", "pix_fmt": "--pix-fmt",
    "container": "--container", "audio": "--audio", "subtitles": "--no-subtitles", "square_pixels": "--square-pixels",
    "encoder_args": "--encoder-args", "size": "--size", "width": "--width", "height": "--height", "start": "--start",
    "duration": "--duration", "deinterlace": "--deinterlace", "fps": "--fps", "splice": "--splice",
    "preview": "--preview", "part_seconds": "--part-seconds", "overwrite": "--overwrite",
    "retry_failed": "--retry-failed", "strict": "--strict", "fail_fast": "--fail-fast", "keep_going": "--keep-going",
    "dry_run": "--dry-run", "executor": "--executor", "ray_address": "--ray-address", "ray_split": "--ray-split",
    "report": "--report", "ffmpeg": "--ffmpeg", "progress": "--progress", "verbose": "--verbose", "quiet": "--quiet",
    "json": "--json", "media": "--media", "handles": "--handles", "inspect": "--inspect", "metrics": "--metrics",
    "models": "--models", "config": "--config", "resume": "--resume", "set": "--set", "reference": "--reference",
    "reference_scale": "--reference-scale", "candidate_scale": "--candidate-scale", "html": "--html",
    "perceptual_net": "--perceptual-net", "full_size": "--full-size", "input": "--input", "seed": "--seed",
    "settle": "--settle", "interval": "--interval", "once": "--once", "head": "ray start --head",
    "nproc": "--nproc", "max_minutes": "--max-minutes", "help": "--help", "count": "--count", "frame": "--frame",
    "crop": "--crop", "labels": "--labels", "mode": "--mode",
}


def seconds(text: str | None, flag: str) -> float | None:
    """'90', '1:30', '00:01:30.5' -> seconds, or a usage error naming ``flag``."""
    from enhancer.pipeline.request import seconds as parse

    try:
        return parse(text, flag)
    except RequestError as e:
        raise click.BadParameter(e.reason, param_hint=flag) from None


class _LogLines(logging.Handler):
    """The library's log as the CLI's lines on stderr (``warning: ...``, ``error: ...``, INFO as
    it is), through :func:`enhancer.progress.write`, so that no line lands on a progress bar."""

    PREFIX = {logging.WARNING: "warning: ", logging.ERROR: "error: ", logging.CRITICAL: "error: "}

    def emit(self, record: logging.LogRecord) -> None:
        from enhancer.progress import write

        try:
            write(self.PREFIX.get(record.levelno, "") + self.format(record))
        except Exception:  # noqa: BLE001 - logging's own rule: a failed log line is reported, not raised
            self.handleError(record)


def log_to_stderr(verbose: bool) -> None:
    """The one logging set-up: enhancer's log on stderr, INFO and up with -v (every ffmpeg
    command), WARNING and up otherwise (--quiet too: warnings and errors still print)."""
    log = logging.getLogger("enhancer")
    if not any(isinstance(h, _LogLines) for h in log.handlers):
        log.addHandler(_LogLines())
    log.setLevel(logging.INFO if verbose else logging.WARNING)


def start(verbose: bool = False) -> None:
    """Every command's first step: messages name options as flags; the log goes to stderr;
    OpenMP's idle threads sleep rather than spin (before PyTorch is imported), unless the
    environment says otherwise: the model shares the cores with the decoder, the encoder and the
    alignment thread, and spinning threads take their time (720p x2 with the default model on 2
    cores: 1.04 frames/s, against 1.00 with ``OMP_WAIT_POLICY=ACTIVE`` and 1.02 with OpenMP's own
    default; means of 5 to 10 runs, docs/speed.md)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    spell_options(FLAGS)
    log_to_stderr(verbose)


def configure_ffmpeg(ffmpeg: str | None, verbose: bool):
    """Choose the ffmpeg (an unusable or too old one is a usage error, exit 2, before any work);
    with -v, say which one and its version, and log at INFO."""
    from enhancer.media import ffmpeg as ff

    start(verbose)
    try:
        tools = ff.configure(ffmpeg=ffmpeg, verbose=verbose)
    except EnhancerError as e:
        fail(str(e), 2)
    if verbose:
        print(tools.line(), file=sys.stderr)
    return tools


class Interrupts:
    """First Ctrl-C / SIGTERM: stop now (temporary outputs are removed as the stack unwinds).
    A second one kills the process at once."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, signum, frame) -> None:
        self.count += 1
        if self.count > 1:
            os._exit(130)
        raise KeyboardInterrupt

    def install(self) -> Interrupts:
        signal.signal(signal.SIGINT, self)
        signal.signal(signal.SIGTERM, self)
        return self


def until_done(work, code: int = 1, usage: tuple[type, ...] = ()):
    """Run one command's work with Ctrl-C / SIGTERM stopping it cleanly (its temporaries go as the
    stack unwinds; exit 130), and its error as one line (exit ``code``; 2 for a UsageError or one
    of the ``usage`` types). An ffmpeg that died of the same Ctrl-C reports no error of its own."""
    interrupts = Interrupts().install()
    try:
        return work()
    except KeyboardInterrupt:
        pass
    except EnhancerError as e:
        if not interrupts.count:
            from enhancer.errors import UsageError

            print(f"error: {e}", file=sys.stderr)
            sys.exit(2 if isinstance(e, (UsageError, *usage)) else code)
    print("interrupted: partial outputs removed", file=sys.stderr)
    sys.exit(130)


def fail(message: str, code: int) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def refused(e: EnhancerError, code: int = 2) -> None:
    """A request refused before any work, as one line (exit ``code``; a field's error names its
    flag, :class:`~enhancer.errors.RequestError`)."""
    fail(str(e), code)


def check_writable(output: str) -> None:
    """Refuse, before any work, an output file whose folder cannot be made or written."""
    from enhancer.errors import shown

    out = Path(output)
    folder = out.absolute().parent
    while not folder.exists():  # the folders that would be made
        folder = folder.parent
    if not folder.is_dir():
        fail(f"{shown(output)}: cannot be written ({shown(folder)} is a file)", 2)
    if not os.access(folder, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        fail(f"{shown(output)}: cannot be written here (permission denied)", 2)
