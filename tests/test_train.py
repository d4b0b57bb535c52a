"""Degradations, training data, losses and the trainer (tiny models on the CPU)."""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import make_clip, run_cli
from enhancer.train import losses
from enhancer.restore import weights
from enhancer.data.dataset import ClipDataset, PrepareConfig, photo_sequence, prepare
from enhancer.data.degrade import Degradation, Scratch, degrade_clip, sample
from enhancer.errors import EnhancerError
from enhancer.media.probe import count_frames, probe
from enhancer.train import checkpoint as ckpt
from enhancer.train.config import TrainConfig
from enhancer.train.trainer import train

TINY_MODEL = {"channels": 8, "frame_blocks": 1, "temporal_blocks": 2, "post_blocks": 1}


def _photo(path: Path, seed: int = 0, size=(240, 320)) -> Path:
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.integers(0, 256, (size[0] // 8, size[1] // 8, 3)).astype(np.uint8), size[::-1],
                     interpolation=cv2.INTER_CUBIC)
    cv2.putText(img, "enhancer", (20, 120), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (255, 255, 255), 3)
    cv2.imwrite(str(path), img)
    return path


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("media")
    _photo(d / "a.png", 0)
    _photo(d / "b.png", 1)
    make_clip(d / "v.mp4", size="160x128", seconds=1, audio=False)
    make_clip(d / "heldout.mp4", size="160x128", seconds=1, audio=False)
    out = d / "set.npz"
    prepare(PrepareConfig(sources=[str(d)], out=str(out), exclude=["heldout.mp4"], sequences=14, frames=9,
                          hr_size=32, scale=2, versions=2, video_ratio=0.3, seed=0), progress=False)
    return out


# ---- degradations ----------------------------------------------------------------------------
def _clean_clip(n=8, h=64, w=64):
    ys, xs = np.mgrid[0:h, 0:w]
    return np.stack([np.stack([(xs * 4 + t * 3) % 256, (ys * 4) % 256, ((xs + ys) * 2) % 256], -1)
                     for t in range(n)]).astype(np.uint8)


@pytest.mark.parametrize("preset", ["web", "light", "archive", "vhs", "x264"])
def test_degradation_is_seeded_and_reproducible(preset):
    clip = _clean_clip()
    a = degrade_clip(clip, sample(preset, 2, seed=7))
    b = degrade_clip(clip, sample(preset, 2, seed=7))
    c = degrade_clip(clip, sample(preset, 2, seed=8))
    assert a.shape == (8, 32, 32, 3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_bicubic_preset_is_matlab_imresize():
    """The classic protocol (Set5/Set14/Vid4 and the published tables): Keys' cubic with a = -0.5,
    its kernel widened by the factor where it shrinks (so it filters before it subsamples), mirrored
    edges. Weights worked by hand for a 1-D shrink by 4, and the whole preset against them."""
    from enhancer.data.degrade import _imresize_matrix, imresize

    cub = lambda x: np.where(np.abs(x) <= 1, 1.5 * np.abs(x) ** 3 - 2.5 * x * x + 1,  # noqa: E731
                             np.where(np.abs(x) <= 2, -0.5 * np.abs(x) ** 3 + 2.5 * x * x - 4 * np.abs(x) + 2, 0))
    big = _imresize_matrix(64, 16).astype(np.float64)
    # output pixel 9 (1-based) sits at input 34.5 (1-based); taps at distance d weigh cubic(d / 4) / 4
    expect = cub((34.5 - np.arange(1, 65)) / 4) / 4
    assert np.allclose(big[8], expect / expect.sum(), atol=1e-6) and np.count_nonzero(big[8]) == 16
    m = _imresize_matrix(16, 4).astype(np.float64)
    assert np.allclose(m.sum(axis=1), 1, atol=1e-6)
    # the first output pixel's taps left of the edge mirror back in (MATLAB), they are not dropped
    d0 = 2.5 - np.arange(-6, 11)
    w0 = cub(d0 / 4) / 4
    w0 /= w0.sum()
    folded = np.zeros(16)
    for i, wt in zip(np.arange(-6, 11), w0):
        folded[-i if i < 1 else i - 1] += wt  # 1-based i < 1 mirrors to 1 - i (0-based -i)
    assert np.allclose(m[0], folded, atol=1e-6)
    # a flat frame stays flat; the preset uses it at scale 4, and it is not OpenCV's INTER_CUBIC
    assert np.allclose(imresize(np.full((40, 24, 3), 0.3, np.float32), (10, 6)), 0.3, atol=1e-6)
    clip = np.random.default_rng(3).integers(0, 256, (2, 64, 64, 3)).astype(np.uint8)  # fine detail aliases
    lq = degrade_clip(clip, sample("bicubic", 4, seed=1)).astype(np.float64)
    hand = np.clip(np.round(imresize(clip[0].astype(np.float32) / 255, (16, 16)) * 255), 0, 255)
    assert np.abs(lq[0] - hand).max() <= 1
    cv = cv2.resize(clip[0].astype(np.float32), (16, 16), interpolation=cv2.INTER_CUBIC)
    assert np.abs(lq[0] - cv).mean() > 2


def test_scratches_persist_and_dust_does_not():
    clip = np.full((6, 64, 128, 3), 128, np.uint8)
    d = Degradation(scale=1, scratches=[Scratch(x=0.5, drift=0.0, width=2, strength=0.4, start=0, length=6)], seed=1)
    lq = degrade_clip(clip, d).astype(int)
    col = lq[:, :, 62:67].mean(axis=(1, 2, 3))
    assert (col > 150).all()  # bright line on every frame
    d = Degradation(scale=1, dust_rate=3.0, seed=2)
    lq = degrade_clip(clip, d).astype(int)
    spots = [set(zip(*np.nonzero(np.abs(f - 128).max(-1) > 60))) for f in lq]
    assert any(spots) and not (spots[0] & spots[1] & spots[2])  # specks change every frame


def test_noise_level_varies_smoothly_and_codec_stage_is_real():
    clip = np.full((10, 64, 64, 3), 120, np.uint8)
    d = Degradation(scale=1, noise="gauss_color", noise_sigma=(2 / 255, 20 / 255), seed=3)
    lq = degrade_clip(clip, d).astype(float)
    stds = [f.std() for f in lq]
    assert stds[0] < stds[-1] and stds[0] < 4 and stds[-1] > 12
    d2 = Degradation(scale=1, noise="gauss_color", noise_sigma=(10 / 255, 10 / 255), codec="h264",
                     codec_quality=40, seed=3)
    assert degrade_clip(clip, d2).astype(float).std() < 6  # heavy compression smooths noise away


def test_degrade_command(tmp_path):
    src = make_clip(tmp_path / "clean.mp4", size="128x96", seconds=1)
    out = tmp_path / "lq.mp4"
    r = run_cli("degrade", str(src), "-o", str(out), "--preset", "web", "--scale", "2", "--seed", "3", "--json",
                "-q")
    assert r.returncode == 0, r.stderr
    params = json.loads(r.stdout)
    assert params["seed"] == 3 and params["scale"] == 2
    info = probe(str(out))
    assert (info.width, info.height) == (64, 48)
    assert count_frames(str(out)) == count_frames(str(src))
    assert info.audio
    out2 = tmp_path / "lq2.mp4"
    run_cli("degrade", str(src), "-o", str(out2), "--preset", "web", "--seed", "3", "-q")
    from conftest import decode_frames

    assert np.array_equal(decode_frames(out), decode_frames(out2))  # same seed, same file content


# ---- data ------------------------------------------------------------------------------------
def test_photo_sequence_moves_smoothly():
    rng = np.random.default_rng(0)
    img = cv2.imread(str(_photo(Path("/tmp") / f"enh_photo_{os.getpid()}.png")))[..., ::-1]
    seq = photo_sequence(img, rng, 6, 64)
    assert seq.shape == (6, 64, 64, 3)
    diffs = [np.abs(seq[i + 1].astype(int) - seq[i]).mean() for i in range(5)]
    assert all(d > 0.1 for d in diffs)  # the camera moves
    far = np.abs(seq[5].astype(int) - seq[0]).mean()
    assert far > np.mean(diffs)  # and keeps moving the same way


def test_prepared_set_is_aligned(tiny_set):
    meta = json.loads(tiny_set.with_suffix(".json").read_text())
    assert not any("heldout" in o for o in meta["origins"])
    ds = ClipDataset(tiny_set)
    assert len(ds) == 14 and ds.frames == 9 and ds.versions == 2 and ds.scale == 2
    assert ds.clean(13).shape == (9, 32, 32, 3) and ds.damaged(13, 1).shape == (9, 16, 16, 3)
    lq, hr = ds.batch(np.random.default_rng(0), 6, 5, 1, 12)
    assert lq.shape == (6, 3, 5, 12, 12) and hr.shape == (6, 3, 1, 24, 24)
    down = torch.nn.functional.avg_pool2d(hr[:, :, 0], 2)
    centre = lq[:, :, 2]
    assert (down - centre).abs().mean() < (down - centre.roll(3, dims=-1)).abs().mean()


# ---- losses ----------------------------------------------------------------------------------
def test_losses_follow_their_definitions():
    x = torch.rand(2, 3, 4, 8, 8)
    assert losses.charbonnier(x, x) == pytest.approx(1e-3, abs=1e-7)
    assert losses.temporal_loss(x, x + 0.3) == pytest.approx(0.0, abs=1e-6)  # same changes over time
    real, fake = torch.randn(5), torch.randn(5)
    ref_d = (-torch.log(torch.sigmoid(real)) - torch.log(1 - torch.sigmoid(fake))).mean()
    assert losses.d_loss(real, fake, "nonsat") == pytest.approx(float(ref_d), rel=1e-5)
    assert losses.g_adv_loss(fake, "nonsat") == pytest.approx(float(-torch.log(torch.sigmoid(fake)).mean()), rel=1e-5)
    assert losses.d_loss(real, fake, "hinge") == pytest.approx(
        float(torch.relu(1 - real).mean() + torch.relu(1 + fake).mean()), rel=1e-6)
    assert losses.g_adv_loss(fake, "hinge") == pytest.approx(float(-fake.mean()), rel=1e-6)


def test_perceptual_refuses_random_weights(monkeypatch, tmp_path):
    from enhancer.quality.features import PerceptualDistance

    monkeypatch.setenv("ENHANCER_MOBILENET_WEIGHTS", str(tmp_path / "missing.pth"))
    with pytest.raises(EnhancerError, match="MobileNetV2 ImageNet weights not found"):
        PerceptualDistance("mobilenet_v2")
    dist = PerceptualDistance("mobilenet_v2", allow_random=True)  # plumbing only, and it says so
    assert "RANDOM" in dist.name
    a = torch.rand(2, 3, 32, 32)
    assert torch.allclose(dist(a, a), torch.zeros(2), atol=1e-6)
    assert (dist(a, torch.rand(2, 3, 32, 32)) > 0).all()


# ---- trainer ---------------------------------------------------------------------------------
def _write_toml(path: Path, tiny_set: Path, run: Path, extra: str) -> Path:
    """A tiny-model training config file for the subprocess tests."""
    path.write_text(
        f'data = "{tiny_set}"\nrun_dir = "{run}"\nmodel_overrides = {json.dumps(TINY_MODEL).replace(":", " =")}\n'
        'batch = 2\nframes_out = 2\ncrop = 8\nlog_every = 1\nval_sequences = 4\n' + extra)
    return path


def _cfg(tiny_set: Path, run: Path, **kw) -> TrainConfig:
    base = dict(data=str(tiny_set), run_dir=str(run), model="small", model_overrides=TINY_MODEL, steps=6, batch=2,
                frames_out=2, crop=8, val_every=3, ckpt_every=2, log_every=1, val_sequences=4, warmup=2,
                allow_random_features=True, seed=1)
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("stage", [1, pytest.param(2, marks=pytest.mark.slow)])  # 2 (with the discriminator): 20x longer
def test_resume_gives_the_same_weights(tiny_set, tmp_path, stage, monkeypatch):
    monkeypatch.setenv("ENHANCER_MOBILENET_WEIGHTS", str(tmp_path / "none.pth"))  # random features: plumbing
    frames_out = 4 if stage == 2 else 2
    straight = _cfg(tiny_set, tmp_path / "a", stage=stage, frames_out=frames_out)
    train(straight, progress=False)
    interrupted = _cfg(tiny_set, tmp_path / "b", stage=stage, frames_out=frames_out)
    train(interrupted, progress=False, max_minutes=0)  # stops after its first step, with a checkpoint
    assert ckpt.load(tmp_path / "b" / "last.pt")["step"] == 1
    train(interrupted, resume=True, progress=False)
    a, b = ckpt.load(tmp_path / "a" / "last.pt"), ckpt.load(tmp_path / "b" / "last.pt")
    assert a["step"] == b["step"] == 6
    for key in a["generator"]:
        assert torch.equal(a["generator"][key], b["generator"][key]), key
        assert torch.equal(a["ema"][key], b["ema"][key]), key
    if stage == 2:
        for key in a["discriminator"]:
            assert torch.equal(a["discriminator"][key], b["discriminator"][key]), key
    log = [json.loads(x) for x in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert "val_psnr_y" in log[-1] and (tmp_path / "a" / "val" / "step000006.png").exists()


def test_val_data_is_its_own_set_and_all_of_the_training_set_is_trained_on(tiny_set, tmp_path):
    """``val_data``: validation reads that set (media the training set excludes), and no sequence of
    the training set is kept back; a val set of another scale is one clear error."""
    from enhancer.train.batches import _load_data
    from enhancer.train.config import TrainingError

    d = tmp_path / "media"
    d.mkdir()
    _photo(d / "c.png", 5)
    val_set = tmp_path / "val.npz"
    prepare(PrepareConfig(sources=[str(d)], out=str(val_set), sequences=3, frames=9, hr_size=32, scale=2, versions=1,
                          seed=3), progress=False)
    data, train_idx, val, val_idx = _load_data(_cfg(tiny_set, tmp_path / "r", val_data=str(val_set), val_sequences=2))
    assert list(train_idx) == list(range(len(data))) and list(val_idx) == [0, 1] and len(val) == 3
    assert np.array_equal(val.clean(1), ClipDataset(str(val_set)).clean(1))
    data, train_idx, val, val_idx = _load_data(_cfg(tiny_set, tmp_path / "r", val_sequences=4))
    assert val is data and list(val_idx) == [10, 11, 12, 13] and list(train_idx) == list(range(10))
    train(_cfg(tiny_set, tmp_path / "run", val_data=str(val_set), val_sequences=2, steps=3), progress=False)
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert "val_psnr_y" in log[-1]
    x4 = tmp_path / "x4.npz"
    prepare(PrepareConfig(sources=[str(d)], out=str(x4), sequences=2, frames=9, hr_size=64, scale=4, versions=1,
                          seed=3), progress=False)
    with pytest.raises(TrainingError, match="x4"):
        _load_data(_cfg(tiny_set, tmp_path / "r", val_data=str(x4)))


def test_amp_auto_is_bf16_only_where_the_cpu_has_bf16_arithmetic(monkeypatch, caplog):
    """On a CPU without AVX512-BF16 or AMX, bf16 autocast is emulated (an st3d-s step took many times
    as long as in fp32 on an AVX2 CPU): ``auto`` computes in fp32 there, an explicit ``bf16`` is
    kept but warned of; on CUDA ``auto`` is bf16."""
    from enhancer.restore import device as dev
    from enhancer.train.trainer import _use_amp

    cpu = torch.device("cpu")
    for has in (True, False):
        monkeypatch.setattr(dev, "cpu_has_bf16", lambda has=has: has)
        dev.warn_emulated_bf16.cache_clear()  # (said once per process: another test may have said it)
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            assert _use_amp("auto", cpu) is has
            assert _use_amp("off", cpu) is False
            assert _use_amp("bf16", cpu) is True
        assert any("without bf16 arithmetic" in r.getMessage() for r in caplog.records) is (not has)
    assert _use_amp("auto", torch.device("cuda")) is True and _use_amp("off", torch.device("cuda")) is False


def test_a_run_resumes_where_amp_changed(tiny_set, tmp_path):
    """amp may change between windows (a run moves between machines with and without bf16)."""
    train(_cfg(tiny_set, tmp_path / "r", steps=4, amp="off"), progress=False, max_minutes=0)
    train(_cfg(tiny_set, tmp_path / "r", steps=4, amp="bf16"), resume=True, progress=False)
    assert ckpt.load(tmp_path / "r" / "last.pt")["step"] == 4


def test_validation_psnr_y_is_what_evaluate_reports(tiny_set, tmp_path):
    """The trainer's val_psnr_y is `enhancer evaluate`'s psnr_y of the same frames (issue 14): the
    mean over the frames of each frame's PSNR-Y (the PSNR of each sequence's pooled error, which
    the trainer logged before, is another figure: 0.04 dB lower here)."""
    from enhancer.quality.evaluate import evaluate
    from enhancer.train.validate import validate

    class Nearest(torch.nn.Module):  # a generator that is easy to write down: x2 nearest of the centre frames
        temporal_radius = 1

        def forward(self, x):  # (1, 3, T + 2, h, w) -> (1, 3, T, 2h, 2w)
            return x[:, :, 1:-1].repeat_interleave(2, -1).repeat_interleave(2, -2)

    cfg = _cfg(tiny_set, tmp_path, frames_out=3)
    data = ClipDataset(str(tiny_set))
    val = np.arange(10, 14)
    got = validate(Nearest(), data, val, cfg, torch.device("cpu"))
    b = 2 * cfg.scale  # the border validation leaves out
    (tmp_path / "reference").mkdir()
    (tmp_path / "candidate").mkdir()
    k = 0
    for i in val:  # frames 1..3 of each sequence: the centre of the 5 the model sees
        for hr, lq in zip(data.clean(i)[1:4], data.damaged(i)[1:4]):
            out = lq.repeat(2, 0).repeat(2, 1)
            cv2.imwrite(str(tmp_path / "reference" / f"{k:03d}.png"), hr[b:-b, b:-b, ::-1])
            cv2.imwrite(str(tmp_path / "candidate" / f"{k:03d}.png"), out[b:-b, b:-b, ::-1])
            k += 1
    scores = evaluate(str(tmp_path / "reference"), str(tmp_path / "candidate"), metrics=("psnr_y",))
    assert scores.frames == 12
    assert got["val_psnr_y"] == pytest.approx(scores.mean("psnr_y"), abs=1e-9)


def test_validation_flicker_and_stage_2_vmaf_are_what_evaluate_reports(tiny_set, tmp_path):
    """Validation's frame-difference error is `evaluate`'s fde of the same frames; in stage 2 it
    also gives VMAF (texture costs PSNR, so stage 2 keeps its best by VMAF), again as `evaluate`
    measures it."""
    from enhancer.quality.evaluate import evaluate
    from enhancer.train.validate import validate

    class Nearest(torch.nn.Module):
        temporal_radius = 1

        def forward(self, x):
            return x[:, :, 1:-1].repeat_interleave(2, -1).repeat_interleave(2, -2)

    data = ClipDataset(str(tiny_set))
    val = np.array([10])
    got = validate(Nearest(), data, val, _cfg(tiny_set, tmp_path, frames_out=3), torch.device("cpu"))
    assert "val_vmaf" not in got and got["val_fde"] > 0 and got["val_fde_bicubic"] > 0
    got2 = validate(Nearest(), data, val, _cfg(tiny_set, tmp_path, frames_out=3, stage=2), torch.device("cpu"))
    for name in ("reference", "candidate"):
        (tmp_path / name).mkdir()
    for k, (hr, lq) in enumerate(zip(data.clean(10)[1:4], data.damaged(10)[1:4])):
        cv2.imwrite(str(tmp_path / "reference" / f"{k:03d}.png"), hr[..., ::-1])
        cv2.imwrite(str(tmp_path / "candidate" / f"{k:03d}.png"), lq.repeat(2, 0).repeat(2, 1)[..., ::-1])
    scores = evaluate(str(tmp_path / "reference"), str(tmp_path / "candidate"), metrics=("fde", "vmaf"))
    assert got["val_fde"] == pytest.approx(scores.mean("fde"), abs=1e-9) == got2["val_fde"]
    assert got2["val_vmaf"] == pytest.approx(scores.mean("vmaf"), abs=1e-3)
    assert 0 <= got2["val_vmaf_bicubic"] <= 100 and got2["val_vmaf_bicubic"] != got2["val_vmaf"]


def test_batches_do_not_depend_on_the_number_of_batch_threads(tiny_set):
    from enhancer.train.batches import _Batches

    cfg = _cfg(tiny_set, Path("unused"))
    data = ClipDataset(str(tiny_set))
    made = []
    for threads in (1, 3):
        b = _Batches(data, cfg, np.arange(len(data)), 2, False, 0, 5, threads)
        b.start()
        try:
            made.append([b.get() for _ in range(7)])
        finally:
            b.close()
        assert not any(t.is_alive() for t in b.threads)
    for (lq1, hr1), (lq3, hr3) in zip(*made):
        assert torch.equal(lq1, lq3) and torch.equal(hr1, hr3)
    assert not torch.equal(made[0][0][0], made[0][1][0])  # consecutive steps differ


@pytest.mark.slow
def test_fit_minutes_ends_the_schedule_inside_the_time_box(tiny_set, tmp_path, caplog, monkeypatch):
    """On a fake clock that only the generator's steps move (no wall-clock assertion: a loaded
    machine must not fail it): 50 ms a step, then 100 ms once another run gets going on the GPU."""
    from enhancer.train import schedule, trainer

    real, calls = trainer._generate, []

    class Clock:  # the trainer's (and the schedule's) time module, with a monotonic clock of our own
        now = 1000.0

        def monotonic(self) -> float:
            return self.now

        def __getattr__(self, name):
            return getattr(time, name)

    clock = Clock()

    def slows_down(*args):  # as a GPU does once a second run on it gets going
        calls.append(1)
        clock.now += 0.05 if len(calls) <= 80 else 0.1
        return real(*args)

    monkeypatch.setattr(trainer, "_generate", slows_down)
    monkeypatch.setattr(trainer, "time", clock)
    monkeypatch.setattr(schedule, "time", clock)
    monkeypatch.setattr(schedule._Fit, "skip", 5)  # measured over fewer steps: a short run, the same logic
    monkeypatch.setattr(schedule._Fit, "span", 20)
    cfg = _cfg(tiny_set, tmp_path / "fit", steps=100_000, val_every=10_000, ckpt_every=10_000, log_every=50,
               fit_minutes=0.15, loader_threads=2)
    with caplog.at_level(logging.INFO, logger="enhancer.train"):
        last = train(cfg, progress=False)
    assert "the schedule now ends at step" in caplog.text
    assert 80 < cfg.steps < 100_000 and last["step"] == cfg.steps  # refitted after the slow-down
    # the schedule ends inside the box (9 s on the fake clock) and does not stop far short of it
    assert 0.7 * 0.15 * 60 < clock.now - 1000.0 <= 0.15 * 60
    log = [json.loads(x) for x in (tmp_path / "fit" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["lr_g"] == pytest.approx(cfg.lr_g * cfg.lr_min_ratio, rel=0.05)  # the decay finished
    assert ckpt.load(tmp_path / "fit" / "last.pt")["config"]["steps"] == cfg.steps


def test_sigterm_checkpoints_and_resume_finishes(tiny_set, tmp_path):
    run = tmp_path / "run"
    cfg_path = _write_toml(tmp_path / "t.toml", tiny_set, run, "steps = 400\nval_every = 1000\nckpt_every = 1000\n")
    proc = subprocess.Popen([sys.executable, "-m", "enhancer", "train", "--config", str(cfg_path), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not ((run / "log.jsonl").exists() and
                                         len((run / "log.jsonl").read_text().splitlines()) >= 3):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "SIGTERM" in out + err
    step = ckpt.load(run / "last.pt")["step"]
    assert 3 <= step < 400
    cfg_path.write_text(cfg_path.read_text().replace("steps = 400", f"steps = {step + 2}"))
    r = run_cli("train", "--config", str(cfg_path), "--resume", "-q")
    assert r.returncode == 0, r.stderr
    assert ckpt.load(run / "last.pt")["step"] == step + 2


def test_export_plot_and_enhance_with_the_result(tiny_set, tmp_path):
    cfg = _cfg(tiny_set, tmp_path / "run", steps=3)
    train(cfg, progress=False)
    out = tmp_path / "w" / "mine-x2.safetensors"
    r = run_cli("export", str(tmp_path / "run" / "last.pt"), "-o", str(out), "--damage", "test damage")
    assert r.returncode == 0, r.stderr
    g, card = weights.load(out)
    assert card.name == "mine-x2" and card.recipe["trained_steps"] == 3 and card.damage == "test damage"
    assert "val_psnr_y" in card.metrics
    r = run_cli("train", "plot", str(tmp_path / "run"))
    assert r.returncode == 0 and cv2.imread(str(tmp_path / "run" / "curves.png")) is not None
    clip = make_clip(tmp_path / "c.mp4", seconds=0.5)
    r = run_cli("enhance", str(clip), "-o", str(tmp_path / "e.mp4"), "--model", str(out), "-q")
    assert r.returncode == 0, r.stderr
    assert probe(str(tmp_path / "e.mp4")).width == 192


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_distributed_training_on_two_cpu_processes(tiny_set, tmp_path):
    run = tmp_path / "ddp"
    cfg_path = _write_toml(tmp_path / "d.toml", tiny_set, run, "steps = 4\nval_every = 2\nckpt_every = 2\nthreads = 1\n")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
                        "-m", "enhancer", "train", "--config", str(cfg_path), "-q"],
                       capture_output=True, text=True, env=env, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    state = ckpt.load(run / "last.pt")
    assert state["step"] == 4
    rows = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2, 3, 4]  # written once (rank 0), not twice


@pytest.mark.slow  # two torchrun launchers; the two-process run above stays quick
def test_training_across_two_nodes(tiny_set, tmp_path):
    """torchrun across nodes (issue 16): two "nodes" of one process each, started separately as on
    two machines, meeting at a c10d rendezvous on localhost and training over gloo."""
    run = tmp_path / "nodes"
    cfg_path = _write_toml(tmp_path / "n.toml", tiny_set, run, "steps = 4\nval_every = 2\nckpt_every = 2\nthreads = 1\n")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    port = _free_port()
    nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
                               "--node_rank", str(rank), "--rdzv_backend", "c10d", "--rdzv_id", "enhancer-test",
                               "--rdzv_endpoint", f"127.0.0.1:{port}", "-m", "enhancer", "train", "--config",
                               str(cfg_path), "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for rank in (0, 1)]
    outs = [p.communicate(timeout=240) for p in nodes]
    assert [p.returncode for p in nodes] == [0, 0], [o[1][-2000:] for o in outs]
    assert ckpt.load(run / "last.pt")["step"] == 4
    rows = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2, 3, 4]  # one writer for the whole job


def test_resume_accepts_checkpoints_from_before_a_new_option(tiny_set, tmp_path):
    """A checkpoint written before an option existed resumes (the option at its default), and a
    changed option that alters training is still refused."""
    cfg = _cfg(tiny_set, tmp_path / "run", steps=2)
    train(cfg, progress=False)
    state = ckpt.load(tmp_path / "run" / "last.pt")
    del state["config"]["d_channels"]  # as written by an older enhancer
    ckpt.save(tmp_path / "run" / "last.pt", state)
    assert train(_cfg(tiny_set, tmp_path / "run", steps=3), resume=True, progress=False)["step"] == 3
    with pytest.raises(EnhancerError, match="lr_g"):
        train(_cfg(tiny_set, tmp_path / "run", steps=4, lr_g=1e-3), resume=True, progress=False)


def test_prepare_mistakes_are_one_line(tmp_path):
    """A missing or empty source is one error line and exit 2, not a traceback (issue 14)."""
    (tmp_path / "empty").mkdir()
    for src in (str(tmp_path / "missing"), str(tmp_path / "empty")):
        r = run_cli("prepare", src, "-o", str(tmp_path / "set.npz"), "--sequences", "2")
        assert r.returncode == 2 and r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1, \
            r.stderr
        assert "Traceback" not in r.stderr and not (tmp_path / "set.npz").exists()
