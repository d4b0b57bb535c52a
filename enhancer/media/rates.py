"""Frame rates written as text: as ffmpeg and ffprobe print them, and as people type them."""
from __future__ import annotations

from fractions import Fraction

from enhancer.errors import ArgumentError


_COMMON_RATES = {"23.98": Fraction(24000, 1001), "23.976": Fraction(24000, 1001), "29.97": Fraction(30000, 1001),
                 "59.94": Fraction(60000, 1001), "119.88": Fraction(120000, 1001), "47.95": Fraction(48000, 1001)}


def read_rate(text: str | None) -> Fraction:
    """A rate as ffmpeg and ffprobe write one (``30000/1001``, ``29.97``, ``60k``); 0 where there is none."""
    if not text:
        return Fraction(0)
    text = text.strip()
    if "/" in text:
        num, den = text.split("/", 1)
        return Fraction(int(num), int(den)) if int(den) else Fraction(0)
    if text in _COMMON_RATES:
        return _COMMON_RATES[text]
    mult = 1000 if text.endswith("k") else 1
    try:
        return Fraction(text.rstrip("k")).limit_denominator(1001) * mult
    except ValueError:
        return Fraction(0)


MAX_FPS = 1000  # above this an average frame rate is a container's clock, not a frame rate


def plausible_rate(avg: Fraction, guessed: Fraction) -> Fraction:
    """The average frame rate, unless it is missing or absurd (raw DV reports its 60 kHz clock as
    "60k fps"); then the rate ffmpeg guessed from the stream (tbr / r_frame_rate)."""
    if avg and avg <= MAX_FPS:
        return avg
    return guessed if guessed and guessed <= MAX_FPS else avg


def parse_rate(text: str) -> Fraction:
    """A frame rate as people write it (``25``, ``23.976``, ``30000/1001``); :class:`ArgumentError`
    (a ValueError) if it is not one."""
    try:
        rate = read_rate(text)
    except (ValueError, ZeroDivisionError):  # "x/1", "1/y"
        rate = Fraction(0)
    if not 0 < rate <= MAX_FPS:
        raise ArgumentError(f"{text.strip()!r} is not a frame rate: use frames per second such as 25, 23.976 "
                         "or 30000/1001")
    return rate
