"""Metrics against hand-computed values and ffmpeg's own filters; compare; benchmark; reports."""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from browser import Browser, find_chromium
from conftest import SHARED, make_clip, needs_shared, run_cli
from enhancer.media.compare import Crop, compare, compose
from enhancer.errors import EnhancerError
from enhancer.quality.evaluate import PSNR_CEILING, evaluate, frechet_distance, luma, psnr, ssim
from enhancer.media import ffmpeg as ff

SHARED_MOBILENET = SHARED / "weights" / "mobilenet_v2-b0353104.pth"
needs_imagenet = needs_shared("weights", "mobilenet_v2-b0353104.pth", alternative="ENHANCER_MOBILENET_WEIGHTS")


@pytest.fixture
def imagenet(monkeypatch):
    named = os.environ.get("ENHANCER_MOBILENET_WEIGHTS")
    if not (named and Path(named).is_file()):  # needs_imagenet: then the shared copy is there
        monkeypatch.setenv("ENHANCER_MOBILENET_WEIGHTS", str(SHARED_MOBILENET))


def test_psnr_and_ssim_by_hand():
    a = np.zeros((16, 16), np.float64)
    b = a + 5.0
    assert psnr(a, b) == pytest.approx(10 * math.log10(255 ** 2 / 25))
    assert psnr(a, a) == math.inf
    assert ssim(a + 100, a + 100) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (32, 32)).astype(np.float64)
    assert ssim(x, 255 - x) < 0.1 < ssim(x, x + rng.normal(0, 5, x.shape)) < 1.0
    rgb = np.array([[[255, 255, 255], [0, 0, 0]]], np.uint8)
    assert luma(rgb)[0, 0] == pytest.approx(235.0) and luma(rgb)[0, 1] == pytest.approx(16.0)


def _gray_frames(path: Path) -> list[np.ndarray]:
    out = subprocess.run([ff.tools().ffmpeg, "-loglevel", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt",
                          "gray", "-"], capture_output=True, check=True).stdout
    arr = np.frombuffer(out, np.uint8)
    return list(arr.reshape(-1, 64, 96))


def test_psnr_and_ssim_agree_with_ffmpeg_filters(tmp_path):
    ref = make_clip(tmp_path / "ref.mkv", size="96x64", vcodec="ffv1", pix_fmt="gray", audio=False, seconds=0.4)
    dist = make_clip(tmp_path / "dist.mkv", size="96x64", vcodec="ffv1", pix_fmt="gray", audio=False, seconds=0.4,
                     vf="noise=alls=20:allf=t,boxblur=1")
    stats_p, stats_s = tmp_path / "psnr.log", tmp_path / "ssim.log"
    subprocess.run([ff.tools().ffmpeg, "-loglevel", "error", "-i", str(dist), "-i", str(ref), "-lavfi",
                    f"[0:v][1:v]psnr=stats_file={stats_p};[0:v][1:v]ssim=stats_file={stats_s}", "-f", "null", "-"],
                   check=True)
    ff_psnr = [float(re.search(r"psnr_avg:(\S+)", ln).group(1)) for ln in stats_p.read_text().splitlines()]
    ff_ssim = [float(re.search(r"All:(\S+)", ln).group(1)) for ln in stats_s.read_text().splitlines()]
    ours = [(psnr(r, d), ssim(r, d)) for r, d in zip(_gray_frames(ref), _gray_frames(dist))]
    assert len(ours) == len(ff_psnr) == 10
    for (p, s), fp, fs in zip(ours, ff_psnr, ff_ssim):
        assert abs(p - fp) < 0.01
        assert abs(s - fs) < 0.001


def test_psnr_rgb_agrees_with_ffmpeg_on_rgb(tmp_path):
    ref = make_clip(tmp_path / "ref.mkv", size="96x64", vcodec="ffv1", pix_fmt="gbrp", audio=False, seconds=0.2)
    dist = make_clip(tmp_path / "dist.mkv", size="96x64", vcodec="ffv1", pix_fmt="gbrp", audio=False, seconds=0.2,
                     vf="noise=alls=12:allf=t")
    log = tmp_path / "p.log"
    subprocess.run([ff.tools().ffmpeg, "-loglevel", "error", "-i", str(dist), "-i", str(ref), "-lavfi",
                    f"[0:v][1:v]psnr=stats_file={log}", "-f", "null", "-"], check=True)
    ff_psnr = [float(re.search(r"psnr_avg:(\S+)", ln).group(1)) for ln in log.read_text().splitlines()]
    s = evaluate(str(ref), str(dist), metrics=("psnr_rgb",))
    assert len(s.per_frame["psnr_rgb"]) == len(ff_psnr)
    for a, b in zip(s.per_frame["psnr_rgb"], ff_psnr):
        assert abs(a - b) < 0.01


