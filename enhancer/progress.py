"""The one progress bar, and the one way to print a line to stderr while a bar may be showing.

Bars are tqdm on stderr, shown only where stderr is a terminal (never in logs, pipes or CI).
The rate is always in units per second (a slow model shows 0.25 frame/s, not 4.00 s/frame) and
is the plain average since ``start``: the clock the caller measures its result with, so a bar's
last rate and the line printed when the work is done are the same measurement. Other messages go
through :func:`write`, which clears the bars first, so no line is ever glued to a bar.
"""
from __future__ import annotations

import contextlib
import sys
import time
from typing import Iterator

from tqdm import tqdm

_KNOWN = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_noinv_fmt}{postfix}]"
_UNKNOWN = "{desc}: {n_fmt} {unit} [{elapsed}, {rate_noinv_fmt}{postfix}]"


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or not a real stream
        return False


@contextlib.contextmanager
def bar(total: int | None = None, desc: str | None = None, unit: str = "it", enabled: bool = True,
        position: int | None = None, leave: bool = False, start: float | None = None,
        initial: int = 0) -> Iterator[tqdm]:
    """A progress bar over ``total`` units (None: unknown). ``start`` is a ``time.perf_counter()``
    reading the rate counts from (default: now); ``initial`` units were done before (a resumed
    file) and count towards the position but not the rate."""
    on = enabled and _is_terminal(sys.stderr)
    with tqdm(total=total, desc=desc or "", unit=unit, disable=not on, file=sys.stderr, dynamic_ncols=True,
              leave=leave, position=position, smoothing=0, initial=initial,
              bar_format=_KNOWN if total else _UNKNOWN) as b:
        if on and start is not None:  # tqdm's clock is time.time(); move its start back to the caller's
            b.start_t = b.last_print_t = b._time() - (time.perf_counter() - start)
        yield b


def settle(b: tqdm) -> None:
    """At the end of the work: make the total what was really done (a file that announced 444
    frames and decoded 68 ends at 68/68, not 15%), then draw the bar once more."""
    if b.disable:
        return
    if b.total != b.n:
        b.total = b.n
        b.bar_format = _KNOWN
    b.refresh()


def write(line: str) -> None:
    """Print one line on stderr, clearing any bar first (it is redrawn below the line)."""
    tqdm.write(line, file=sys.stderr)
    sys.stderr.flush()
