"""evaluate's fast paths give what the straightforward computations give; the frame-difference
error; the bounded analysis size; VMAF's progress; benchmark's --metrics, its bar, and a bad clip
that does not stop it; one-line refusals (audio-only reference, frames too small to degrade)."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from conftest import MAKER, make_clip, run_cli
from enhancer.quality import evaluate as ev
from enhancer.quality.features import PerceptualDistance, _mobilenet_v2_features, perceptual


def _ssim_reference(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """ffmpeg's (x264's) SSIM as numpy sums over 4x4 blocks and 8x8 windows: the code before."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    h4, w4 = a.shape[0] // 4, a.shape[1] // 4

    def blocks(x):
        return x[:h4 * 4, :w4 * 4].reshape(h4, 4, w4, 4).sum(axis=(1, 3))

    def pairs(x):
        return x[:-1, :-1] + x[1:, :-1] + x[:-1, 1:] + x[1:, 1:]

    s1, s2, ss, s12 = (pairs(v) for v in (blocks(a), blocks(b), blocks(a * a) + blocks(b * b), blocks(a * b)))
    c1, c2 = (0.01 * peak) ** 2 * 64, (0.03 * peak) ** 2 * 64 * 63
    var, cov = ss * 64 - s1 * s1 - s2 * s2, s12 * 64 - s1 * s2
    return float((((2 * s1 * s2 + c1) * (2 * cov + c2)) / ((s1 * s1 + s2 * s2 + c1) * (var + c2))).mean())


