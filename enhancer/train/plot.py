"""Curves of a run's log.jsonl as a PNG: the losses, the discriminators, and validation PSNR-Y
against bicubic, drawn with matplotlib (as the benchmark report's charts are)."""
from __future__ import annotations

import json
from pathlib import Path

from enhancer.errors import OutputError, UsageError
from enhancer.train.config import TrainingError

LOSSES = ("loss_g", "pixel", "temporal", "perceptual", "adv", "adv_frame", "feature_match", "feature_match_frame")
DISCRIMINATORS = ("d", "df")


def _rows(run: Path) -> list[dict]:
    """The logged steps of a run's log.jsonl (lines cut short by a kill are left out)."""
    if not run.exists():
        raise TrainingError("no such run folder", path=str(run))
    hint = "give the run_dir that `enhancer train` wrote, the folder of its log.jsonl"
    if not run.is_dir():
        raise TrainingError("is a file, not a run folder", path=str(run), hint=hint)
    log = run / "log.jsonl"
    if not log.exists():
        raise TrainingError("no log.jsonl in this folder", path=str(run), hint=hint)
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as e:
        raise TrainingError(f"cannot read the run's log ({e.strerror})", path=str(log)) from None
    rows = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line cut short by a kill
        if isinstance(row, dict) and type(row.get("step")) is int:
            rows.append(row)
    if not rows and any(line.strip() for line in lines):
        raise TrainingError("not a training log: none of its lines is a logged step", path=str(log))
    if not rows:
        raise TrainingError("the run's log holds no steps yet", path=str(log))
    return rows


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``curves.png`` (or ``out``): losses on a log scale (smoothed over up to 20 logged steps,
    raw values faint behind), discriminator losses with the chance level log 4, and validation
    PSNR-Y of the EMA model beside bicubic."""
    run = Path(run_dir)
    path = Path(out) if out else run / "curves.png"
    rows = _rows(run)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.backend_bases import FigureCanvasBase

    if path.is_dir() or path.suffix.lower().lstrip(".") not in FigureCanvasBase.get_supported_filetypes():
        raise UsageError("give a picture file to write (.png, .svg or .pdf)", path=str(path))

    def series(key: str):
        pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
        return (np.array([p[0] for p in pts]), np.array([p[1] for p in pts], float)) if pts else None

    losses = {k: s for k in LOSSES if (s := series(k)) is not None}
    discs = {k: s for k in DISCRIMINATORS if (s := series(k)) is not None}
    val = {k: s for k in ("val_psnr_y", "val_psnr_y_bicubic") if (s := series(k)) is not None}
    panels = 1 + bool(discs) + bool(val)
    fig, axes = plt.subplots(panels, 1, figsize=(9, 3.2 * panels), squeeze=False)
    axes = list(axes[:, 0])
    ax = axes.pop(0)
    for key, (x, y) in losses.items():
        k = max(1, min(20, len(y) // 5))
        smooth = np.convolve(y, np.ones(k) / k, mode="valid")
        line, = ax.plot(x[k - 1:], smooth, label=key)
        ax.plot(x, y, color=line.get_color(), alpha=0.15, linewidth=0.8)
    ax.set_yscale("log")
    ax.set(title=f"{run.name}: generator losses (log scale)", xlabel="step", ylabel="loss")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    if discs:
        ax = axes.pop(0)
        for key, (x, y) in discs.items():
            ax.plot(x, y, label={"d": "clip discriminator", "df": "frame discriminator"}[key])
        ax.axhline(np.log(4), color="grey", linestyle=":", label="chance (log 4)")
        ax.set(title="discriminator losses (non-saturating; log 4 when it cannot tell)", xlabel="step",
               ylabel="loss")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    if val:
        ax = axes.pop(0)
        names = {"val_psnr_y": "EMA model", "val_psnr_y_bicubic": "bicubic"}
        for key, (x, y) in val.items():
            ax.plot(x, y, marker="o", markersize=3, label=names[key])
        ax.set(title="validation PSNR-Y (higher is better)", xlabel="step", ylabel="dB")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    except OSError as e:
        raise OutputError(f"cannot write the curves ({e.strerror or e})", path=str(path)) from None
    finally:
        plt.close(fig)
    return path
