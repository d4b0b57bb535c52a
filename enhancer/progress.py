"""The one progress bar, and the one way to print a line to stderr while a bar may be showing.

Bars are tqdm on stderr where stderr is a terminal. Where it is not (a log, a pipe, CI), a bar
is a plain line every few seconds instead (``[1/3] a.mp4: 120/444 frames (27%), 3.1 frames/s,
1:30 left``), so a long file is never silent until it ends. In ``json`` mode (``--progress json``, for programs that drive enhancer) each bar instead writes
one JSON object per second to stderr, whatever stderr is: ``{"progress": desc, "stage": ...,
"done": n, "total": n|null, "unit": "frame", "rate": per second, "eta": seconds|null,
"elapsed": seconds}``, and a last one with ``"stage": "end"`` when the bar closes.
The rate is always in units per second (a slow model shows 0.25 frame/s, not 4.00 s/frame) and
is the plain average since ``start``: the clock the caller measures its result with, so a bar's
last rate and the line printed when the work is done are the same measurement. Other messages go
through :func:`write`, which clears the bars first, so no line is ever glued to a bar.
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import sys
import threading
import time
from typing import Iterator

from tqdm import tqdm

from enhancer.errors import ArgumentError

_KNOWN = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_noinv_fmt}{postfix}]"
_UNKNOWN = "{desc}: {n_fmt} {unit} [{elapsed}, {rate_noinv_fmt}{postfix}]"


MODES = ("bar", "json", "none")
# per thread (and task): two API calls in two threads with different progress settings keep their own
_mode: contextvars.ContextVar[str] = contextvars.ContextVar("enhancer_progress_mode", default="bar")


def mode_of(value: bool | str | None) -> str:
    """A progress setting as one of MODES: True is ``bar``, False and None ``none``."""
    if value is True:
        return "bar"
    if value is False or value is None:
        return "none"
    if value not in MODES:
        raise ArgumentError(f"progress must be one of {', '.join(MODES)}, True or False, not {value!r}")
    return value


@contextlib.contextmanager
def using(mode: str) -> Iterator[None]:
    """Bars made inside show as ``mode`` (``none`` turns them off), in this thread."""
    token = _mode.set(mode_of(mode))
    try:
        yield
    finally:
        _mode.reset(token)


def set_mode(mode: str) -> None:
    """For the rest of this thread's work (the CLI's ``--progress``)."""
    _mode.set(mode_of(mode))


class _Bar(tqdm):
    """tqdm, except that a count that passes the announced total (a file that said 25 frames and
    holds 50: files joined end to end, a header that lies) turns the total into "unknown" rather
    than showing 128 % and 0:00 left."""

    def update(self, n=1):
        shown = super().update(n)
        if self.total and self.n > self.total:
            self.total = None
            self.bar_format = _UNKNOWN
            self.refresh()
        return shown


class _JsonBar(_Bar):
    """A bar that prints JSON lines instead of drawing: one a second from a timer thread (so a
    host program hears from a slow model between its updates too), and one at the end."""

    interval = 1.0  # seconds between lines
    at_start = True  # a line as the bar opens

    def __init__(self, *args, **kwargs):
        self._ended = False
        self._say_lock = threading.Lock()
        self._stop = threading.Event()
        kwargs.update(mininterval=3600.0, maxinterval=3600.0, miniters=0)  # tqdm itself never draws
        super().__init__(*args, **kwargs)
        if not self.disable:
            if self.at_start:
                self._say("run")
            self._timer = threading.Thread(target=self._tick, name="progress-lines", daemon=True)
            self._timer.start()

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            self._say("run")

    def _text(self, stage: str) -> str | None:
        return json.dumps(self._record(stage), ensure_ascii=False)

    def _record(self, stage: str) -> dict:
        elapsed = max(self._time() - self.start_t, 0.0)
        rate = (self.n - self.initial) / elapsed if elapsed > 0 else None
        eta = (self.total - self.n) / rate if self.total and rate else None
        postfix = (self.postfix or "").strip(", ") if isinstance(self.postfix, str) else ""
        return {"progress": self.desc, "stage": stage if stage == "end" else (postfix or "run"),
                "done": self.n, "total": self.total or None, "unit": self.unit,
                "rate": round(rate, 3) if rate is not None else None,
                "eta": round(max(eta, 0.0), 1) if eta is not None else None, "elapsed": round(elapsed, 1)}

    def _say(self, stage: str) -> None:
        # tqdm's own lock too: write() prints a message and its newline in two calls under it, and
        # a JSON line must never land between them
        with self._say_lock, tqdm.get_lock():
            if self._ended:
                return
            if stage == "end":
                self._ended = True
            text = self._text(stage)
            if text is None:
                return
            try:
                self.fp.write(text + "\n")
                self.fp.flush()
            except (OSError, ValueError):  # stderr closed by the host: progress is not worth a failure
                pass

    def display(self, msg=None, pos=None):
        return True  # the timer speaks

    def clear(self, nolock=False):
        pass

    def close(self):
        if not self.disable and hasattr(self, "start_t"):
            self._stop.set()
            self._say("end")
        super().close()


LINE_SECONDS = 5.0  # between plain progress lines where stderr is not a terminal


class _LineBar(_JsonBar):
    """Where stderr is a log or a pipe: a plain line every few seconds (none for work done
    sooner; none at the end, which the caller's own line reports)."""

    interval = LINE_SECONDS
    at_start = False

    def close(self):
        self.sp = None  # tqdm clears a drawn bar with "\r" as it closes; a log has none to clear
        super().close()

    def _text(self, stage: str) -> str | None:
        if stage == "end":
            return None
        r = self._record(stage)
        unit = f"{r['unit']}s" if r["unit"] in ("frame", "file", "clip") else r["unit"]
        done = f"{r['done']}/{r['total']} {unit} ({100 * r['done'] / r['total']:.0f}%)" if r["total"] \
            else f"{r['done']} {unit}"
        rate = f", {r['rate']:.3g} {unit}/s" if r["rate"] else ""
        eta = f", {_clock(r['eta'])} left" if r["eta"] is not None else ""
        what = f", {r['stage']}" if r["stage"] != "run" else ""
        return f"{r['progress'] + ': ' if r['progress'] else ''}{done}{rate}{eta}{what}"


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


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
    mode = _mode.get()
    json_mode = enabled and mode == "json"
    lines = enabled and mode == "bar" and not _is_terminal(sys.stderr)
    on = json_mode or lines or (enabled and mode == "bar")
    with (_JsonBar if json_mode else _LineBar if lines else _Bar)(total=total, desc=desc or "", unit=unit, disable=not on, file=sys.stderr, dynamic_ncols=True,
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
