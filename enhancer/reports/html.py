"""The HTML report of `enhancer benchmark` and `enhancer evaluate --html`: one folder that works
offline (no CDN, nothing fetched), holding ``index.html`` with its script and styles inline and
the charts, stills and clips it shows.

Sections: the table of means (best of each metric marked, direction stated), a bar chart per
metric, speed against quality (where methods were timed), and for each clip a wipe slider over
full frames of every method against the truth and against the input, synchronised looping clips
of a detailed crop, and per-frame curves.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from enhancer.quality.evaluate import METRIC_INFO, METRICS, Scores
from enhancer.reports import charts
from enhancer.reports.views import ClipViews, make_views

TRUTH, INPUT = "truth", "input"  # the versions beside the methods' ("m:NAME")


@dataclass
class MethodRun:
    """One method's output for one clip, with its scores and (where timed) its speed."""

    method: str
    output: str
    scores: Scores
    seconds_per_frame: float | None = None


@dataclass
class ClipResults:
    name: str
    reference: str
    degraded: str | None  # the input the methods restored, where known
    runs: list[MethodRun] = field(default_factory=list)


@dataclass
class ReportInput:
    title: str
    summary: str  # one line of plain text: what was compared
    clips: list[ClipResults]
    perceptual_net: str | None = None

    @property
    def methods(self) -> list[str]:
        return list(dict.fromkeys(r.method for c in self.clips for r in c.runs))

    def mean(self, method: str, key: str, clip: ClipResults | None = None) -> float | None:
        """The mean over clips of each clip's mean (or one clip's mean)."""
        vals = [r.scores.mean(key) for c in ([clip] if clip else self.clips) for r in c.runs if r.method == method]
        vals = [v for v in vals if v is not None and not math.isnan(v)]
        return float(np.mean(vals)) if vals else None

    def seconds_per_frame(self, method: str) -> float | None:
        vals = [r.seconds_per_frame for c in self.clips for r in c.runs if r.method == method]
        return float(np.mean(vals)) if vals and all(v is not None for v in vals) else None


def for_scores(reference: str, scores: list[Scores], degraded: str | None = None) -> ReportInput:
    """What `enhancer evaluate` measured, as a report of one clip."""
    runs = [MethodRun(_label(s.candidate, [x.candidate for x in scores]), s.candidate, s) for s in scores]
    clip = ClipResults(Path(reference).stem or Path(reference).name, reference, degraded, runs)
    return ReportInput("enhancer evaluate", f"Reference: {reference}", [clip],
                       next((s.perceptual_net for s in scores if s.perceptual_net), None))


def _label(path: str, all_paths: list[str]) -> str:
    """A candidate's name: its file name, with its folder where two share a name."""
    name = Path(path).name
    if sum(Path(p).name == name for p in all_paths) > 1:
        return str(Path(*Path(path).parts[-2:]))
    return name


# ---- the page ---------------------------------------------------------------------------------
def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _asset(name: str) -> str:
    return (resources.files("enhancer") / "assets" / name).read_text(encoding="utf-8")


def _keys(data: ReportInput) -> list[str]:
    return [k for k in METRICS if any(r.scores.mean(k) is not None for c in data.clips for r in c.runs)]


def _fmt(v: float | None, d: int) -> str:
    if v is None or math.isnan(v):
        return "n/a"
    return "∞" if math.isinf(v) else f"{v:.{d}f}"


def _table(data: ReportInput, keys: list[str], clip: ClipResults | None = None) -> str:
    methods = [m for m in data.methods if clip is None or any(r.method == m for r in clip.runs)]
    spf = {m: data.seconds_per_frame(m) for m in methods} if clip is None else {}
    head = ["<th scope='col'>method</th>"]
    for k in keys:
        m = METRIC_INFO[k]
        arrow = "↑" if m.higher_is_better else "↓"
        unit = f" ({_e(m.unit)})" if m.unit else ""
        head.append(f"<th scope='col' title='{_e(m.direction)}'>{_e(m.label)}{unit} {arrow}</th>")
    timed = any(v is not None for v in spf.values())
    if timed:
        head.append("<th scope='col' title='lower is faster'>s/frame ↓</th>")
    columns = {k: {m: data.mean(m, k, clip) for m in methods} for k in keys}
    best = {k: charts.best_of(METRIC_INFO[k], v) for k, v in columns.items()}
    places = {k: charts.separating_decimals([v for v in col.values() if v is not None], METRIC_INFO[k].decimals)
              for k, col in columns.items()}
    rows = []
    for m in methods:
        cells = [f"<th scope='row'>{_e(m)}</th>"]
        for k in keys:
            v = columns[k][m]
            mark = " class='best' title='best'" if m in best[k] else ""
            cells.append(f"<td{mark}>{_fmt(v, places[k])}{' ★' if mark else ''}</td>")
        if timed:
            cells.append(f"<td>{_fmt(spf[m], 4) if spf[m] is not None else 'n/a'}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<div class='table-wrap'><table class='scores'><thead><tr>{''.join(head)}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>"
            "<p class='note'>↑ higher is better, ↓ lower is better; ★ and green mark the best value of each "
            "column, printed with as many decimals as it takes to tell the methods apart.</p>")


