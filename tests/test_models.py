"""Networks, weights and the inference engine: shapes, receptive fields, seamless chunks and tiles."""
from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest
import torch

from conftest import make_clip, run_cli
from enhancer.train import losses
from enhancer.restore import weights
from enhancer.errors import EnhancerError
from enhancer.restore.neural import ModelRestorer
from enhancer.media.reader import Frame, windows
from enhancer.models import Discriminator, DiscriminatorConfig, FrameDiscriminator, Generator, GeneratorConfig
from enhancer.models.generator import complexity

TINY = dict(channels=8, frame_blocks=1, temporal_blocks=2, post_blocks=1)


def tiny_generator(scale: int = 2, seed: int = 0) -> Generator:
    """A small seeded model with every weight random (the tail too, so the residual is not zero)."""
    torch.manual_seed(seed)
    g = Generator(GeneratorConfig(scale=scale, **TINY))
    with torch.no_grad():
        for p in g.parameters():
            p.normal_(0, 0.2)
    return g.eval()


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_generator_shapes(scale):
    g = tiny_generator(scale)
    out = g(torch.rand(2, 3, 9, 12, 10))
    assert out.shape == (2, 3, 9 - 2 * g.temporal_radius, 12 * scale, 10 * scale)


def test_generator_starts_as_bicubic_upscale():
    g = Generator(GeneratorConfig(scale=2, **TINY)).eval()
    x = torch.rand(1, 3, 5, 8, 8)
    base = torch.nn.functional.interpolate(x[:, :, 2], scale_factor=2, mode="bicubic", align_corners=False)
    assert torch.allclose(g(x)[:, :, 0], base, atol=1e-6)


def test_temporal_receptive_field_is_at_least_five_frames():
    g = tiny_generator()
    r = g.temporal_radius
    assert 2 * r + 1 >= 5
    x = torch.rand(1, 3, 2 * r + 3, 8, 8)  # outputs for input frames r .. r+2
    with torch.no_grad():
        y = g(x)
        for k in range(x.shape[2]):
            x2 = x.clone()
            x2[:, :, k] += 0.5
            changed = (g(x2) - y).abs().amax(dim=(0, 1, 3, 4)) > 1e-6  # per output frame
            for j in range(y.shape[2]):
                centre = j + r
                assert bool(changed[j]) == (abs(k - centre) <= r), (k, j)


def test_spatial_radius_bounds_the_receptive_field():
    g = tiny_generator()
    rad = g.spatial_radius
    x = torch.rand(1, 3, 5, 2 * rad + 12, 2 * rad + 12)
    with torch.no_grad():
        y = g(x)
        x2 = x.clone()
        x2[..., 0, 0] += 1.0  # one pixel in the corner
        diff = (g(x2) - y).abs()[0, :, 0].amax(dim=0)  # (sH, sW)
    hit = torch.nonzero(diff > 1e-7)
    assert hit.numel() > 0
    assert int(hit.max()) // g.scale <= rad


def test_complexity_reports_small_and_base():
    from enhancer.models.generator import CONFIGS

    small, base = complexity(CONFIGS["small"]), complexity(CONFIGS["base"])
    assert 0 < small["params"] < base["params"]
    assert 0 < small["macs_per_output_pixel"] < base["macs_per_output_pixel"]


def _video(n=20, h=24, w=28, seed=1):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(h, w, 3))
    frames = []
    for i in range(n):
        img = np.roll(base, i, axis=1) // 2 + rng.integers(0, 128, size=(h, w, 3))
        frames.append(Frame(i, i * 40, Fraction(1, 1000), img.astype(np.uint8)))
    return frames


def _run_float(restorer: ModelRestorer, frames, chunk: int) -> torch.Tensor:
    outs = []
    for win in windows(iter(frames), restorer.margin, chunk):
        x = torch.from_numpy(np.stack(win.images)).permute(3, 0, 1, 2).unsqueeze(0).float() / 255
        outs.append(restorer.forward_float(x)[0])
    return torch.cat(outs, dim=1)  # (3, T, sH, sW)


def test_chunking_is_invisible():
    r = ModelRestorer(tiny_generator(), device="cpu", precision="fp32", tile=0)
    frames = _video()
    a, b, c = (_run_float(r, frames, chunk) for chunk in (8, 64, 3))
    assert a.shape[1] == len(frames)
    assert (a - b).abs().max() <= 1e-5
    assert (a - c).abs().max() <= 1e-5