@pytest.mark.parametrize("shape", [(64, 96), (67, 101), (8, 8), (540, 960)])
def test_psnr_and_ssim_fast_paths_equal_the_plain_sums(shape):
    rng = np.random.default_rng(shape[0])
    a = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    assert ev.psnr(a, b) == pytest.approx(10 * math.log10(255 ** 2 / mse), abs=1e-9)
    assert ev.psnr(a[:, ::2], b[:, ::2]) > 0  # a strided view takes the numpy path
    ya, yb = ev.luma(a), ev.luma(b)
    x = a.astype(np.float64) / 255
    assert np.allclose(ya, 16 + 65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2], rtol=0, atol=1e-12)
    assert ev.ssim(ya, yb) == pytest.approx(_ssim_reference(ya, yb), abs=1e-12)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A reference and a flickering, noisy candidate of it (lossless, 96x64, 8 frames)."""
    tmp = tmp_path_factory.mktemp("pair")
    ref = make_clip(tmp / "ref.mkv", size="96x64", vcodec="ffv1", pix_fmt="yuv444p", audio=False, seconds=0.32)
    cand = make_clip(tmp / "cand.mkv", size="96x64", vcodec="ffv1", pix_fmt="yuv444p", audio=False, seconds=0.32,
                     vf="noise=alls=12:allf=t,eq=brightness='0.04*sin(n*2)':eval=frame,boxblur=1")
    return ref, cand


def _frames(path) -> list[np.ndarray]:
    return list(ev.frames(str(path)))


def test_frame_difference_error_by_hand(pair):
    ref, cand = pair
    s = ev.evaluate(str(ref), str(cand), metrics=("fde", "psnr_y"))
    r, c = [ev.luma(f) for f in _frames(ref)], [ev.luma(f) for f in _frames(cand)]
    expected = [float(np.mean(np.abs((c[t] - c[t - 1]) - (r[t] - r[t - 1])))) for t in range(1, len(r))]
    assert len(s.per_frame["fde"]) == len(r) - 1 == 7
    assert np.allclose(s.per_frame["fde"], expected, atol=1e-9)
    assert s.mean("fde") > 1  # the flicker shows
    same = ev.evaluate(str(ref), str(ref), metrics=("fde",))
    assert same.mean("fde") == 0.0


def test_perceptual_and_tlp_equal_the_pairwise_distances(pair):
    """Each frame goes through the network once, in batches; the values are those of the
    distance computed pair by pair, as before."""
    ref, cand = pair
    s = ev.evaluate(str(ref), str(cand), metrics=("perceptual", "tlp"))
    dist = perceptual()

    def t(x):
        return torch.from_numpy(x).permute(2, 0, 1)[None].float() / 255

    r, c = _frames(ref), _frames(cand)
    with torch.inference_mode(), ev._torch_threads(1):  # spinning OpenMP threads crawl on a loaded machine
        lp = [float(dist(t(a), t(b))[0]) for a, b in zip(r, c)]
        tlp = [abs(float(dist(t(c[k - 1]), t(c[k]))[0]) - float(dist(t(r[k - 1]), t(r[k]))[0]))
               for k in range(1, len(r))]
    assert np.allclose(s.per_frame["perceptual"], lp, rtol=1e-4, atol=1e-6)
    assert np.allclose(s.per_frame["tlp"], tlp, rtol=1e-3, atol=1e-5)
    assert s.mean("perceptual") > 0.01


@pytest.mark.slow
def test_taps_and_between_are_the_distance():
    a, b = torch.rand(3, 3, 40, 56), torch.rand(3, 3, 40, 56)
    dist = PerceptualDistance(allow_random=True)
    with torch.inference_mode(), ev._torch_threads(1):
        assert torch.allclose(dist(a, b), dist.between(dist.taps(a), dist.taps(b)))
    lpips = pytest.importorskip("lpips")
    net = PerceptualDistance.__new__(PerceptualDistance)
    torch.nn.Module.__init__(net)
    net.lpips = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()  # calibration weights ship with lpips
    with torch.inference_mode(), ev._torch_threads(1):
        assert torch.allclose(net(a, b), net.between(net.taps(a), net.taps(b)), atol=1e-6)
    folded = perceptual().for_scoring()  # batch norms folded: the same distance
    with torch.inference_mode(), ev._torch_threads(1):
        assert torch.allclose(perceptual()(a, b), folded.between(folded.taps(a), folded.taps(b)), rtol=1e-5)


@pytest.mark.slow
def test_mobilenet_is_torchvisions_without_importing_it():
    tv = pytest.importorskip("torchvision.models")
    theirs = tv.mobilenet_v2(weights=None).eval()
    ours = _mobilenet_v2_features().eval()
    ours.load_state_dict({k[len("features."):]: v for k, v in theirs.state_dict().items() if k.startswith("features.")})
    x = torch.rand(2, 3, 64, 80)
    with torch.inference_mode(), ev._torch_threads(1):
        assert torch.equal(theirs.features(x), ours(x))
    code = ("import sys; from enhancer.quality.features import perceptual; perceptual(); "
            "assert 'torchvision' not in sys.modules, 'torchvision imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_analysis_size():
    assert ev.analysis_size(960, 540) == (320, 180)
    assert ev.analysis_size(320, 180) == (320, 180) and ev.analysis_size(176, 144) == (176, 144)
    w, h = ev.analysis_size(1920, 800)
    assert w * h <= ev.ANALYSIS_PIXELS * 1.01 and abs(w / h - 2.4) < 0.02
    assert ev.analysis_size(1920, 1080, None) == (1920, 1080)


def test_tof_at_the_analysis_size_and_at_full_size(pair):
    """Farneback on frames shrunk to the analysis size, vectors in the frame's own pixels; with
    analysis_pixels=None, TecoGAN's tOF on whole frames."""
    ref, cand = pair
    r, c = _frames(ref), _frames(cand)
    gray = [(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)) for a, b in zip(r, c)]

    def farneback(x, y):
        return cv2.calcOpticalFlowFarneback(x, y, None, 0.5, 3, 15, 3, 5, 1.2, 0)

    full = [float(np.abs(farneback(gray[k - 1][1], gray[k][1]) - farneback(gray[k - 1][0], gray[k][0])).mean())
            for k in range(1, len(r))]
    s = ev.evaluate(str(ref), str(cand), metrics=("tof",), analysis_pixels=None)
    assert np.allclose(s.per_frame["tof"], full, rtol=1e-6)
    assert ev.evaluate(str(ref), str(cand), metrics=("tof",)).per_frame["tof"] == s.per_frame["tof"]  # under the bound

    small = [tuple(cv2.resize(g, (48, 32), interpolation=cv2.INTER_AREA) for g in p) for p in gray]
    shrunk = []
    for k in range(1, len(r)):
        d = np.abs(farneback(small[k - 1][1], small[k][1]) - farneback(small[k - 1][0], small[k][0]))
        shrunk.append(float((d[..., 0] * 2).mean() + (d[..., 1] * 2).mean()) / 2)  # 96/48 and 64/32
    s2 = ev.evaluate(str(ref), str(cand), metrics=("tof",), analysis_pixels=48 * 32)
    assert np.allclose(s2.per_frame["tof"], shrunk, rtol=1e-6)


