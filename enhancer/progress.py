"""The one progress bar: tqdm on stderr, off when asked or when stderr is not a terminal in CI."""
from __future__ import annotations

import contextlib
import sys
from typing import Iterator

from tqdm import tqdm


@contextlib.contextmanager
def bar(total: int | None = None, desc: str | None = None, unit: str = "it", enabled: bool = True,
        position: int | None = None, leave: bool = False) -> Iterator[tqdm]:
    with tqdm(total=total, desc=desc, unit=unit, disable=not enabled, file=sys.stderr, dynamic_ncols=True,
              leave=leave, position=position, smoothing=0.1) as b:
        yield b