@needs_imagenet
def test_identical_inputs_score_perfectly(tmp_path, imagenet):
    clip = make_clip(tmp_path / "a.mkv", size="96x64", vcodec="ffv1", pix_fmt="yuv444p", audio=False, seconds=0.3)
    s = evaluate(str(clip), str(clip), metrics=("psnr_y", "psnr_rgb", "ssim_y", "perceptual", "tof", "tlp", "vmaf",
                                                "fid"))
    assert s.mean("psnr_y") == s.mean("psnr_rgb") == PSNR_CEILING
    assert s.mean("ssim_y") == pytest.approx(1.0)
    assert s.mean("perceptual") == pytest.approx(0.0, abs=1e-6)
    assert s.mean("tof") == pytest.approx(0.0, abs=1e-6) and s.mean("tlp") == pytest.approx(0.0, abs=1e-6)
    assert s.fid == pytest.approx(0.0, abs=1e-3)
    assert s.mean("vmaf") > 95
    assert "mobilenet_v2" in s.perceptual_net and "RANDOM" not in s.perceptual_net


@needs_imagenet
def test_worse_candidates_score_worse(tmp_path, imagenet):
    ref = make_clip(tmp_path / "ref.mkv", size="128x96", vcodec="ffv1", pix_fmt="yuv444p", audio=False, seconds=0.4)
    mild = make_clip(tmp_path / "mild.mkv", size="128x96", vcodec="ffv1", pix_fmt="yuv444p", audio=False,
                     seconds=0.4, vf="noise=alls=4:allf=t")
    bad = make_clip(tmp_path / "bad.mkv", size="128x96", vcodec="ffv1", pix_fmt="yuv444p", audio=False,
                    seconds=0.4, vf="noise=alls=40:allf=t,boxblur=2")
    m, b = (evaluate(str(ref), str(p)) for p in (mild, bad))
    assert m.mean("psnr_y") > b.mean("psnr_y") and m.mean("ssim_y") > b.mean("ssim_y")
    assert m.mean("vmaf") > b.mean("vmaf") and m.mean("perceptual") < b.mean("perceptual")
    assert m.mean("tlp") <= b.mean("tlp") + 1e-3


def test_frechet_distance_by_hand():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (500, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    b = a + np.array([3.0, 0, 0])
    assert frechet_distance(a, b) == pytest.approx(9.0, rel=1e-6)  # shifted means, same covariance
    c = a * 2.0  # ||mu||^2 + Tr(S + 4S - 2*2S) = ||mu||^2 + Tr(S)
    expected = (a.mean(0) ** 2).sum() + np.trace(np.cov(a, rowvar=False))
    assert frechet_distance(a, c) == pytest.approx(expected, rel=1e-4)


def test_mismatches_are_errors_that_say_what_differs(tmp_path):
    ref = make_clip(tmp_path / "ref.mp4", size="96x64", audio=False, seconds=0.4)
    short = make_clip(tmp_path / "short.mp4", size="96x64", audio=False, seconds=0.2)
    big = make_clip(tmp_path / "big.mp4", size="192x128", audio=False, seconds=0.4)
    with pytest.raises(EnhancerError, match="has 5 frames, the reference has 10"):
        evaluate(str(ref), str(short), metrics=("psnr_y",))
    with pytest.raises(EnhancerError, match="192x128, the reference is 96x64"):
        evaluate(str(ref), str(big), metrics=("psnr_y",))


def test_image_folders_and_cli_outputs(tmp_path):
    ref = make_clip(tmp_path / "ref.mkv", size="96x64", vcodec="ffv1", pix_fmt="yuv444p", audio=False, seconds=0.2)
    folder = tmp_path / "frames"
    folder.mkdir()
    subprocess.run([ff.tools().ffmpeg, "-loglevel", "error", "-i", str(ref), str(folder / "f_%03d.png")], check=True)
    r = run_cli("evaluate", "-r", str(ref), str(folder), "--json", "--metrics", "psnr_y,ssim_y,vmaf,tof", "-q")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)["results"][0]
    assert res["psnr_y"] > 45 and res["ssim_y"] > 0.99 and len(res["per_frame"]["psnr_y"]) == 5
    assert set(res) >= {"psnr_y", "ssim_y", "vmaf", "tof", "per_frame"}
    r = run_cli("evaluate", "-r", str(ref), str(folder), "--csv", "--metrics", "psnr_y,tof", "-q")
    rows = r.stdout.strip().splitlines()
    assert rows[0] == "candidate,frame,psnr_y,tof" and len(rows) == 6
    r = run_cli("evaluate", "-r", str(ref), str(folder), "--metrics", "psnr_y,perceptual", "--html",
                str(tmp_path / "page"), "--input", str(ref), "-q", env={"ENHANCER_MOBILENET_WEIGHTS": "",
                                                   "TORCH_HOME": str(tmp_path / "empty-torch-home")})
    assert r.returncode == 0, r.stderr
    assert re.search(r"frames\s+60\.0000\s+0\.0000\n", r.stdout)  # perceptual numbers on a fresh install
    assert "perceptual / tLP network: mobilenet_v2 (ImageNet, torchvision IMAGENET1K_V1; float16 copy" in r.stdout
    page = (tmp_path / "page" / "index.html").read_text()
    assert "<img" in page and "class='wipe'" in page and "data-input=" in page and "<video" in page
    r = run_cli("evaluate", "-r", str(ref), str(tmp_path / "nope.mkv"), "-q")
    assert r.returncode == 1 and "nope.mkv" in r.stderr


