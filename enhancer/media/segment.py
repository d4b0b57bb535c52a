"""A span of a source: where it starts, how long it lasts, and where its output's time 0 lies.

The one place that turns ``--start`` / ``--duration`` into ffmpeg's ``-ss`` / ``-t`` and into the
time origin that output timestamps are counted from. The reader, the muxer (and the join of
parts), the benchmark and compare all take a :class:`Segment`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from enhancer.errors import ArgumentError, UsageError


def _exact(seconds: float | None) -> Fraction:
    # times as people type them (0.33, 90.5): exact to the microsecond, never float noise
    return Fraction(seconds or 0).limit_denominator(1_000_000)


@dataclass(frozen=True)
class Segment:
    """``start`` seconds after the source's first timestamp, ``duration`` seconds long (None: the
    whole source, or up to its end)."""

    start: float | None = None
    duration: float | None = None

    def __post_init__(self) -> None:
        for name, value in (("start", self.start), ("duration", self.duration)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float, Fraction))
                                      or not math.isfinite(value)):
                raise ArgumentError(f"{name} must be a number of seconds, not {value!r}")
        if self.start is not None and self.start < 0:
            raise UsageError(f"a segment cannot start before the source ({self.start} s)")
        if self.duration is not None and self.duration <= 0:
            raise UsageError(f"a segment must last more than 0 s, not {self.duration}")

    @property
    def whole(self) -> bool:
        return not self.start and not self.duration

    def input_args(self) -> list[str]:
        """ffmpeg input options (before ``-i``) that read only this span."""
        args = ["-ss", f"{self.start:.6f}"] if self.start else []
        return args + (["-t", f"{self.duration:.6f}"] if self.duration else [])

    def origin(self, source_start: float | None) -> Fraction:
        """Time 0 of an output made from this span, on the source's clock: the source's start
        time plus the segment's start (as any ffmpeg remux of the span counts)."""
        return _exact(source_start) + _exact(self.start)

    def from_(self, seek: float) -> "Segment":
        """The rest of this span from ``seek`` seconds on (a resumed run reads from there)."""
        if seek <= (self.start or 0):
            return self
        end = (self.start or 0) + self.duration if self.duration else None
        return Segment(seek, end - seek if end is not None else None)
