"""The warping error (Lai et al. 2018) of enhancer.quality.warping, on synthetic clips whose motion and
occlusions are known: a perfect copy scores about zero, flicker scores far above a steady error,
pixels the motion uncovers are left out, and a steady offset is not flicker. Then evaluate, its
CSV/JSON and benchmark's table carry it."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from conftest import run_cli
from enhancer.quality import evaluate as ev
from enhancer.quality import warping as wp


def _texture(h: int, w: int, sigma: float = 1.5, lo: float = 30, hi: float = 220, seed: int = 0) -> np.ndarray:
    """Smooth random RGB texture (float32) in [lo, hi]."""
    x = cv2.GaussianBlur(np.random.default_rng(seed).uniform(0, 1, (h, w, 3)).astype(np.float32), (0, 0), sigma)
    x = (x - x.min()) / (x.max() - x.min())
    return lo + (hi - lo) * x


def _pan(n: int = 6, step: int = 2, h: int = 96, w: int = 128, lo: float = 30, hi: float = 220) -> list[np.ndarray]:
    """A camera panning right over a texture, ``step`` whole pixels a frame (uint8 RGB)."""
    big = _texture(h + 8, w + step * n + 8, lo=lo, hi=hi)
    return [np.round(big[4:4 + h, 4 + step * t:4 + step * t + w]).astype(np.uint8) for t in range(n)]


def _clip_error(cand: list[np.ndarray], ref: list[np.ndarray]) -> list[float]:
    return [wp.warping_error(cand[t - 1], cand[t], ref[t - 1], ref[t]) for t in range(1, len(ref))]


def _noisy(frames: list[np.ndarray], sigma: float, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)  # new noise in every frame: flicker
    return [np.clip(f + rng.normal(0, sigma, f.shape), 0, 255).round().astype(np.uint8) for f in frames]


def test_a_perfect_copy_of_a_moving_reference_scores_zero():
    ref = _pan(step=2)
    errs = _clip_error(ref, ref)
    # the flow is followed to a small fraction of a pixel: what is left is below an RMS of a
    # quarter of a level, against 0.49 for noise of 4 levels
    assert len(errs) == 5 and max(errs) < 0.005, errs
    assert np.mean(_clip_error(_noisy(ref, 4), ref)) > 100 * max(errs)


def test_flicker_scores_far_above_a_steady_error():
    ref = _pan(step=2)
    noise = np.mean(_clip_error(_noisy(ref, 4), ref))
    # Lai's E of independent noise of sigma s in every frame is 2 s^2 (on 0..1), here x 1000
    assert noise == pytest.approx(2 * 4 ** 2 / 255 ** 2 * 1000, rel=0.15)
    blurred = [cv2.GaussianBlur(f, (0, 0), 1.2) for f in ref]  # wrong, but wrong the same way each frame
    steady = np.mean(_clip_error(blurred, ref))
    assert ev.psnr(blurred[2], ref[2]) < 40  # a real error, not a tiny one
    assert noise > 20 * steady
    # brightness that pumps frame to frame (+-4 levels) is flicker too, however smooth the picture
    pumping = [np.clip(f.astype(int) + (4 if t % 2 else -4), 0, 255).astype(np.uint8) for t, f in enumerate(ref)]
    assert np.mean(_clip_error(pumping, ref)) > 50 * np.mean(_clip_error(ref, ref))


def test_a_constant_offset_in_every_frame_is_not_flicker():
    ref = _pan(step=2)
    for offset in (12, -20):
        biased = [(f.astype(int) + offset).astype(np.uint8) for f in ref]  # 30..220: no clipping
        assert _clip_error(biased, ref) == pytest.approx(_clip_error(ref, ref), abs=1e-12)
    drifting = [(f.astype(int) + 3 * t).astype(np.uint8) for t, f in enumerate(ref)]  # 3 levels a frame
    assert np.mean(_clip_error(drifting, ref)) > 20 * np.mean(_clip_error(ref, ref))


def _blocks(h: int, w: int, lo: float, hi: float, seed: int) -> np.ndarray:
    """A high-contrast texture of 3x3 blocks (no two places alike), gray RGB float32."""
    r = np.random.default_rng(seed)
    x = r.choice([lo, hi], (h // 3 + 1, w // 3 + 1)).astype(np.float32)
    x = cv2.resize(x, ((w // 3 + 1) * 3, (h // 3 + 1) * 3), interpolation=cv2.INTER_NEAREST)[:h, :w]
    return np.repeat(cv2.GaussianBlur(x, (0, 0), 0.8)[..., None], 3, 2)


def test_pixels_the_motion_uncovers_are_left_out():
    """A square slides 8 px a frame over a still background: the strip of background it uncovers in
    frame t was hidden in frame t-1, so nothing there can be compared along the motion."""
    h, w = 120, 160
    bg, square = _blocks(h, w, 30, 130, 1), _blocks(40, 40, 150, 250, 2)

    def frame(t: int) -> np.ndarray:
        f = bg.copy()
        f[40:80, 20 + 8 * t:60 + 8 * t] = square
        return f.astype(np.uint8)

    ref = [frame(t) for t in range(4)]
    rng = np.random.default_rng(3)
    for t in (1, 2, 3):
        masks: list[np.ndarray] = []
        floor = wp.warping_error(ref[t - 1], ref[t], ref[t - 1], ref[t], mask_out=masks)
        uncovered = np.zeros((h, w), bool)
        uncovered[40:80, 20 + 8 * (t - 1):20 + 8 * t] = True
        assert masks[0][uncovered].mean() < 0.05 and masks[0][:30].mean() > 0.9  # out; the still top in
        # what the plain warp would count there: the square where the background now is
        flow = wp.farneback(*(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (ref[t], ref[t - 1])))
        warped = cv2.remap(ref[t - 1], wp._grid(h, w) + flow, None, cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
        assert np.mean((warped[uncovered].astype(float) - ref[t][uncovered]) ** 2) / 255 ** 2 * 1000 > 20
        # noise in the uncovered strip does not count; the same noise on a visible strip does
        for where, counted in ((uncovered, False), (np.s_[90:98, 60:100], True)):
            cand = ref[t].copy()
            cand[where] = np.clip(cand[where] + rng.normal(0, 20, cand[where].shape), 0, 255).astype(np.uint8)
            e = wp.warping_error(ref[t - 1], cand, ref[t - 1], ref[t])
            assert (e > floor + 0.05) == counted, (t, counted, e, floor)


def test_fine_flicker_counts_at_full_size_when_the_flow_runs_smaller():
    """Frames larger than evaluate's analysis size: flow and mask at that size, the warp and the
    differences at full size, so noise of one pixel is not averaged away."""
    ref = _pan(4, step=4, h=360, w=640)
    size = ev.analysis_size(640, 360)
    assert size[0] * size[1] < 640 * 360
    gray = [ev._shrink(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), size) for f in ref]
    noisy = _noisy(ref, 4)
    e = [wp.warping_error(noisy[t - 1], noisy[t], ref[t - 1], ref[t], gray[t - 1], gray[t]) for t in (1, 2, 3)]
    assert np.mean(e) == pytest.approx(2 * 16 / 255 ** 2 * 1000, rel=0.15)
    same = [wp.warping_error(ref[t - 1], ref[t], ref[t - 1], ref[t], gray[t - 1], gray[t]) for t in (1, 2, 3)]
    assert max(same) < 0.05


def _folder(path, frames: list[np.ndarray]):
    path.mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(path / f"{i:03d}.png"), f[..., ::-1])
    return path


def test_evaluate_scores_warp_by_default_and_reports_it(tmp_path):
    assert "warp" in ev.METRICS and ev.METRIC_INFO["warp"].between_frames
    from enhancer.cli.quality import _METRICS

    assert _METRICS == ev.METRICS  # the CLI's default list, kept apart for its start-up time
    ref = _pan(6, step=2)
    ref_dir, cand_dir = _folder(tmp_path / "ref", ref), _folder(tmp_path / "cand", _noisy(ref, 4))
    same = ev.evaluate(str(ref_dir), str(ref_dir), metrics=("warp",))
    assert len(same.per_frame["warp"]) == 5 and same.mean("warp") < 0.005
    s = ev.evaluate(str(ref_dir), str(cand_dir), metrics=("tof", "warp", "psnr_y"))
    assert s.per_frame["warp"] == pytest.approx(_clip_error(_noisy(ref, 4), ref), abs=1e-12)
    assert len(s.per_frame["tof"]) == 5 and s.mean("warp") > 0.3
    alone = ev.evaluate(str(ref_dir), str(cand_dir), metrics=("tof",))  # tOF unchanged by the sharing
    assert alone.per_frame["tof"] == s.per_frame["tof"]
    r = run_cli("evaluate", "-r", str(ref_dir), str(cand_dir), "--json", "--metrics", "psnr_y,warp", "-q")
    res = json.loads(r.stdout)["results"][0]
    assert res["warp"] == pytest.approx(s.mean("warp")) and len(res["per_frame"]["warp"]) == 5


def test_benchmark_table_has_a_warping_error_column():
    from enhancer.reports.benchmark import BenchmarkResult, MethodResult

    sc = ev.Scores(candidate="x", frames=3, per_frame={"psnr_y": [30.0, 31.0, 32.0], "warp": [0.25, 0.75]})
    res = BenchmarkResult(preset="web", scale=2, clips=["c"], methods=["m"], metrics=("psnr_y", "tof", "warp"),
                          results=[MethodResult("m", "c", "out", 0.1, sc)])
    head, _, row = res.markdown().splitlines()
    assert "warping error ↓" in head and row.startswith("| m | 31.00 | n/a | 0.5000 |")
    assert res.to_dict()["means"]["m"]["warp"] == 0.5
