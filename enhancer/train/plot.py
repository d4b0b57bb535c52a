"""Curves of a run's log.jsonl as a PNG (drawn with OpenCV: no plotting library needed)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np

_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
            (227, 119, 194), (127, 127, 127)]


def _panel(title: str, series: dict[str, tuple[list[float], list[float]]], w: int = 560, h: int = 300,
           log_y: bool = False) -> np.ndarray:
    img = np.full((h, w, 3), 255, np.uint8)
    left, right, top, bottom = 60, 10, 28, 30
    cv2.putText(img, title, (left, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    xs = [x for xs_, _ in series.values() for x in xs_]
    ys = [y for _, ys_ in series.values() for y in ys_ if math.isfinite(y) and (y > 0 or not log_y)]
    if not xs or not ys:
        return img
    f = (lambda v: math.log10(v)) if log_y else (lambda v: v)
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    lo, hi = f(min(ys)), f(max(ys))
    if hi - lo < 1e-9:
        hi = lo + 1
    cv2.rectangle(img, (left, top), (w - right, h - bottom), (0, 0, 0), 1)

    def px(x, y):
        return (int(left + (x - x0) / (x1 - x0) * (w - left - right)),
                int(h - bottom - (f(y) - lo) / (hi - lo) * (h - top - bottom)))

    for k, frac in enumerate((0, 0.5, 1)):
        v = lo + frac * (hi - lo)
        label = f"{10 ** v:.3g}" if log_y else f"{v:.3g}"
        y = int(h - bottom - frac * (h - top - bottom))
        cv2.putText(img, label, (2, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, f"step {int(x0)}", (left, h - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1)
    cv2.putText(img, f"{int(x1)}", (w - right - 40, h - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1)
    for i, (name, (sx, sy)) in enumerate(series.items()):
        colour = _COLOURS[i % len(_COLOURS)][::-1]
        pts = [px(x, y) for x, y in zip(sx, sy) if math.isfinite(y) and (y > 0 or not log_y)]
        if len(pts) > 1:
            cv2.polylines(img, [np.array(pts, np.int32)], False, colour, 1, cv2.LINE_AA)
        elif pts:
            cv2.circle(img, pts[0], 2, colour, -1)
        cv2.putText(img, name, (left + 8 + 130 * (i % 4), top + 14 + 14 * (i // 4)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4, colour, 1, cv2.LINE_AA)
    return img


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``curves.png`` (losses on a log scale, validation PSNR-Y against bicubic)."""
    run = Path(run_dir)
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    if not rows:
        raise ValueError(f"{run / 'log.jsonl'} is empty")
    loss_keys = [k for k in ("loss_g", "pixel", "temporal", "perceptual", "adv", "d", "feature_match")
                 if any(k in r for r in rows)]
    series = {k: ([r["step"] for r in rows if k in r], [r[k] for r in rows if k in r]) for k in loss_keys}
    val = {k: ([r["step"] for r in rows if k in r], [r[k] for r in rows if k in r])
           for k in ("val_psnr_y", "val_psnr_y_bicubic") if any(k in r for r in rows)}
    img = np.concatenate([_panel("training losses (log scale)", series, log_y=True),
                          _panel("validation PSNR-Y (dB): EMA model vs bicubic", val)], axis=0)
    path = Path(out) if out else run / "curves.png"
    cv2.imwrite(str(path), img)
    return path