def test_tiling_is_invisible():
    frames = _video(n=7, h=40, w=52)
    untiled = _run_float(ModelRestorer(tiny_generator(), device="cpu", precision="fp32", tile=0), frames, 8)
    tiled = _run_float(ModelRestorer(tiny_generator(), device="cpu", precision="fp32", tile=16), frames, 8)
    assert (untiled - tiled).abs().max() <= 1e-5


def test_out_of_memory_retries_with_smaller_tiles():
    class Picky(torch.nn.Module):
        """Raises CUDA's OOM error for inputs wider than 30 pixels, like a small GPU would."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            self.config = inner.config

        scale = property(lambda self: self.inner.scale)
        temporal_radius = property(lambda self: self.inner.temporal_radius)
        spatial_radius = property(lambda self: self.inner.spatial_radius)

        def forward(self, x):
            if x.shape[-1] > 40 + 2 * (self.inner.spatial_radius + 2):
                raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
            return self.inner(x)

    frames = _video(n=6, h=40, w=100)
    ref = _run_float(ModelRestorer(tiny_generator(), device="cpu", precision="fp32", tile=0), frames, 8)
    picky = ModelRestorer(Picky(tiny_generator()), device="cpu", precision="fp32", tile=0)
    got = _run_float(picky, frames, 8)
    assert picky.oom_retries >= 1
    assert got.shape == ref.shape and (got - ref).abs().max() <= 1e-5


def test_auto_tile_fits_budget(monkeypatch):
    r = ModelRestorer(tiny_generator(), device="cpu", precision="fp32", tile="auto")
    monkeypatch.setenv("ENHANCER_MEMORY_AVAILABLE", str(1 << 40))
    assert r.auto_tile(1080, 1920, 12) is None
    monkeypatch.setenv("ENHANCER_MEMORY_AVAILABLE", str(64 << 20))
    t = r.auto_tile(1080, 1920, 12)
    assert t is not None and 32 <= t < 1080


def test_restore_keeps_dtype_and_range():
    r = ModelRestorer(tiny_generator(), device="cpu", precision="fp32", tile=0)
    imgs8 = np.stack([f.image for f in _video(n=5)])
    out8 = r.restore(imgs8)
    assert out8.dtype == np.uint8 and out8.shape == (1, 48, 56, 3)
    out16 = r.restore(imgs8.astype(np.uint16) * 257)
    assert out16.dtype == np.uint16
    assert np.abs(out16.astype(np.int64) / 257 - out8).max() <= 1.01


def test_weights_round_trip_without_pickle(tmp_path):
    g = tiny_generator(seed=3)
    card = weights.ModelCard(name="tiny-x2", arch="stgan-generator", config=g.config.to_dict(), scale=2,
                             damage="test", recipe={"steps": 0}, metrics={"psnr_y": 1.0})
    path = tmp_path / "tiny-x2.safetensors"
    weights.save(g, path, card)
    g2, card2 = weights.load(path)
    x = torch.rand(1, 3, 6, 10, 10)
    with torch.no_grad():
        assert torch.equal(g(x), g2(x))
    assert card2.name == "tiny-x2" and card2.metrics == {"psnr_y": 1.0}
    head = path.read_bytes()[:9]
    assert head[8:9] == b"{" and not head.startswith((b"PK", b"\x80"))  # safetensors, not zip/pickle
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors at all")
    with pytest.raises(EnhancerError):
        weights.load(tmp_path / "junk.safetensors")
    with pytest.raises(EnhancerError, match="unknown model"):
        weights.resolve("no-such-model")


def test_discriminator_judges_clips_with_condition():
    """One logit per space-time patch of each clip, from the clip and its condition; the clip
    discriminator judges the order of frames where the frame discriminator only follows it."""
    torch.manual_seed(0)
    d = Discriminator(DiscriminatorConfig(channels=8)).eval()  # eval: spectral norm stops its power steps
    assert any("parametrizations" in n for n, _ in d.named_modules())  # spectral norm
    clip, cond = torch.rand(2, 3, 8, 64, 64), torch.rand(2, 3, 8, 64, 64)
    with torch.no_grad():
        logits, feats = d(clip, cond)
    # time halved by the first two layers, space by all three: a grid of patch logits per clip
    assert logits.shape == (2, 1, 2, 8, 8)
    assert [tuple(f.shape) for f in feats] == [(2, 8, 4, 32, 32), (2, 16, 2, 16, 16), (2, 32, 2, 8, 8)]
    # patches: a change in the top-left corner moves the top-left logits, not the far corner's,
    # and never the other clip's
    changed = clip.clone()
    changed[0, :, :, :8, :8] = 1 - changed[0, :, :, :8, :8]
    with torch.no_grad():
        after, _ = d(changed, cond)
    moved = (after - logits).abs()
    assert moved[0, 0, :, 0, 0].min() > 1e-4 and moved[0, 0, :, -1, -1].max() == 0 and moved[1].max() == 0
    # both inputs reach every logit: the gradient flows back to the clip and to the condition
    x, c = clip.clone().requires_grad_(), cond.clone().requires_grad_()
    d(x, c)[0][:, :, 1, 4, 4].sum().backward()
    assert c.grad.abs().sum() > 0
    seen = x.grad.abs().sum(dim=(0, 1, 2, 4)) > 0  # the rows of the picture the patch sees
    assert seen[24:40].all() and not seen[:8].any() and not seen[56:].any()  # its neighbourhood, not the frame
    # order in time: frames shuffled, the frame discriminator's logits are the same logits shuffled
    # (it judges frames one by one); the clip discriminator's are not any reordering of them
    perm = torch.tensor([3, 0, 6, 1, 7, 2, 5, 4])
    fd = FrameDiscriminator(DiscriminatorConfig(channels=8)).eval()
    with torch.no_grad():
        per_frame, _ = fd(losses.frames_of(clip), losses.frames_of(cond))
        per_frame_shuffled, _ = fd(losses.frames_of(clip[:, :, perm]), losses.frames_of(cond[:, :, perm]))
        shuffled, _ = d(clip[:, :, perm], cond[:, :, perm])
    torch.testing.assert_close(per_frame_shuffled.reshape(2, 8, -1), per_frame.reshape(2, 8, -1)[:, perm])
    assert (shuffled - logits).abs().max() > 1e-3 and (shuffled - logits.flip(2)).abs().max() > 1e-3


def test_discriminator_training_steps_move_it_towards_the_labels():
    """The trainer's update (losses.d_loss, Adam, in training mode) on sharp clips (real) and
    blurred copies (fake), both conditioned on the blurred clip: a few steps open a gap between the
    real clips' logits and the blurred ones', on every clip."""
    torch.manual_seed(0)
    d = Discriminator(DiscriminatorConfig(channels=8))
    opt = torch.optim.Adam(d.parameters(), lr=1e-3, betas=(0.5, 0.999))
    sharp = torch.rand(4, 3, 8, 32, 32)
    blurred = torch.nn.functional.avg_pool3d(sharp, (1, 5, 5), stride=1, padding=(0, 2, 2), count_include_pad=False)

    def gap() -> torch.Tensor:
        d.eval()
        with torch.no_grad():
            real, fake = d(sharp, blurred)[0], d(blurred, blurred)[0]
        d.train()
        return (real - fake).mean(dim=(1, 2, 3, 4))

    before = gap()
    assert before.abs().max() < 0.01  # untrained: no opinion
    for _ in range(3):
        loss = losses.d_loss(d(sharp, blurred)[0], d(blurred, blurred)[0])
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = gap()
    assert (after > before + 0.02).all(), (before, after)


def test_cli_runs_a_model_file_end_to_end(tmp_path):
    wdir = tmp_path / "w"
    g = tiny_generator(seed=5)
    weights.save(g, wdir / "tiny-x2.safetensors",
                 weights.ModelCard(name="tiny-x2", arch="stgan-generator", config=g.config.to_dict(), scale=2))
    src = make_clip(tmp_path / "in.mp4", seconds=1)
    env = {"ENHANCER_WEIGHTS": str(wdir)}
    r = run_cli("models", env=env)
    assert "tiny-x2" in r.stdout
    r = run_cli("enhance", str(src), "-o", str(tmp_path / "out.mp4"), "--model", "tiny-x2", "--chunk", "4",
                "--tile", "48", "--json", "-q", env=env)
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)
    assert row["status"] == "done" and row["frames"] == 25
    r = run_cli("enhance", str(src), "-o", str(tmp_path / "o2.mp4"), "--model", "tiny-x2", "--scale", "4", env=env)
    assert r.returncode == 2 and "x2" in r.stderr


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu():
    frames = _video(n=10, h=64, w=64)
    cpu = _run_float(ModelRestorer(tiny_generator(), device="cpu", precision="fp32", tile=0), frames, 8)
    gpu32 = _run_float(ModelRestorer(tiny_generator(), device="cuda", precision="fp32", tile=0), frames, 8)
    gpu16 = _run_float(ModelRestorer(tiny_generator(), device="cuda", precision="auto", tile=0), frames, 8)
    assert (cpu - gpu32).abs().max() < 1e-3
    assert (cpu - gpu16).abs().mean() < 2e-2
