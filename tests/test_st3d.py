"""The aligned spatio-temporal generator (3D convolutions over flow-aligned stacks, a confidence
per warped neighbour): shapes, receptive fields, exact chunks and tiles, training, the best-so-far
checkpoint and enhancing with it."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import make_clip, run_cli
from enhancer.restore import weights
from enhancer.restore.neural import ModelRestorer
from enhancer.media.probe import probe
from enhancer.models import ALIGNED
from enhancer.models.fusion import FusionConfig, fusion_complexity
from enhancer.models.st3d import ST3D_CONFIGS, ST3DConfig, ST3DGenerator, st3d_complexity
from enhancer.train import checkpoint as ckpt
from enhancer.train.config import TrainConfig
from enhancer.train.build import build_generator
from enhancer.train.trainer import train
from test_fusion import _pan, pan_set  # noqa: F401  (a fixture)

TINY = dict(channels=6, time_channels=8, low_channels=8, low_blocks=1, high_blocks=1, confidence_channels=4)


def tiny(scale: int = 2, seed: int = 0) -> ST3DGenerator:
    torch.manual_seed(seed)
    g = ST3DGenerator(ST3DConfig(scale=scale, **TINY))
    with torch.no_grad():
        for p in g.parameters():
            p.normal_(0, 0.2)
    return g.eval()


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_shapes_and_start_as_bicubic(scale):
    g = tiny(scale)
    x = torch.rand(3, 15, 11, 13)  # odd sizes go through the half-resolution branch too
    assert g(x).shape == (3, 3, 11 * scale, 13 * scale)
    fresh = ST3DGenerator(ST3DConfig(scale=scale, **TINY)).eval()
    centre = x[:, 6:9]
    base = centre if scale == 1 else torch.nn.functional.interpolate(centre, scale_factor=scale, mode="bicubic",
                                                                     align_corners=False)
    assert torch.allclose(fresh(x), base, atol=1e-6)


def test_it_is_3d_and_an_aligned_generator():
    g = tiny()
    assert isinstance(g, ALIGNED)
    convs3d = [m for m in g.modules() if isinstance(m, torch.nn.Conv3d)]
    assert len(convs3d) == g.temporal_radius and all(m.kernel_size == (3, 3, 3) for m in convs3d)


def test_spatial_radius_bounds_the_receptive_field():
    g = tiny(2).double()
    x = torch.rand(1, 15, 96, 96, dtype=torch.float64)
    y = g(x)
    x2 = x.clone()
    x2[..., 48, 48] += 1
    changed = (g(x2) - y).abs().amax(dim=(0, 1)) > 0
    rows = changed.any(dim=1).nonzero().flatten()
    reach = max(48 - int(rows.min()) // 2, int(rows.max()) // 2 - 48)
    assert 0 < reach <= g.spatial_radius


def test_each_output_frame_sees_two_neighbours_each_side():
    g = tiny(2).double()
    x = torch.rand(1, 15, 16, 16, dtype=torch.float64)
    y = g(x)
    for k in range(5):
        x2 = x.clone()
        x2[:, 3 * k:3 * k + 3] += 0.5
        assert (g(x2) - y).abs().max() > 1e-6, k


def test_a_neighbour_with_no_confidence_is_not_used():
    """The confidence gates what a neighbour brings: forced to zero, the neighbour's content no
    longer reaches the output (only the confidence network itself reads it)."""
    g = tiny(2).double()
    with torch.no_grad():
        g.confidence.conv2.weight.zero_()
        g.confidence.conv2.bias.fill_(-1e4)  # sigmoid -> 0 for every neighbour
    x = torch.rand(1, 15, 16, 16, dtype=torch.float64)
    x2 = x.clone()
    x2[:, 0:3] = torch.rand(1, 3, 16, 16, dtype=torch.float64)  # a neighbour that is all wrong
    assert torch.allclose(g(x2), g(x), atol=1e-9)
    assert g.confidences(x).shape == (1, 4, 16, 16)


def test_chunks_and_tiles_are_invisible():
    g = tiny(2)
    frames = (_pan(12, 45, 61, 2) * 255).astype(np.uint8)
    whole = ModelRestorer(g, device="cpu", precision="fp32", tile=0, chunk=8)
    ref = whole.forward_stacks(frames.astype(np.float32) / 255)  # 8 output frames
    tiled = ModelRestorer(g, device="cpu", precision="fp32", tile=16)
    assert torch.allclose(tiled.forward_stacks(frames.astype(np.float32) / 255), ref, atol=1e-5)
    part = whole.forward_stacks(frames[3:10].astype(np.float32) / 255)  # centres 5..7 of the whole
    # random weights give outputs far outside [0, 1]: 1e-5 of that range, fp32's rounding
    assert torch.allclose(part, ref[3:6], rtol=0, atol=1e-5 * max(1.0, float(ref.abs().max())))


def test_cost_beside_fusion_s():
    s3, fs = st3d_complexity(ST3D_CONFIGS["st3d-s"]), fusion_complexity(FusionConfig())
    # a cost the CPU can carry: within a third of fusion-s's per output pixel
    assert s3["macs_per_output_pixel"] <= 1.33 * fs["macs_per_output_pixel"]
    assert 300_000 < s3["params"] < 1_000_000


def test_trains_keeps_the_best_resumes_and_enhances(pan_set, tmp_path):  # noqa: F811
    base = dict(data=str(pan_set), model="st3d-s", model_overrides=TINY, steps=4, batch=2, frames_out=2, crop=12,
                val_every=2, ckpt_every=2, log_every=1, val_sequences=2, warmup=1, seed=1, misalign=3.0)
    train(TrainConfig(run_dir=str(tmp_path / "a"), **base), progress=False)
    cut = TrainConfig(run_dir=str(tmp_path / "b"), **base)
    train(cut, progress=False, max_minutes=0)
    train(cut, resume=True, progress=False)
    a, b = ckpt.load(tmp_path / "a" / "last.pt"), ckpt.load(tmp_path / "b" / "last.pt")
    assert a["step"] == b["step"] == 4 and a["arch"] == "aligned-st3d"
    for key in a["ema"]:
        assert torch.equal(a["ema"][key], b["ema"][key]), key
    # the best-so-far weights: fp16, a model enhance loads, the step and PSNR they were best at
    best = tmp_path / "a" / "best.safetensors"
    record = json.loads((tmp_path / "a" / "best.json").read_text())
    assert record["step"] in (2, 4) and record["val_psnr_y"] > 0
    from safetensors import safe_open

    with safe_open(str(best), framework="pt") as f:
        assert all(f.get_slice(k).get_dtype() == "F16" for k in f.keys())
    g, card = weights.load(best)
    assert isinstance(g, ST3DGenerator) and card.arch == "aligned-st3d"
    assert card.recipe["trained_steps"] == record["step"]
    # a new machine continues from it
    c = TrainConfig(run_dir=str(tmp_path / "c"), init_from=str(best), **{**base, "steps": 1})
    assert isinstance(build_generator(c), ST3DGenerator)
    train(c, progress=False)
    clip = make_clip(tmp_path / "c.mp4", seconds=0.4)
    r = run_cli("enhance", str(clip), "-o", str(tmp_path / "e.mp4"), "--model", str(best), "-q")
    assert r.returncode == 0, r.stderr
    info = probe(str(tmp_path / "e.mp4"))
    assert info.width == 192 and info.frame_count == 10
