"""The report's charts, drawn with matplotlib: a bar chart per metric, per-frame curves, and speed
against quality. Each is a PNG written where it is asked for.

Axes follow the data (a bar chart does not start at zero where zero would hide the differences),
every axis is titled with its unit, values are printed with as many decimals as it takes to tell
the methods apart, and the best method of each metric is marked, with the metric's direction.
"""
from __future__ import annotations

import math
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from enhancer.quality.evaluate import Metric

BEST = "#1a7f37"  # the best method's bar and label
OTHER = "#8aa4c8"
_DPI = 100


def separating_decimals(values: list[float], at_least: int, at_most: int = 8) -> int:
    """The fewest decimals (from ``at_least``) that print every pair of different values differently."""
    finite = sorted({v for v in values if math.isfinite(v)})
    for d in range(at_least, at_most + 1):
        shown = {f"{v:.{d}f}" for v in finite}
        if len(shown) == len(finite):
            return d
    return at_most


def best_of(metric: Metric, values: dict[str, float | None]) -> set[str]:
    """The methods with the best value (ties share it)."""
    finite = {m: v for m, v in values.items() if v is not None and not math.isnan(v)}
    if not finite:
        return set()
    top = max(finite.values()) if metric.higher_is_better else min(finite.values())
    return {m for m, v in finite.items() if v == top}


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=_DPI)
    return path


def metric_bars(metric: Metric, values: dict[str, float | None], path: Path) -> Path:
    """Horizontal bars, one per method, from the left edge of an axis scaled to the values."""
    items = [(m, v) for m, v in values.items() if v is not None and math.isfinite(v)]
    fig = Figure(figsize=(6.4, 0.5 + 0.42 * max(1, len(items)) + 0.9), layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(f"{metric.label}: {metric.direction}", loc="left", fontsize=11)
    if not items:
        ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return _save(fig, path)
    best = best_of(metric, dict(items))
    vals = [v for _, v in items]
    lo, hi = min(vals), max(vals)
    span = hi - lo or (abs(hi) * 0.01 or 1.0)
    left = lo - 0.35 * span  # the worst bar keeps a visible length
    if lo >= 0 and left <= span:  # zero is near enough to start from without hiding differences
        left = 0.0
    right = hi + 0.30 * span
    d = separating_decimals(vals, metric.decimals)
    names = [m for m, _ in items][::-1]  # first method on top
    shown = [v for _, v in items][::-1]
    colours = [BEST if m in best else OTHER for m in names]
    bars = ax.barh(names, [v - left for v in shown], left=left, color=colours, height=0.62)
    ax.bar_label(bars, labels=[f"{v:.{d}f}" + ("  best" if m in best else "") for m, v in zip(names, shown)],
                 padding=3, fontsize=9)
    ax.set_xlim(left, right)
    axis = metric.titled + (f"; the axis starts at {left:.{d}f}, not 0" if left != 0 else "")
    ax.set_xlabel(axis, fontsize=9)
    for label, m in zip(ax.get_yticklabels(), names):
        if m in best:
            label.set_color(BEST)
            label.set_fontweight("bold")
    ax.spines[["top", "right"]].set_visible(False)
    return _save(fig, path)


def per_frame(metric: Metric, series: dict[str, tuple[list[int], list[float]]], path: Path,
              title: str | None = None) -> Path:
    """One curve per method against frame number; the legend sits outside the plot, on the right."""
    fig = Figure(figsize=(9.0, 3.4), layout="constrained")
    ax = fig.add_subplot()
    drawn = 0
    for name, (xs, ys) in series.items():
        pts = [(x, y) for x, y in zip(xs, ys) if math.isfinite(y)]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=name, linewidth=1.3,
                    marker="." if len(pts) < 40 else None)
            drawn += 1
    if not drawn:
        ax.text(0.5, 0.5, "no finite values (identical frames score infinite PSNR)", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_title(title or f"{metric.label} per frame ({metric.direction})", loc="left", fontsize=11)
    ax.set_xlabel("frame number" + (" (the value of frames k-1 and k is drawn at k)" if metric.between_frames
                                    else ""), fontsize=9)
    ax.set_ylabel(metric.titled, fontsize=9)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    ax.margins(x=0.01)
    if drawn:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, fontsize=9, frameon=False)
    return _save(fig, path)


def speed_quality(seconds_per_frame: dict[str, float], quality: dict[Metric, dict[str, float | None]],
                  path: Path) -> Path:
    """Seconds per frame (log scale) against each quality metric, one labelled point per method."""
    panels = [(m, v) for m, v in quality.items() if any(x is not None for x in v.values())]
    fig = Figure(figsize=(5.0 * max(1, len(panels)), 4.0), layout="constrained")
    fig.suptitle("Speed against quality: the best methods sit towards the top left", x=0.01, ha="left",
                 fontsize=11)
    for k, (metric, values) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        best = best_of(metric, values)
        for i, (name, spf) in enumerate(seconds_per_frame.items()):
            q = values.get(name)
            if q is None or not math.isfinite(q) or spf <= 0:
                continue
            ax.scatter([spf], [q], s=40, color=f"C{i % 10}", edgecolor="black" if name in best else "none",
                       linewidth=1.2, zorder=3)
            ax.annotate(name, (spf, q), textcoords="offset points", xytext=(6, 4), fontsize=8,
                        fontweight="bold" if name in best else "normal")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("seconds per frame (log scale; faster to the left)", fontsize=9)
        ax.set_ylabel(f"{metric.titled}, {metric.direction}", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        if not metric.higher_is_better:
            ax.invert_yaxis()  # better stays upwards
        ax.margins(x=0.25, y=0.15)
    return _save(fig, path)
