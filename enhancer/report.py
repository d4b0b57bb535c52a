"""HTML reports: tables, per-frame curves, bar charts and side-by-side crops (PNG files beside it)."""
from __future__ import annotations

import html
from pathlib import Path

import cv2
import numpy as np

from enhancer.compare import Crop, compose
from enhancer.evaluate import Scores, frames
from enhancer.plotting import bar_panel, line_panel

_STYLE = """body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#eee}td:first-child{text-align:left}
img{max-width:100%;border:1px solid #ddd;margin:4px 0}"""


def _frame_at(path: str, index: int) -> np.ndarray:
    for k, img in enumerate(frames(path)):
        if k == index:
            return img
    raise ValueError(f"{path} has no frame {index}")


def _detail_crop(img: np.ndarray, size: int) -> Crop:
    """The size x size window with the most detail (edge energy), for the close-up crops."""
    h, w = img.shape[:2]
    size = min(size, h, w)
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    energy = np.abs(cv2.Laplacian(grey, cv2.CV_32F))
    integral = cv2.integral(energy)
    best, pos = -1.0, (0, 0)
    step = max(8, size // 4)
    for y in range(0, h - size + 1, step):
        for x in range(0, w - size + 1, step):
            e = integral[y + size, x + size] - integral[y, x + size] - integral[y + size, x] + integral[y, x]
            if e > best:
                best, pos = e, (x, y)
    return Crop(pos[0], pos[1], size, size)


def _table(rows: list[list[str]], head: list[str]) -> str:
    out = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for r in rows:
        out.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>")
    return "\n".join(out) + "</table>"


def _write(img: np.ndarray, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img[..., ::-1] if img.ndim == 3 else img)
    return f"{path.parent.name}/{path.name}"


def scores_report(reference: str, scores: list[Scores], out: str | Path) -> Path:
    """The report of `enhancer evaluate --report`: table of means and per-frame curves."""
    out = Path(out)
    files = out.parent / (out.stem + "_files")
    keys = [k for k in ("psnr_y", "psnr_rgb", "ssim_y", "vmaf", "perceptual", "tof", "tlp")
            if any(k in s.per_frame for s in scores)]
    rows = [[Path(s.candidate).name] + [f"{s.mean(k):.4g}" if s.mean(k) is not None else "n/a" for k in keys]
            for s in scores]
    parts = [f"<h1>enhancer evaluate</h1><p>Reference: {html.escape(reference)}</p>", _table(rows, ["candidate"] + keys)]
    net = next((s.perceptual_net for s in scores if s.perceptual_net), None)
    if net:
        parts.append(f"<p>Perceptual distance network: {html.escape(net)}</p>")
    for k in keys:
        series = {Path(s.candidate).name: (list(range(len(s.per_frame[k]))), s.per_frame[k]) for s in scores
                  if k in s.per_frame}
        src = _write(line_panel(f"{k} per frame", series, w=900), files / f"{k}.png")
        parts.append(f"<h3>{k}</h3><img src='{src}' alt='{k} per frame'>")
    out.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>enhancer evaluate</title>"
                   f"<style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>")
    return out


def benchmark_report(res, out: str | Path) -> Path:
    """The report of `enhancer benchmark`: table, bar charts, per-clip curves and crops."""
    from enhancer.benchmark import HIGHER_IS_BETTER, LABELS

    out = Path(out)
    files = out.parent / (out.stem + "_files")
    keys = [k for k in ("psnr_y", "ssim_y", "vmaf", "perceptual", "tof", "tlp")
            if any(r.scores.mean(k) is not None for r in res.results)]
    rows = [[m] + [f"{res.mean(m, k):.4g}" if res.mean(m, k) is not None else "n/a" for k in keys]
            + [f"{res.spf(m):.3f}"] for m in res.methods]
    parts = [f"<h1>enhancer benchmark</h1><p>Preset <b>{html.escape(res.preset)}</b>, x{res.scale}; clips: "
             + ", ".join(html.escape(Path(c).name) for c in res.clips) + "</p>",
             _table(rows, ["method"] + [LABELS[k] for k in keys] + ["s/frame"])]
    if res.perceptual_net:
        parts.append(f"<p>Perceptual distance and tLP network: {html.escape(res.perceptual_net)}</p>")
    parts.append("<h2>Means over clips</h2>")
    for k in keys:
        img = bar_panel(LABELS[k], {m: res.mean(m, k) for m in res.methods}, higher_is_better=HIGHER_IS_BETTER[k])
        parts.append(f"<img src='{_write(img, files / f'bar_{k}.png')}' alt='{LABELS[k]} by method'>")
    for clip in dict.fromkeys(r.clip for r in res.results):
        parts.append(f"<h2>{html.escape(clip)}</h2>")
        for k in ("psnr_y", "vmaf"):
            series = {r.method: (list(range(len(r.scores.per_frame.get(k, [])))), r.scores.per_frame.get(k, []))
                      for r in res.results if r.clip == clip and k in r.scores.per_frame}
            if series:
                img = line_panel(f"{LABELS[k]} per frame", series, w=900)
                parts.append(f"<img src='{_write(img, files / f'{clip}_{k}.png')}' alt='{LABELS[k]} per frame'>")
        clip_results = [r for r in res.results if r.clip == clip]
        ref = res.reference_files.get(clip)
        if ref and clip_results:
            index = clip_results[0].scores.frames // 2
            ref_img = _frame_at(ref, index)
            crop = _detail_crop(ref_img, min(160, ref_img.shape[0] // 2))
            images = [ref_img, _frame_at(res.degraded_files[clip], index)] + \
                     [_frame_at(r.output, index) for r in clip_results]
            labels = ["reference", "degraded input"] + [r.method for r in clip_results]
            img = compose(images, labels, mode="grid", crop=crop)
            parts.append(f"<p>Frame {index}, crop {crop.w}x{crop.h} at ({crop.x},{crop.y}); lower resolutions "
                         "enlarged with nearest neighbour.</p>"
                         f"<img src='{_write(img, files / f'{clip}_crops.png')}' alt='crops of frame {index}'>")
    out.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>enhancer benchmark</title>"
                   f"<style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>")
    return out
