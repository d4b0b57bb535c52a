"""Errors that people read: one line naming the file, what went wrong and what to do."""
from __future__ import annotations


class EnhancerError(Exception):
    """An error with a one-line message for people.

    ``path`` is the file concerned (if any), ``reason`` what went wrong and ``hint`` what to do.
    ``str(err)`` is the single line the CLI prints.
    """

    def __init__(self, reason: str, path: str | None = None, hint: str | None = None):
        self.reason = reason.strip()
        self.path = path
        self.hint = hint
        super().__init__(self.line())

    def line(self) -> str:
        parts = []
        if self.path:
            parts.append(f"{self.path}: ")
        parts.append(self.reason)
        if self.hint:
            parts.append(f" ({self.hint})")
        return "".join(parts)


class InputError(EnhancerError):
    """The input cannot be used: missing, not a video, truncated, no frames, unsupported."""


class OutputError(EnhancerError):
    """The output cannot be written: folder not writable, disk full, encoder refused options."""


class FFmpegError(EnhancerError):
    """ffmpeg failed; carries the argv and the last lines of its stderr."""

    def __init__(self, reason: str, argv: list[str] | None = None, stderr_tail: list[str] | None = None,
                 path: str | None = None, hint: str | None = None):
        self.argv = list(argv or [])
        self.stderr_tail = list(stderr_tail or [])
        super().__init__(reason, path=path, hint=hint)
