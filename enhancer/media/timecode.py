"""SMPTE timecode: read from a probe, shifted to an output's first frame, written back.

A timecode is ``HH:MM:SS:FF``; a ``;`` (or ``.``) before the frames marks drop-frame counting,
which 29.97 and 59.94 fps material uses: frame numbers 0 and 1 (0-3 at 59.94) are skipped at the
start of every minute except each tenth, so the timecode keeps to the wall clock.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

_TC = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2})([:;.,])(\d{2,3})$")


@dataclass(frozen=True)
class Timecode:
    frame: int  # frames since 00:00:00:00, counted at ``rate`` frames a second
    rate: int  # the nominal (whole) frame rate: 24, 25, 30, 50, 60 ...
    drop: bool = False

    @classmethod
    def parse(cls, text: str, fps: Fraction | float | None) -> "Timecode | None":
        """``text`` at the stream's frame rate ``fps``; None where it is not a timecode."""
        m = _TC.match(text.strip())
        if not m or not fps:
            return None
        rate = max(1, round(float(fps)))
        h, mi, s, sep, f = int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4), int(m.group(5))
        drop = sep in ";.," and rate % 30 == 0
        if mi > 59 or s > 59 or f >= rate:
            return None
        frames = (h * 3600 + mi * 60 + s) * rate + f
        if drop:
            d = rate // 15
            minutes = 60 * h + mi
            frames -= d * (minutes - minutes // 10)
        return cls(frames % cls._day(rate, drop), rate, drop)

    @staticmethod
    def _day(rate: int, drop: bool) -> int:
        if not drop:
            return 24 * 3600 * rate
        return 24 * 6 * (600 * rate - 9 * (rate // 15))

    def shifted(self, frames: int) -> "Timecode":
        """``frames`` later (wrapping at 24 hours, as timecode does)."""
        return Timecode((self.frame + frames) % self._day(self.rate, self.drop), self.rate, self.drop)

    def __str__(self) -> str:
        n, r = self.frame, self.rate
        if self.drop:
            d = r // 15
            per10, per1 = 600 * r - 9 * d, 60 * r - d
            tens, rest = divmod(n, per10)
            n += 9 * d * tens + (d * ((rest - d) // per1) if rest > d else 0)
        f = n % r
        s = n // r
        return f"{s // 3600 % 24:02d}:{s // 60 % 60:02d}:{s % 60:02d}{';' if self.drop else ':'}{f:02d}"


def at(text: str | None, fps: Fraction | None, offset_seconds: float) -> str | None:
    """The timecode of the frame ``offset_seconds`` after the one ``text`` names (the source's
    first), or None where ``text`` is not a timecode this stream's rate can carry."""
    if not text:
        return None
    tc = Timecode.parse(text, fps)
    if tc is None:
        return None
    return str(tc.shifted(round(offset_seconds * float(fps)))) if offset_seconds else str(tc)
