"""Errors that people read: one line naming the file, what went wrong and what to do."""
from __future__ import annotations

import unicodedata

# bidirectional overrides and isolates can make a printed name read differently from what it is
_BIDI = {"\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"}


def _unsafe(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") or ch in _BIDI


def escape(text: str) -> str:
    """``text`` with control characters (newlines, ANSI escapes, undecodable bytes, bidi
    overrides) written as escapes, so it prints on one line and cannot drive a terminal."""
    if not any(_unsafe(ch) for ch in text):
        return text
    out = []
    for ch in text:
        if not _unsafe(ch):
            out.append(ch)
        elif ch in "\n\r\t":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif 0xDC80 <= ord(ch) <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        elif ord(ch) <= 0xFF:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\u{ord(ch):04x}")
    return "".join(out)


def shown(path: str | object) -> str:
    """A file name as messages show it: as it is when it is plain, else quoted with escapes."""
    text = str(path)
    safe = escape(text)
    if safe == text:
        return text
    return "'" + safe.replace("'", "\\'") + "'"


# How a message names an option. The library names options by their request fields
# (option("tile"), option("overwrite", True)); the command line registers its flags once at start
# (spell_options), so the same message reads "--tile" on the command line and "tile" in Python,
# and no module below the command line spells a flag.
# (one table for the process, read from every thread: a reader thread's error is spelt as its caller's)
_FLAGS: dict[str, str] = {}


def spell_options(flags: dict[str, str]) -> None:
    """Name options as ``flags`` (field -> flag) from now on: the command line's call (an empty
    table: as Python keywords again)."""
    global _FLAGS
    _FLAGS = dict(flags)


def option(field: str, value: object = ...) -> str:
    """The option ``field`` as the user gave it: ``--pix-fmt`` / ``pix_fmt`` and, with ``value``,
    ``--deinterlace on`` / ``deinterlace='on'`` (a flag that is set alone: ``--overwrite`` /
    ``overwrite=True``)."""
    flag = _FLAGS.get(field)
    if flag is not None:
        return flag if value is ... or isinstance(value, bool) else f"{flag} {value}"
    return field if value is ... else f"{field}={value!r}"


class EnhancerError(Exception):
    """An error with a one-line message for people.

    ``path`` is the file concerned (if any), ``reason`` what went wrong and ``hint`` what to do.
    ``str(err)`` is the single line the CLI prints: the name is quoted and escaped where it holds
    control characters, so the line stays one line whatever the name.
    """

    def __init__(self, reason: str, path: str | None = None, hint: str | None = None):
        self.reason = reason.strip()
        self.path = path
        self.hint = hint
        super().__init__(self.line())

    def line(self) -> str:
        parts = []
        if self.path:
            parts.append(f"{shown(self.path)}: ")
        parts.append(escape(self.reason))
        if self.hint:
            parts.append(f" ({escape(self.hint)})")
        return "".join(parts)

    def __str__(self) -> str:
        return self.line()

    def __reduce__(self):
        # pickled (a Ray task's error) as its fields, not re-made from the line: a subclass's
        # __init__ would prefix or hint the line a second time
        return _rebuild, (type(self), self.args, dict(self.__dict__))


def _rebuild(cls, args: tuple, state: dict) -> EnhancerError:
    err = cls.__new__(cls)
    Exception.__init__(err, *args)
    err.__dict__.update(state)
    return err


class InputError(EnhancerError):
    """The input cannot be used: missing, not a video, truncated, no frames, unsupported."""


class OutputError(EnhancerError):
    """The output cannot be written: folder not writable, disk full, encoder refused options."""


class UsageError(EnhancerError):
    """The command cannot run as given (names that collide, a report path that is a folder ...):
    nothing has been done yet. The CLI exits with status 2."""


class ArgumentError(UsageError, ValueError):
    """A value given to a function is not one it takes (an unknown codec, preset, method or
    progress mode; a scale, frame rate or frame count out of range): nothing was done. Also a
    :class:`ValueError`, what Python code calling the library expects of a bad argument."""


class RequestError(ArgumentError):
    """One field of a request (:class:`~enhancer.pipeline.request.EnhanceRequest`) does not hold:
    ``field`` names it (the command line shows its flag), ``reason`` says why."""

    def __init__(self, field: str, reason: str, path: str | None = None, hint: str | None = None):
        self.field = field
        super().__init__(reason, path=path, hint=hint)

    def line(self) -> str:
        """The message, led by the option's name where it does not say it (nor a file's)."""
        name = option(self.field)
        if self.path is None and self.reason.startswith(f"{self.field} ") and name != self.field:
            # "tile must be ..." reads "--tile must be ..." on the command line, not "--tile: tile must be ..."
            return super().line().replace(self.field, name, 1)
        if self.path is None and name not in self.reason and not self.reason.startswith("--"):
            return f"{name}: {super().line()}"
        return super().line()


class ConfigError(UsageError, ValueError):
    """A model or training configuration does not hold together (a scale or radius the
    architecture cannot build, training sets that differ): nothing was done. Also a
    :class:`ValueError`, as a bad argument to a configuration is in Python."""


class ModelError(EnhancerError):
    """A model file cannot be used: unreadable, a card that does not check out, weights that do
    not match their card or are not finite. The CLI exits with status 2."""


class LockedError(EnhancerError):
    """Another run is writing into the output folder."""


class FFmpegError(EnhancerError):
    """ffmpeg failed; carries the argv and the last lines of its stderr."""

    def __init__(self, reason: str, argv: list[str] | None = None, stderr_tail: list[str] | None = None,
                 path: str | None = None, hint: str | None = None):
        self.argv = list(argv or [])
        self.stderr_tail = list(stderr_tail or [])
        super().__init__(reason, path=path, hint=hint)


class EnhanceFailed(EnhancerError):
    """One or more files of :func:`enhancer.enhance` failed (the others were done): the message
    is the first failure's line, ``result`` the whole :class:`enhancer.Result`."""

    def __init__(self, reason: str, result=None):
        super().__init__(reason)
        self.result = result


class RecordError(EnhancerError):
    """A batch record or state file that does not check out (:mod:`enhancer.batch.state`): it is set
    aside with a warning, never half-trusted."""


class InternalError(EnhancerError):
    """enhancer's own bookkeeping does not add up (a frame of the wrong size handed to a writer,
    a read-only state asked to record): a bug, not the input's fault nor the user's."""

    def __init__(self, reason: str, path: str | None = None, hint: str | None = None):
        super().__init__(f"internal error: {reason}", path=path,
                         hint=hint or "a bug in enhancer: please report it, with the command that ran")