def _wipes(views: ClipViews, clip: ClipResults) -> str:
    truth, source = views.stills.get(TRUTH), views.stills.get(INPUT)
    out = []
    for run in clip.runs:
        after = views.stills.get(f"m:{run.method}")
        if not (truth and after):
            continue
        toggle = ""
        if source:
            toggle = ("<span class='against'>against <button type='button' data-against='truth' aria-pressed='true'>"
                      "the truth</button><button type='button' data-against='input' aria-pressed='false'>the input"
                      "</button></span>")
        out.append(
            f"<figure class='wipe' data-method='{_e(run.method)}' data-truth='{_e(truth)}'"
            f"{f' data-input={chr(39)}{_e(source)}{chr(39)}' if source else ''}>"
            f"<div class='wipe-view' style='--pos:50%'><img class='after' src='{_e(after)}' alt='{_e(run.method)}'>"
            f"<img class='before' src='{_e(truth)}' alt='the truth'><div class='wipe-line'></div>"
            f"<span class='tag left'>truth</span><span class='tag right'>{_e(run.method)}</span></div>"
            f"<input type='range' min='0' max='100' step='0.5' value='50' aria-label='wipe position'>"
            f"<figcaption><b>{_e(run.method)}</b> {toggle}</figcaption></figure>")
    return "<div class='wipes'>" + "".join(out) + "</div>"


def _motion(views: ClipViews) -> str:
    figures = "".join(f"<figure><video src='{_e(src)}' muted loop playsinline autoplay preload='auto'></video>"
                      f"<figcaption>{_e(label.removeprefix('m:'))}</figcaption></figure>"
                      for label, src in views.clips.items())
    return (f"<div class='motion' data-fps='{views.fps:.6g}'><div class='controls'>"
            "<button type='button' class='play'>pause</button> speed <select class='rate'>"
            "<option value='1'>1x</option><option value='0.5'>0.5x</option><option value='0.25'>0.25x</option>"
            "</select> <button type='button' class='step' data-step='-1'>◀ frame</button>"
            "<button type='button' class='step' data-step='1'>frame ▶</button></div>"
            f"<div class='motion-grid'>{figures}</div></div>")


def _img(src: Path, folder: Path, alt: str, cls: str = "chart") -> str:
    return f"<img class='{cls}' src='{_e(src.relative_to(folder).as_posix())}' alt='{_e(alt)}'>"


def write_report(data: ReportInput, folder: str | Path) -> Path:
    """Write the report folder; returns its ``index.html``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    keys = _keys(data)
    methods = data.methods
    body = [f"<header><h1>{_e(data.title)}</h1><p>{_e(data.summary)}</p>"]
    if data.perceptual_net:
        body.append(f"<p>Perceptual distance and tLP network: {_e(data.perceptual_net)}</p>")
    body.append("</header><section id='scores'><h2>Scores</h2>" + _table(data, keys))
    body.append("<div class='charts'>" + "".join(
        _img(charts.metric_bars(METRIC_INFO[k], {m: data.mean(m, k) for m in methods}, folder / "charts" /
                                f"bars_{k}.png"), folder, f"{METRIC_INFO[k].label} by method")
        for k in keys) + "</div></section>")
    spf = {m: data.seconds_per_frame(m) for m in methods}
    if all(v is not None for v in spf.values()) and methods:
        quality = {METRIC_INFO[k]: {m: data.mean(m, k) for m in methods} for k in ("psnr_y", "vmaf") if k in keys}
        if quality:
            chart = charts.speed_quality(spf, quality, folder / "charts" / "speed_quality.png")
            body.append("<section id='speed'><h2>Speed against quality</h2>"
                        + _img(chart, folder, "seconds per frame against quality", "chart wide")
                        + "<p class='note'>Seconds per frame on this machine, decode and a lossless encode "
                          "included.</p></section>")
    for n, clip in enumerate(data.clips):
        prefix = f"c{n}"
        versions = {TRUTH: clip.reference}
        if clip.degraded:
            versions[INPUT] = clip.degraded
        versions.update({f"m:{r.method}": r.output for r in clip.runs})
        frame_count = min(r.scores.frames for r in clip.runs) if clip.runs else 0
        body.append(f"<section class='clip' id='clip-{n}'><h2>{_e(clip.name)}</h2>")
        if len(data.clips) > 1:
            body.append(_table(data, keys, clip))
        if frame_count:
            views = make_views(versions, frame_count, folder, prefix)
            c = views.crop
            body.append(f"<h3>Before and after: frame {views.frame}</h3><p class='note'>Drag across a picture "
                        "(or move its slider): the truth (or the input) on the left of the line, the method on the "
                        "right. Lower resolutions are enlarged with nearest neighbour.</p>" + _wipes(views, clip))
            body.append(f"<h3>In motion: frames {views.first}-{views.first + views.count - 1}, looping</h3>"
                        f"<p class='note'>A {c.w}x{c.h} crop at ({c.x},{c.y}), enlarged {views.enlarge}x with "
                        "nearest neighbour; the clips play in step, so flicker shows.</p>" + _motion(views))
        curves = []
        for k in keys:
            series = {}
            for r in clip.runs:
                ys = r.scores.per_frame.get(k)
                if ys:
                    start = 1 if METRIC_INFO[k].between_frames else 0
                    series[r.method] = (list(range(start, start + len(ys))), ys)
            if series:
                curves.append(_img(charts.per_frame(METRIC_INFO[k], series, folder / "charts" / f"{prefix}_{k}.png"),
                                   folder, f"{METRIC_INFO[k].label} per frame", "chart wide"))
        if curves:
            body.append("<h3>Per frame</h3>" + "".join(curves))
        body.append("</section>")
    page = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' "
            f"content='width=device-width, initial-scale=1'><title>{_e(data.title)}</title>"
            f"<style>{_asset('report.css')}</style></head><body>{''.join(body)}"
            f"<script>{_asset('report.js')}</script></body></html>")
    index = folder / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