def test_vmaf_pass_reports_progress(pair, capsys):
    from enhancer import progress

    ref, cand = pair
    with progress.using("json"):
        values = ev.vmaf(str(ref), str(cand), progress=True, total=8)
    assert len(values) == 8
    lines = [json.loads(ln) for ln in capsys.readouterr().err.splitlines() if ln.startswith("{")]
    assert lines and all(ln["progress"] == "VMAF" for ln in lines)
    assert lines[-1]["stage"] == "end" and lines[-1]["done"] == 8 and lines[-1]["total"] == 8


def test_vmaf_runs_beside_the_other_metrics_with_the_same_values(pair, capsys):
    """evaluate starts VMAF's ffmpeg pass with the first frame, beside its own; the values are
    those of a pass on its own, and a bar follows it where it is still running at the end."""
    from enhancer import progress

    ref, cand = pair
    alone = ev.vmaf(str(ref), str(cand))
    with progress.using("json"):
        s = ev.evaluate(str(ref), str(cand), metrics=("psnr_y", "vmaf"), progress=True)
    assert s.per_frame["vmaf"] == alone and len(alone) == 8
    lines = [json.loads(ln) for ln in capsys.readouterr().err.splitlines() if ln.startswith("{")]
    assert lines[-1]["stage"] == "end" and lines[-1]["done"] == lines[-1]["total"] == 8


def test_a_failed_pass_stops_vmafs_ffmpeg(pair, monkeypatch):
    """Where the frame-by-frame pass fails (here: its third frame), VMAF's ffmpeg beside it is
    stopped and its thread ends; the error is the pass's own."""
    from enhancer.quality import vmaf as vm

    ref, cand = pair
    started, real_luma, calls = [], ev.luma, []

    class Watched(vm.VmafBeside):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            started.append(self)

    def failing_luma(img):
        calls.append(1)
        if len(calls) > 4:  # two calls a frame
            raise RuntimeError("the pass broke")
        return real_luma(img)

    monkeypatch.setattr(ev, "VmafBeside", Watched)
    monkeypatch.setattr(ev, "luma", failing_luma)
    with pytest.raises(RuntimeError, match="the pass broke"):
        ev.evaluate(str(ref), str(cand), metrics=("psnr_y", "vmaf"))
    assert len(started) == 1 and started[0].cancel.is_set() and not started[0]._thread.is_alive()


def test_csv_table_and_json_carry_fde(pair):
    ref, cand = pair
    r = run_cli("evaluate", "-r", str(ref), str(cand), "--csv", "--metrics", "psnr_y,fde", "-q")
    assert r.returncode == 0, r.stderr
    rows = [row.split(",") for row in r.stdout.strip().splitlines()]
    assert rows[0] == ["candidate", "frame", "psnr_y", "fde"]
    assert rows[1][3] == "" and all(row[3] for row in rows[2:])  # a value between frames k-1 and k, from k = 1
    r = run_cli("evaluate", "-r", str(ref), str(cand), "--json", "--metrics", "fde")
    res = json.loads(r.stdout)["results"][0]
    assert res["fde"] > 1 and len(res["per_frame"]["fde"]) == 7
    r = run_cli("evaluate", "-r", str(ref), str(ref), "--metrics", "psnr_y,fde", "-q")
    assert r.stdout.splitlines()[0].split()[1:] == ["psnr_y", "fde"] and " 0.0000" in r.stdout