def test_compose_modes_and_nearest_upscale():
    small = np.zeros((40, 80, 3), np.uint8)
    small[::2, ::2] = 255  # a pattern nearest-neighbour keeps exactly
    big = np.full((80, 160, 3), 128, np.uint8)
    side = compose([small, big], ["a", "b"], "side")
    assert side.shape == (80, 320, 3)
    assert set(np.unique(side[40:, 40:160])) <= {0, 255}  # no blending from a smooth filter (away from the label)
    assert compose([small, big, big], ["a", "b", "c"], "grid").shape == (160, 320, 3)
    split = compose([small, big], ["a", "b"], "split")
    assert split.shape == (80, 160, 3)
    crop = compose([small, big], ["a", "b"], "side", Crop(0, 0, 8, 8))
    assert crop.shape[0] >= 8
    with pytest.raises(EnhancerError):
        compose([small, big], ["a", "b"], "side", Crop(150, 0, 20, 8))


def test_compare_video_and_still(tmp_path):
    a = make_clip(tmp_path / "a.mp4", size="96x64", seconds=0.5)
    b = make_clip(tmp_path / "b.mp4", size="192x128", seconds=0.5, audio=False)
    out = compare([str(a), str(b)], str(tmp_path / "cmp.mp4"), mode="side", progress=False)
    from enhancer.media.probe import count_frames, probe

    info = probe(str(out))
    assert (info.width, info.height) == (384, 128) and count_frames(str(out)) == 12
    assert info.audio  # the first input's sound comes along
    still = compare([str(a), str(b)], str(tmp_path / "cmp.png"), mode="split", frame=3, progress=False)
    assert cv2.imread(str(still)).shape == (128, 192, 3)
    r = run_cli("compare", str(a), str(b), "-o", str(tmp_path / "g.png"), "--mode", "grid", "--labels", "low,high",
                "--crop", "0,0,64,64")
    assert r.returncode == 0, r.stderr


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    """One small benchmark run (lanczos and the baselines on a 0.6 s clip), shared by the tests below."""
    tmp = tmp_path_factory.mktemp("bench")
    clean = make_clip(tmp / "clean.mp4", size="128x96", seconds=0.6, src="testsrc2")
    out = tmp / "bench"
    r = run_cli("benchmark", str(clean), "--models", "lanczos", "-o", str(out), "--seed", "1", "-q",
                env={"ENHANCER_MOBILENET_WEIGHTS": "", "TORCH_HOME": str(tmp / "empty-torch-home")})
    assert r.returncode == 0, r.stderr
    return out


@pytest.mark.slow
def test_benchmark_end_to_end(bench):
    table = (bench / "benchmark.md").read_text()
    for method in ("bicubic", "lanczos", "hqdn3d+lanczos", "nlmeans+lanczos"):
        assert f"| {method} |" in table
    assert table.count("| lanczos |") == 1
    assert "n/a" not in table  # perceptual columns on a fresh install: the shipped weights
    data = json.loads((bench / "benchmark.json").read_text())
    assert data["means"]["bicubic"]["psnr_y"] > 15 and "shipped" in data["perceptual_net"]
    assert (data["seed"], data["start"], data["duration"]) == (1, None, None)  # enough to run it again
    page = (bench / "report" / "index.html").read_text()
    srcs = re.findall(r"src='([^']+)'", page)
    assert srcs and all((bench / "report" / s).is_file() for s in srcs)
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", page)  # nothing from elsewhere: one folder, offline
    clips = [s for s in srcs if s.endswith(".mp4")]
    assert len(clips) == 6  # truth, input and four methods
    from enhancer.media.probe import probe

    info = probe(str(bench / "report" / clips[0]))
    assert info.codec == "h264" and info.pix_fmt == "yuv420p" and not info.audio
    assert sum((bench / "report" / c).stat().st_size for c in clips) < 2_000_000


