"""The aligned-fusion generator: motion alignment, shapes, seamless chunks and tiles, training."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import make_clip, run_cli
from enhancer.restore import weights
from enhancer.data.dataset import ClipDataset, PrepareConfig, prepare
from enhancer.restore.neural import ModelRestorer
from enhancer.media.probe import probe
from enhancer.models.align import align_stacks, flow, luma8, warp
from enhancer.models.fusion import FusionConfig, FusionGenerator, fusion_complexity
from enhancer.train import checkpoint as ckpt
from enhancer.train.config import TrainConfig
from enhancer.train.batches import _Batches
from enhancer.train.trainer import train

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))  # tools/gpu_window.py

TINY = dict(channels=8, low_channels=8, low_blocks=1, high_blocks=1)


def tiny_fusion(scale: int = 2, seed: int = 0) -> FusionGenerator:
    torch.manual_seed(seed)
    g = FusionGenerator(FusionConfig(scale=scale, **TINY))
    with torch.no_grad():
        for p in g.parameters():
            p.normal_(0, 0.2)
    return g.eval()


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Noise with detail at every scale from 4 to 64 pixels, as natural images have."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.float32)
    for cell in (64, 32, 16, 8, 4):
        small = rng.random((h // cell + 2, w // cell + 2, 3)).astype(np.float32) - 0.5
        img += cv2.resize(small, (w + 2 * cell, h + 2 * cell), interpolation=cv2.INTER_CUBIC)[:h, :w] * 0.35
    return np.clip(img + 0.5, 0, 1)


def _pan(n: int, h: int, w: int, step: int, seed: int = 0) -> np.ndarray:
    """n frames of a wide texture seen through a window moving ``step`` pixels a frame."""
    big = _texture(h, w + step * n + 8, seed)
    return np.stack([big[:, step * t:step * t + w] for t in range(n)])


@pytest.mark.parametrize("step", [3, 16, 32])
def test_alignment_undoes_a_pan(step):
    frames = _pan(5, 96, 160, step)
    stacks = align_stacks(frames, 2)  # one stack, centred on frame 2
    assert stacks.shape == (1, 5, 96, 160, 3)
    inner = (slice(8, -8), slice(2 * step + 8, 160 - 2 * step - 8))
    for k in range(5):
        err = np.abs(stacks[0, k][inner] - frames[2][inner]).mean()
        raw = np.abs(frames[k][inner] - frames[2][inner]).mean()
        assert err < 0.01 and (k == 2 or err < raw / 5), (k, err, raw)


def test_flow_direction_and_large_frames(monkeypatch):
    frames = _pan(2, 64, 96, 5)
    f = flow(luma8(frames[0]), luma8(frames[1]))
    assert np.median(f[..., 0]) == pytest.approx(-5, abs=0.2)  # frame 0 at x is frame 1 at x - 5
    monkeypatch.setattr("enhancer.models.align.FLOW_MAX_SIDE", 48)  # estimated downscaled, scaled back
    f = flow(luma8(frames[0]), luma8(frames[1]))
    assert f.shape == (64, 96, 2) and np.median(f[..., 0]) == pytest.approx(-5, abs=0.5)
    assert np.abs(warp(frames[1], f)[8:-8, 16:-16] - frames[0][8:-8, 16:-16]).mean() < 0.02


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_fusion_shapes_and_start_as_bicubic(scale):
    g = tiny_fusion(scale)
    x = torch.rand(3, 15, 11, 13)  # odd sizes go through the half-resolution branch too
    assert g(x).shape == (3, 3, 11 * scale, 13 * scale)
    fresh = FusionGenerator(FusionConfig(scale=scale, **TINY)).eval()
    centre = x[:, 6:9]
    base = centre if scale == 1 else torch.nn.functional.interpolate(centre, scale_factor=scale, mode="bicubic",
                                                                     align_corners=False)
    assert torch.allclose(fresh(x), base, atol=1e-6)


def test_spatial_radius_bounds_the_receptive_field():
    g = tiny_fusion(2).double()
    x = torch.rand(1, 15, 64, 64, dtype=torch.float64)
    y = g(x)
    x2 = x.clone()
    x2[..., 32, 32] += 1
    changed = (g(x2) - y).abs().amax(dim=(0, 1)) > 0
    rows = changed.any(dim=1).nonzero().flatten()
    reach = max(32 - int(rows.min()) // 2, int(rows.max()) // 2 - 32)
    assert 0 < reach <= g.spatial_radius


def test_each_output_frame_sees_two_neighbours_each_side():
    g = tiny_fusion(2).double()
    x = torch.rand(1, 15, 16, 16, dtype=torch.float64)
    y = g(x)
    for k in range(5):
        x2 = x.clone()
        x2[:, 3 * k:3 * k + 3] += 0.5
        assert (g(x2) - y).abs().max() > 1e-6, k


def test_chunks_and_tiles_are_invisible():
    g = tiny_fusion(2)
    frames = (_pan(12, 45, 61, 2) * 255).astype(np.uint8)
    whole = ModelRestorer(g, device="cpu", precision="fp32", tile=0, chunk=8)
    ref = whole.forward_stacks(frames.astype(np.float32) / 255)  # 8 output frames
    tiled = ModelRestorer(g, device="cpu", precision="fp32", tile=16)
    assert torch.allclose(tiled.forward_stacks(frames.astype(np.float32) / 255), ref, atol=1e-5)
    part = whole.forward_stacks(frames[3:10].astype(np.float32) / 255)  # centres 5..7 of the whole
    assert torch.allclose(part, ref[3:6], atol=1e-5)
    out = whole.restore(frames)
    assert out.dtype == np.uint8 and out.shape == (8, 90, 122, 3)
    deep = whole.restore(frames.astype(np.uint16) * 257)
    assert deep.dtype == np.uint16 and np.abs(deep.astype(int) // 257 - out).max() <= 1


def test_stacks_are_made_a_few_frames_at_a_time(monkeypatch):
    monkeypatch.setattr("enhancer.restore.neural.STACK_BYTES", 5 * 45 * 61 * 3 * 4 * 2)  # two stacks at a time
    g = tiny_fusion(2)
    frames = (_pan(9, 45, 61, 2) * 255).astype(np.uint8)
    calls = []
    import enhancer.restore.neural as neural

    real = neural.align_stacks
    monkeypatch.setattr(neural, "align_stacks", lambda f, r, centres: calls.append(centres) or real(f, r, centres))
    out = ModelRestorer(g, device="cpu", precision="fp32", tile=0).restore(frames)
    assert out.shape[0] == 5 and calls == [[2, 3], [4, 5], [6]]


def test_complexity_of_the_shipped_sizes():
    s = fusion_complexity(FusionConfig())
    assert 400_000 < s["params"] < 800_000 and s["macs_per_output_pixel"] < 60_000


# ---- training ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pan_set(tmp_path_factory):
    d = tmp_path_factory.mktemp("media")
    img = (_texture(240, 320, 3) * 255).astype(np.uint8)
    cv2.putText(img, "pan", (40, 140), cv2.FONT_HERSHEY_SIMPLEX, 3, (255, 255, 255), 5)
    cv2.imwrite(str(d / "p.png"), img)
    out = d / "set.npz"
    prepare(PrepareConfig(sources=[str(d)], out=str(out), sequences=10, frames=7, hr_size=48, scale=2, versions=1,
                          seed=0), progress=False)
    return out


def test_aligned_batches_are_seeded_by_step_and_rank(pan_set):
    ds = ClipDataset([pan_set, pan_set])  # two sets are read as one
    assert len(ds) == 20 and np.array_equal(ds.clean(12), ds.clean(2))
    cfg = TrainConfig(data=str(pan_set), model="fusion-s", batch=2, frames_out=2, crop=16, seed=3)
    a = _Batches(ds, cfg, np.arange(18), 2, True, rank=0, first=0)
    lq, hr = a.make(5)
    assert lq.shape == (2, 2, 15, 16, 16) and hr.shape == (2, 3, 2, 32, 32)
    assert torch.equal(a.make(5)[0], lq)
    assert not torch.equal(_Batches(ds, cfg, np.arange(18), 2, True, rank=1, first=0).make(5)[0], lq)
    centre = lq[:, :, 6:9].transpose(1, 2)  # (B, 3, T, h, w): the stacks' centres are the damaged frames
    down = torch.nn.functional.avg_pool2d(hr.flatten(1, 2), 2).reshape(centre.shape)
    assert (down - centre).abs().mean() < 0.1


def test_misalignment_is_a_smooth_field_of_the_asked_size():
    from enhancer.models.align import misalignment
    f = misalignment(np.random.default_rng(0), 48, 64, 2.0)
    assert f.shape == (48, 64, 2) and f.dtype == np.float32
    assert np.sqrt((f ** 2).sum(-1).mean()) == pytest.approx(2.0, rel=1e-4)
    step = np.abs(np.diff(f, axis=1)).mean()  # smooth: neighbouring pixels move almost alike
    assert step < 0.25 * np.abs(f).mean()


def test_a_perturbed_alignment_no_longer_matches_the_centre():
    from enhancer.models.align import align_stacks, misalignment
    tex = _texture(80, 120, 3)
    frames = np.stack([np.roll(tex, 3 * t, axis=1) for t in range(5)]).astype(np.float32)  # a rigid pan
    inner = (slice(None), slice(None), slice(16, -16), slice(16, -16))

    def error(stacks):
        return float(np.abs(stacks[:, [0, 1, 3, 4]] - stacks[:, 2:3])[inner].mean())

    exact = error(align_stacks(frames, 2))
    rng = np.random.default_rng(0)
    moved = error(align_stacks(frames, 2, perturb=lambda fl: fl + misalignment(rng, *fl.shape[:2], 2.0)))
    assert exact < 0.02 and moved > 3 * exact


def test_misaligned_batches_disturb_about_half_the_samples(pan_set, monkeypatch):
    import enhancer.models.align as align
    real, calls = align.misalignment, []

    def spy(rng, h, w, amplitude, cell=8):
        calls.append(amplitude)
        return real(rng, h, w, amplitude, cell)

    monkeypatch.setattr(align, "misalignment", spy)
    ds = ClipDataset([pan_set])
    plain = ds.aligned_batch(np.random.default_rng(7), 4, 2, 2, 16)[0]
    assert torch.equal(ds.aligned_batch(np.random.default_rng(7), 4, 2, 2, 16, misalign=0.0)[0], plain)
    assert not calls
    lq = ds.aligned_batch(np.random.default_rng(7), 16, 2, 2, 16, misalign=3.0)[0]
    assert torch.equal(ds.aligned_batch(np.random.default_rng(7), 16, 2, 2, 16, misalign=3.0)[0], lq)  # seeded
    per_sample = 2 * 4  # two output frames, four neighbours each
    assert len(calls) % per_sample == 0 and 2 <= len(calls) // per_sample // 2 <= 14
    assert all(0.75 <= a <= 3.0 for a in calls)


def test_fusion_trains_resumes_exports_and_enhances(pan_set, tmp_path):
    base = dict(data=str(pan_set), model="fusion-s", model_overrides=TINY, steps=4, batch=2, frames_out=2, crop=12,
                val_every=2, ckpt_every=2, log_every=1, val_sequences=2, warmup=1, seed=1)
    train(TrainConfig(run_dir=str(tmp_path / "a"), **base), progress=False)
    cut = TrainConfig(run_dir=str(tmp_path / "b"), **base)
    train(cut, progress=False, max_minutes=0)
    train(cut, resume=True, progress=False)
    a, b = ckpt.load(tmp_path / "a" / "last.pt"), ckpt.load(tmp_path / "b" / "last.pt")
    assert a["step"] == b["step"] == 4 and a["arch"] == "aligned-fusion"
    for key in a["ema"]:
        assert torch.equal(a["ema"][key], b["ema"][key]), key
    out = tmp_path / "w" / "fuse-x2.safetensors"
    r = run_cli("export", str(tmp_path / "a" / "last.pt"), "-o", str(out))
    assert r.returncode == 0, r.stderr
    g, card = weights.load(out)
    assert isinstance(g, FusionGenerator) and card.arch == "aligned-fusion" and "val_psnr_y" in card.metrics
    from enhancer.restore import int8

    assert int8.check_ranges(card.int8, g) is None  # calibrated for int8 on the run's training set
    plain = tmp_path / "w" / "plain.safetensors"
    assert run_cli("export", str(tmp_path / "a" / "last.pt"), "-o", str(plain), "--no-calibrate").returncode == 0
    assert weights.load(plain)[1].int8 == {}
    clip = make_clip(tmp_path / "c.mp4", seconds=0.4)
    r = run_cli("enhance", str(clip), "-o", str(tmp_path / "e.mp4"), "--model", str(out), "-q")
    assert r.returncode == 0, r.stderr
    info = probe(str(tmp_path / "e.mp4"))
    assert info.width == 192 and info.frame_count == 10


def test_x4_starts_from_x2_weights(pan_set, tmp_path):
    base = dict(data=str(pan_set), model="fusion-s", model_overrides=TINY, steps=1, batch=1, frames_out=1, crop=8,
                val_every=100, log_every=1, val_sequences=2, seed=1)
    train(TrainConfig(run_dir=str(tmp_path / "x2"), **base), progress=False)
    from enhancer.train.build import build_generator, load_initial

    g4 = build_generator(TrainConfig(model="fusion-s", model_overrides=TINY, scale=4))
    fresh = load_initial(g4, str(tmp_path / "x2" / "last.pt"))
    assert fresh == ["tail.bias", "tail.weight"]
    src = ckpt.load(tmp_path / "x2" / "last.pt")["ema"]
    assert torch.equal(g4.state_dict()["head.weight"], src["head.weight"])


@pytest.mark.slow
def test_gpu_window_packs_prepares_trains_and_resumes(tmp_path):
    """The short-window recipe end to end on the CPU: pack, then two windows, the second resuming."""
    from gpu_window import main as window

    media = tmp_path / "media"
    media.mkdir()
    for k in range(3):
        img = (_texture(200, 260, k) * 255).astype(np.uint8)
        cv2.imwrite(str(media / f"still{k}.png"), img)
    make_clip(media / "clip.mp4", size="160x128", seconds=1, audio=False)
    make_clip(media / "bikes.mp4", size="160x128", seconds=1, audio=False)  # a held-out name: never packed
    cfg = tmp_path / "w.toml"
    cfg.write_text(f'run_dir = "{tmp_path / "local"}"\nmodel = "fusion-s"\nmodel_overrides = {{channels = 8, '
                   'low_channels = 8, low_blocks = 1, high_blocks = 1}\nsteps = 6\nbatch = 2\nframes_out = 2\n'
                   'crop = 16\nval_every = 3\nval_sequences = 2\nlog_every = 1\nckpt_minutes = 0.001\n')
    pack = tmp_path / ".gpu"
    assert window(["pack", str(cfg), "--sources", str(media), "--out", str(pack), "--budget", "0.05"]) == 0
    summary = json.loads((pack / "pack.json").read_text())
    assert summary["parts"] > 1 and 0 < summary["files"] < 4  # a share of the media fits the budget
    assert not any("bikes" in p.name for p in (pack / "sources").iterdir())
    assert window(["pack", str(cfg), "--sources", str(media), "--out", str(pack), "--budget", "100"]) == 0
    assert len(list((pack / "sources").iterdir())) == 4
    out = tmp_path / "out"
    assert window(["run", str(cfg), "--out", str(out), "--pack", str(pack), "--sequences", "8", "--minutes", "5",
                   "--set", "steps=3"]) == 0  # step-bounded: a time-bounded window made this test depend on load
    assert ckpt.load(out / "w" / "last.pt")["step"] == 3
    (pack / "checkpoints").mkdir(exist_ok=True)
    shutil.copy2(out / "w" / "last.pt", pack / "checkpoints" / "w.pt")  # what the next upload carries
    # the next window: that run resumes, and a second config (x4, another set) trains beside it
    cfg4 = tmp_path / "w4.toml"
    cfg4.write_text(cfg.read_text().replace('run_dir = "', 'scale = 4\nrun_dir = "x4-'))
    out2 = tmp_path / "out2"
    assert window(["run", str(cfg), str(cfg4), "--window", "1", "--out", str(out2), "--pack", str(pack),
                   "--sequences", "8", "--sequences", "6", "--minutes", "5", "--set", "steps=6", "--export"]) == 0
    assert ckpt.load(out2 / "w" / "last.pt")["step"] == 6
    state4 = ckpt.load(out2 / "w4" / "last.pt")
    assert state4["step"] == 6 and state4["config"]["scale"] == 4
    for name, scale in (("w", 2), ("w4", 4)):
        model, card = weights.load(out2 / f"{name}.safetensors")
        assert card.scale == scale and card.recipe["trained_steps"] == 6


def test_window_shares_are_fair_and_never_empty():
    from pathlib import Path

    from gpu_window import _share

    for n, parts in ((4, 2), (5, 3), (9, 4), (3, 3)):
        items = [Path(f"/x/{k:03d}_{n}.jpg") for k in range(n)]
        shares = [_share(items, w, parts) for w in range(parts)]
        assert sorted(p for s in shares for p in s) == items  # every item once
        assert all(len(s) in (n // parts, -(-n // parts)) and s for s in shares)
        assert _share(items, parts, parts) == shares[0]  # windows cycle through the parts


def test_window_parts_are_balanced_by_size_and_a_pack_over_its_limit_is_refused(tmp_path):
    import subprocess
    import sys
    import time
    from pathlib import Path

    from gpu_window import _share, _wait_all
    from gpu_window import main as window

    items = [Path(f"/x/{k:02d}.mp4") for k in range(9)]
    sizes = dict(zip(items, (29, 3, 3, 3, 3, 10, 10, 8, 1)))
    shares = [_share(items, w, 3, sizes) for w in range(3)]
    assert sorted(p for s in shares for p in s) == items
    assert max(sum(sizes[p] for p in s) for s in shares) == 29  # the big file alone, not 29 + more
    media = tmp_path / "media"
    media.mkdir()
    cv2.imwrite(str(media / "still.png"), (_texture(200, 260, 1) * 255).astype(np.uint8))
    (media / "broken.mp4").write_bytes(b"not a video" * 50)  # left out with a line, not the pack
    cfg = tmp_path / "w.toml"
    cfg.write_text(f'run_dir = "{tmp_path / "none"}"\n')
    assert window(["pack", str(cfg), "--sources", str(media), "--out", str(tmp_path / "p"), "--max-mib", "0.001"]) == 2
    assert window(["pack", str(cfg), "--sources", str(media), "--out", str(tmp_path / "p")]) == 0
    assert [p.name for p in (tmp_path / "p" / "sources").iterdir()][0].endswith(".jpg")
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "mine.txt").write_text("x")
    assert window(["pack", str(cfg), "--sources", str(media), "--out", str(tmp_path / "keep")]) == 2
    assert (tmp_path / "keep" / "mine.txt").exists()  # never wiped
    slow = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    bad = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    t0 = time.monotonic()
    assert not _wait_all([slow, bad], deadline=time.monotonic() + 30)
    assert time.monotonic() - t0 < 10 and slow.poll() is not None  # the other one was stopped
