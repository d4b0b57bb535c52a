"""Curves of a run's log.jsonl as a PNG (drawn with OpenCV: no plotting library needed)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from enhancer.plotting import line_panel


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
    img = np.concatenate([line_panel("training losses (log scale)", series, log_y=True),
                          line_panel("validation PSNR-Y (dB): EMA model vs bicubic", val)], axis=0)
    path = Path(out) if out else run / "curves.png"
    cv2.imwrite(str(path), img)
    return path
