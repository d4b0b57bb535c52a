"""Small charts drawn with OpenCV (no plotting library): line panels and bar charts as images."""
from __future__ import annotations

import math

import cv2
import numpy as np

_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
            (227, 119, 194), (127, 127, 127)]


def line_panel(title: str, series: dict[str, tuple[list[float], list[float]]], w: int = 560, h: int = 300,
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



def bar_panel(title: str, values: dict[str, float], w: int = 560, h: int = 260, higher_is_better: bool = True
              ) -> np.ndarray:
    """One bar per method, labelled with its value."""
    img = np.full((h, w, 3), 255, np.uint8)
    cv2.putText(img, title + ("  (higher is better)" if higher_is_better else "  (lower is better)"), (10, 18),
                cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    items = [(k, v) for k, v in values.items() if v is not None and math.isfinite(v)]
    if not items:
        return img
    lo = min(0.0, min(v for _, v in items))
    hi = max(v for _, v in items) or 1.0
    left, top, bottom = 10, 30, 60
    bw = (w - 2 * left) / len(items)
    for i, (name, v) in enumerate(items):
        x0 = int(left + i * bw + bw * 0.15)
        x1 = int(left + (i + 1) * bw - bw * 0.15)
        y1 = h - bottom
        y0 = int(y1 - (v - lo) / (hi - lo) * (h - top - bottom - 14))
        colour = _COLOURS[i % len(_COLOURS)][::-1]
        cv2.rectangle(img, (x0, y0), (x1, y1), colour, -1)
        cv2.putText(img, f"{v:.3g}", (x0, max(top + 10, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1,
                    cv2.LINE_AA)
        label = name if len(name) <= 14 else name[:13] + "."
        cv2.putText(img, label, (x0, h - bottom + 16 + 14 * (i % 2)), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return img