def test_audio_only_reference_is_one_clear_line(tmp_path, pair):
    audio = tmp_path / "sound.m4a"
    subprocess.run([MAKER, "-loglevel", "error", "-f", "lavfi", "-i", "sine=d=0.5", str(audio)], check=True)
    r = run_cli("evaluate", "-r", str(audio), str(pair[1]), "-q")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [f"error: {audio}: has no video stream (an audio-only file)"]


@pytest.mark.parametrize("size", ["1x1", "3x3"])
def test_degrade_of_tiny_frames_is_one_clear_line(tmp_path, size):
    clip = make_clip(tmp_path / "tiny.mkv", size=size, vcodec="ffv1", pix_fmt="yuv444p", audio=False, seconds=0.2,
                     src="testsrc")
    for scale in ("1", "2"):
        r = run_cli("degrade", str(clip), "-o", str(tmp_path / "out.mp4"), "--scale", scale, "-q")
        assert r.returncode == 1, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "too small to degrade" in lines[0] and "Traceback" not in r.stderr
    assert not (tmp_path / "out.mp4").exists()


def test_benchmark_scores_the_good_clips_past_a_bad_one(tmp_path, capsys):
    from enhancer import progress
    from enhancer.reports.benchmark import BASELINES, run_benchmark, write_outputs

    tiny = make_clip(tmp_path / "tiny.mkv", size="3x3", vcodec="ffv1", pix_fmt="yuv444p", audio=False, seconds=0.2,
                     src="testsrc")
    good = make_clip(tmp_path / "good.mp4", size="64x48", seconds=0.2, audio=False)
    with progress.using("json"):
        res = run_benchmark([str(tiny), str(good)], str(tmp_path / "b"), metrics=("psnr_y", "fde"), progress=True)
    assert list(res.failed) == [str(tiny)] and "too small to degrade" in res.failed[str(tiny)]
    assert {r.clip for r in res.results} == {"good"} and len(res.results) == len(BASELINES)
    assert all(set(r.scores.per_frame) == {"psnr_y", "fde"} for r in res.results)
    table = res.markdown().splitlines()
    assert table[0].startswith("| method | PSNR-Y ↑ | frame-difference error ↓ | s/frame |") and len(table) == 6
    bars = [json.loads(ln) for ln in capsys.readouterr().err.splitlines() if ln.startswith("{")]
    ends = [b for b in bars if b["progress"] == "benchmark" and b["stage"] == "end"]
    assert ends and ends[-1]["done"] == ends[-1]["total"] == 2 * (len(BASELINES) + 1)
    data = json.loads(write_outputs(res, str(tmp_path / "b"))["json"].read_text())
    assert data["metrics"] == ["psnr_y", "fde"] and set(data["means"]["bicubic"]) == {"psnr_y", "fde",
                                                                                     "seconds_per_frame"}
    assert str(tiny) in data["failed"]


@pytest.mark.slow
def test_benchmark_cli_exit_codes(tmp_path):
    clip = make_clip(tmp_path / "tiny.mkv", size="3x3", vcodec="ffv1", pix_fmt="yuv444p", audio=False, seconds=0.2,
                     src="testsrc")
    r = run_cli("benchmark", str(clip), "--metrics", "psnr_y,nope", "-o", str(tmp_path / "b"), "-q")
    assert r.returncode == 2 and "nope" in r.stderr
    r = run_cli("benchmark", str(clip), "--models", "lanczos", "--metrics", "psnr_y", "-o", str(tmp_path / "b"), "-q")
    assert r.returncode == 1 and "too small to degrade" in r.stderr and "Traceback" not in r.stderr
