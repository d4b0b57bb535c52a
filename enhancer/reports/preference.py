"""Statistics of a blind A/B study: how often people preferred one method over another, and how
sure that is.

A "same" judgement counts half for each side (so a pair nobody can tell apart scores 50%), and
every judgement counts in n. For each pair of methods the preference rate of the method chosen
more often is (its wins + same/2) / n, with a 95% Wilson score interval; it is *preferred* where
the interval lies wholly above 50%, otherwise there is no clear preference. With three or more
methods a Bradley-Terry model (ties again half a win each way) is fitted to all judgements by
Hunter's MM iterations, giving one strength per method (shares that sum to 1; the chance that i
is preferred over j is s_i / (s_i + s_j)).
"""
from __future__ import annotations

import csv
import glob
import math
from dataclasses import dataclass
from pathlib import Path

from enhancer.errors import InputError

COLUMNS = ["clip", "left", "right", "choice"]
CHOICES = ("left", "right", "same")
Z95 = 1.959963984540054  # the 97.5% quantile of the standard normal


@dataclass(frozen=True)
class Judgement:
    clip: str
    left: str
    right: str
    choice: str  # left | right | same

    @property
    def winner(self) -> str | None:
        return {"left": self.left, "right": self.right}.get(self.choice)


def read_judgements(paths: list[str]) -> list[Judgement]:
    """Every row of the exported CSV files; a file that is not one is an error naming it."""
    out: list[Judgement] = []
    for path in paths:
        try:
            with open(path, newline="", encoding="utf-8") as f:
                rows = list(csv.reader(f))
        except OSError as e:
            raise InputError(f"cannot read: {e.strerror}", path=path) from None
        except UnicodeDecodeError:
            raise InputError("is not a UTF-8 text file", path=path, hint="give the CSV the study page exported") \
                from None
        if not rows or [c.strip() for c in rows[0]] != COLUMNS:
            raise InputError(f"does not start with the header {','.join(COLUMNS)}", path=path,
                             hint="give the CSV the study page exported")
        for line, row in enumerate(rows[1:], start=2):
            if not row:
                continue
            if len(row) != 4 or row[3] not in CHOICES or row[1] == row[2]:
                raise InputError(f"line {line} is not clip,left,right,choice with choice left, right or same",
                                 path=path)
            out.append(Judgement(*row))
    return out


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion successes / n."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class PairPreference:
    """Two methods' record against each other; ``first`` is the one chosen at least as often."""

    first: str
    second: str
    first_wins: int
    second_wins: int
    same: int

    @property
    def n(self) -> int:
        return self.first_wins + self.second_wins + self.same

    @property
    def rate(self) -> float:
        return (self.first_wins + self.same / 2) / self.n

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.first_wins + self.same / 2, self.n)

    @property
    def preferred(self) -> bool:
        return self.interval[0] > 0.5

    def verdict(self) -> str:
        lo, hi = self.interval
        numbers = f"{_pct(self.rate)}% [{_pct(lo)}–{_pct(hi)}], n={self.n}"
        if self.preferred:
            return f"{self.first} preferred over {self.second}: {numbers}"
        return f"no clear preference between {self.first} and {self.second}: {self.first} {numbers}"


def _pct(x: float) -> int:
    return int(math.floor(100 * x + 0.5))


def pair_preferences(judgements: list[Judgement]) -> list[PairPreference]:
    """One record per pair of methods that met, the clearer preferences first."""
    tally: dict[tuple[str, str], list[int]] = {}
    for j in judgements:
        a, b = sorted((j.left, j.right))
        t = tally.setdefault((a, b), [0, 0, 0])
        t[2 if j.winner is None else (0 if j.winner == a else 1)] += 1
    out = []
    for (a, b), (wa, wb, same) in tally.items():
        out.append(PairPreference(a, b, wa, wb, same) if wa >= wb else PairPreference(b, a, wb, wa, same))
    return sorted(out, key=lambda p: (-p.interval[0], p.first, p.second))


def bradley_terry(judgements: list[Judgement], iterations: int = 10000, tol: float = 1e-12) -> dict[str, float]:
    """Bradley-Terry strengths (shares summing to 1), a "same" counting half a win each way."""
    methods = sorted({m for j in judgements for m in (j.left, j.right)})
    wins = {m: 0.0 for m in methods}
    meetings: dict[tuple[str, str], int] = {}
    for j in judgements:
        if j.winner is None:
            wins[j.left] += 0.5
            wins[j.right] += 0.5
        else:
            wins[j.winner] += 1
        key = tuple(sorted((j.left, j.right)))
        meetings[key] = meetings.get(key, 0) + 1
    strength = {m: 1.0 / len(methods) for m in methods}
    for _ in range(iterations):
        new = {}
        for m in methods:
            denom = sum(n / (strength[a] + strength[b]) for (a, b), n in meetings.items() if m in (a, b))
            new[m] = wins[m] / denom if denom else 0.0
        total = sum(new.values()) or 1.0
        new = {m: v / total for m, v in new.items()}
        change = max(abs(new[m] - strength[m]) for m in methods)
        strength = new
        if change < tol:
            break
    return strength


def summary(judgements: list[Judgement]) -> str:
    """The text `enhancer study score` prints: a table per pair, strengths, and one verdict a line."""
    pairs = pair_preferences(judgements)
    width = max([len(f"{p.first} vs {p.second}") for p in pairs] + [4])
    lines = [f"{len(judgements)} judgements; 'same' counts half for each side; 95% Wilson intervals", "",
             f"{'pair':<{width}}  {'n':>5}  {'wins':>5}  {'losses':>6}  {'same':>5}  {'rate':>5}  95% interval"]
    for p in pairs:
        lo, hi = p.interval
        lines.append(f"{p.first + ' vs ' + p.second:<{width}}  {p.n:>5}  {p.first_wins:>5}  {p.second_wins:>6}  "
                     f"{p.same:>5}  {_pct(p.rate):>4}%  [{_pct(lo)}–{_pct(hi)}]")
    methods = {m for p in pairs for m in (p.first, p.second)}
    if len(methods) > 2:
        lines += ["", "Bradley-Terry strengths (shares of 100; i beats j with chance s_i / (s_i + s_j)):"]
        for m, s in sorted(bradley_terry(judgements).items(), key=lambda kv: -kv[1]):
            lines.append(f"  {m:<{width}}  {100 * s:5.1f}")
    lines += [""] + [p.verdict() for p in pairs]
    return "\n".join(lines)


def score_files(paths: list[str]) -> str:
    judgements = read_judgements(paths)
    if not judgements:
        raise InputError("holds no judgements", path=paths[0] if len(paths) == 1 else None,
                         hint="export the choices from the study page first")
    return summary(judgements)


def expand(patterns: list[str]) -> list[str]:
    """Paths as given, with globs the shell left unexpanded (quoted, or on Windows) expanded."""
    out: list[str] = []
    for p in patterns:
        found = sorted(glob.glob(p)) if any(c in p for c in "*?[") and not Path(p).exists() else []
        out += found or [p]
    return out