def test_chart_precision_and_best():
    from enhancer.quality.evaluate import METRIC_INFO
    from enhancer.reports.charts import best_of, separating_decimals

    assert separating_decimals([35.4512, 35.4537, 36.0], 2) == 3
    assert separating_decimals([30.01, 30.04], 2) == 2
    assert separating_decimals([0.5, 0.5], 4) == 4  # equal values need no more
    assert best_of(METRIC_INFO["psnr_y"], {"a": 30.0, "b": 31.0, "c": None}) == {"b"}
    assert best_of(METRIC_INFO["tlp"], {"a": 0.1, "b": 0.2, "c": 0.1}) == {"a", "c"}


def _region(shot: np.ndarray, rect: dict) -> np.ndarray:
    x, y, w, h = (int(round(rect[k])) for k in ("x", "y", "width", "height"))
    return shot[y:y + h, x:x + w].astype(np.float32)


@pytest.mark.skipif(not find_chromium(), reason="no Chromium installed (.ci/run installs Debian's chromium)")
@pytest.mark.slow  # a benchmark run (the bench fixture) and Chromium
def test_report_renders_in_headless_chromium(bench, tmp_path):
    """The page as a person sees it: every picture and chart drawn, the best values marked, the wipe
    showing the truth left of its line and the method right of it, the crop clips playing in step."""
    report = bench / "report"
    shot_path = tmp_path / "report.png"
    with Browser(tmp_path / "profile", width=1280, height=1000) as b:
        b.open((report / "index.html").as_uri())
        assert all(u.startswith("file://") for u in b.requested_urls()), b.requested_urls()  # offline
        assert b.wait_for("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        heads = b.js("Array.from(document.querySelectorAll('#scores thead th')).map(t => t.textContent)")
        assert heads[1].startswith("PSNR-Y (dB)") and heads[1].endswith("↑") and any(h.endswith("↓") for h in heads)
        best = b.js("document.querySelectorAll('#scores td.best').length")
        assert best >= len(heads) - 2  # one per metric at least (ties share it); s/frame is not marked
        charts = b.js("Array.from(document.querySelectorAll('img.chart')).map(i => i.getAttribute('src'))")
        assert "charts/speed_quality.png" in charts and "charts/bars_psnr_y.png" in charts
        assert sum(c.startswith("charts/bars_") for c in charts) == len(heads) - 2
        assert b.js("document.querySelectorAll('.wipe').length") == 4
        # playing, in step: pause, step one frame, and every clip shows the same time
        assert b.wait_for("Array.from(document.querySelectorAll('video')).every(v => v.readyState >= 2 && "
                          "v.videoWidth > 0 && v.currentTime > 0 && !v.paused)", 30)
        b.js("document.querySelector('.motion button.play').click()")
        b.js("document.querySelector('.motion button.step[data-step=\"1\"]').click()")
        assert b.wait_for("(() => { const t = Array.from(document.querySelectorAll('video')).map(v => v.currentTime);"
                          " return t.every(x => Math.abs(x - t[0]) < 1e-3) && "
                          "Array.from(document.querySelectorAll('video')).every(v => v.paused && !v.seeking); })()")
        # the wipe: the line at 30%, then against the input
        b.js("(() => { const r = document.querySelector('.wipe input[type=range]'); r.value = 30;"
             " r.dispatchEvent(new Event('input')); document.querySelector('.wipe').scrollIntoView(); })()")
        rect = b.js("(() => { const r = document.querySelector('.wipe .wipe-view').getBoundingClientRect();"
                    " return {x: r.x, y: r.y, width: r.width, height: r.height}; })()")
        srcs = b.js("[document.querySelector('.wipe img.before').getAttribute('src'),"
                    " document.querySelector('.wipe img.after').getAttribute('src')]")
        b.screenshot(shot_path, full_page=False)  # what is on the screen, the wipe in view
        b.screenshot(tmp_path / "report-page.png")  # the whole page, for people to look at
        b.js("document.querySelector('.wipe button[data-against=input]').click()")
        assert b.wait_for("document.querySelector('.wipe img.before').getAttribute('src').includes('_input_')")
    shot = cv2.imread(str(shot_path))[..., ::-1]
    view = _region(shot, rect)
    h, w = view.shape[:2]
    truth, method = (cv2.resize(cv2.imread(str(report / s))[..., ::-1], (w, h), interpolation=cv2.INTER_NEAREST)
                     .astype(np.float32) for s in srcs)
    left, right = slice(int(0.05 * w), int(0.25 * w)), slice(int(0.35 * w), int(0.95 * w))
    for part, shows, hides in ((left, truth, method), (right, method, truth)):
        err_shows = np.abs(view[20:, part] - shows[20:, part]).mean()  # below the labels
        err_hides = np.abs(view[20:, part] - hides[20:, part]).mean()
        assert err_shows < 6 and err_shows < err_hides, (err_shows, err_hides)
