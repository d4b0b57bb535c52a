"""int8 inference of the aligned-fusion generator: close to fp32, tile- and chunk-exact, calibrated
from training sets, chosen or refused with a reason."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import make_clip, run_cli
from enhancer.errors import ModelError, UsageError
from enhancer.models.fusion import FusionConfig, FusionGenerator
from enhancer.pipeline.recipe import restorer_identity
from enhancer.restore import int8, weights
from enhancer.restore.neural import ModelRestorer
from test_fusion import _pan, pan_set  # noqa: F401 (a fixture)

needs_int8 = pytest.mark.skipif(not int8.available(), reason="this CPU or PyTorch has no VNNI int8 convolution")
SMALL = dict(channels=16, low_channels=16, low_blocks=2, high_blocks=1)


def _trained_like(scale: int = 2, seed: int = 0) -> FusionGenerator:
    """A small fusion model whose residual over the bicubic base is of a trained one's size (RMS
    about 0.07): PyTorch's initialisation, the output convolution's weights made non-zero."""
    torch.manual_seed(seed)
    g = FusionGenerator(FusionConfig(scale=scale, **SMALL))
    with torch.no_grad():
        g.tail.weight.normal_(0, 0.03)
    return g.eval()


def _stacks(n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    frames = np.concatenate([_pan(5, h, w, 3, seed + k) for k in range(n)])
    x = torch.from_numpy(frames.reshape(n, 5, h, w, 3)).permute(0, 1, 4, 2, 3).reshape(n, 15, h, w)
    return (x * 255).round() / 255


def _card(g: FusionGenerator, ranges: dict) -> dict:
    return {"name": "small", "int8": ranges, "arch": "aligned-fusion"}


@pytest.fixture(scope="module")
def calibrated():
    g = _trained_like()
    return g, int8.calibrate(g, [_stacks(1, 40, 56, seed=s) for s in range(4)])


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / ((a.clamp(0, 1) - b.clamp(0, 1)) ** 2).mean()))


@needs_int8
@pytest.mark.parametrize("scale", [1, 2, 4])
def test_int8_is_close_to_fp32(scale):
    g = _trained_like(scale)
    ranges = int8.calibrate(g, [_stacks(1, 40, 56, seed=s) for s in range(4)])
    q = int8.Int8Fusion(g, ranges)
    x = _stacks(2, 37, 51, seed=9)  # odd sizes, not seen in calibration
    with torch.no_grad():
        ref = g(x)
    out = q(x)
    assert out.shape == ref.shape == (2, 3, 37 * scale, 51 * scale) and out.dtype == torch.float32
    assert _psnr(out, ref) > 50
    # int8 changes the residual only: its error is a small share of the residual's energy
    base = x[:, 6:9] if scale == 1 else torch.nn.functional.interpolate(x[:, 6:9], scale_factor=scale, mode="bicubic")
    residual = ref - base
    assert 0.03 < float(residual.pow(2).mean().sqrt()) < 0.2
    assert float((out - ref).pow(2).mean()) < 0.003 * float(residual.pow(2).mean())


@needs_int8
def test_tiles_chunks_and_batches_are_exact(calibrated):
    g, ranges = calibrated
    frames = (_pan(12, 45, 61, 2) * 255).astype(np.uint8)
    whole = ModelRestorer(g, device="cpu", precision="int8", tile=0, chunk=8, card=_card(g, ranges))
    assert whole.describe()["precision"] == "int8"
    ref = whole.restore(frames)  # 8 output frames
    tiled = ModelRestorer(g, device="cpu", precision="int8", tile=16, chunk=3, card=_card(g, ranges))
    assert np.array_equal(tiled.restore(frames), ref)
    assert np.array_equal(whole.restore(frames[3:10]), ref[3:6])
    one = int8.Int8Fusion(g, ranges)
    x = _stacks(3, 33, 47)
    assert torch.equal(torch.cat([one(x[k:k + 1]) for k in range(3)]), one(x))
    deep = whole.restore(frames.astype(np.uint16) * 257)
    assert deep.dtype == np.uint16 and np.abs(deep.astype(int) // 257 - ref).max() <= 1


@needs_int8
def test_auto_takes_int8_only_where_calibrated(calibrated, monkeypatch):
    g, ranges = calibrated
    monkeypatch.setattr(int8, "AUTO", True)
    monkeypatch.setattr(int8, "weight_max", lambda: 127)  # (without VNNI auto is for measured models only, below)
    assert ModelRestorer(g, device="cpu", card=_card(g, ranges)).describe()["precision"] == "int8"
    assert ModelRestorer(g, device="cpu", card=_card(g, {})).describe()["precision"] != "int8"
    assert ModelRestorer(g, device="cpu", precision="fp32", card=_card(g, ranges)).describe()["precision"] == "fp32"
    monkeypatch.setenv("ENHANCER_CPU_INT8", "0")
    assert ModelRestorer(g, device="cpu", card=_card(g, ranges)).describe()["precision"] != "int8"
    monkeypatch.delenv("ENHANCER_CPU_INT8")
    monkeypatch.setattr(int8, "AUTO", False)
    assert ModelRestorer(g, device="cpu", card=_card(g, ranges)).describe()["precision"] != "int8"


@needs_int8
def test_the_ranges_enter_the_recipe(calibrated):
    g, ranges = calibrated
    a = restorer_identity(ModelRestorer(g, device="cpu", precision="int8", card=_card(g, ranges)))
    wider = {k: [v[0] * 1.5, v[1] * 1.5] for k, v in ranges.items()}
    b = restorer_identity(ModelRestorer(g, device="cpu", precision="int8", card=_card(g, wider)))
    c = restorer_identity(ModelRestorer(g, device="cpu", precision="bf16", card=_card(g, ranges)))
    assert a["precision"] == "int8" and a["int8"] != b["int8"] and "int8" not in c


def test_int8_is_refused_with_a_reason(calibrated, monkeypatch):
    g, ranges = calibrated
    with pytest.raises(UsageError, match="not calibrated for int8"):
        ModelRestorer(g, device="cpu", precision="int8", card=_card(g, {}))
    from enhancer.models.st3d import ST3DConfig, ST3DGenerator

    st = ST3DGenerator(ST3DConfig(channels=8, low_channels=8, time_channels=8, confidence_channels=8, low_blocks=1,
                                  high_blocks=1))
    with pytest.raises(UsageError, match="aligned-fusion"):
        ModelRestorer(st, device="cpu", precision="int8", card={"name": "st", "int8": ranges})
    bad = dict(ranges)
    bad.pop("tail.in")
    with pytest.raises(ModelError, match="tail.in"):
        ModelRestorer(g, device="cpu", precision="int8", card=_card(g, bad))
    monkeypatch.setenv("ENHANCER_CPU_INT8", "0")
    with pytest.raises(UsageError, match="VNNI"):
        ModelRestorer(g, device="cpu", precision="int8", card=_card(g, ranges))


@needs_int8
def test_calibrate_command_then_enhance_in_int8(pan_set, tmp_path):  # noqa: F811
    g = _trained_like()
    path = tmp_path / "small.safetensors"
    weights.save(g, path, weights.ModelCard(name="small", arch="aligned-fusion", config=g.config.to_dict(), scale=2))
    before = weights.load_model(path).sha256
    r = run_cli("enhance", str(make_clip(tmp_path / "c.mp4", seconds=0.3)), "-o", str(tmp_path / "x.mp4"),
                "--model", str(path), "--precision", "int8")
    assert r.returncode == 2 and "not calibrated for int8" in r.stderr and "enhancer calibrate" in r.stderr
    r = run_cli("calibrate", str(path), "--data", str(pan_set), "--windows", "6")
    assert r.returncode == 0, r.stderr
    loaded = weights.load_model(path)
    assert loaded.sha256 == before and int8.check_ranges(loaded.card.int8, loaded.model) is None
    r = run_cli("enhance", str(tmp_path / "c.mp4"), "-o", str(tmp_path / "e.mkv"), "--model", str(path),
                "--precision", "int8", "--codec", "ffv1")
    assert r.returncode == 0, r.stderr
    r = run_cli("enhance", str(tmp_path / "c.mp4"), "-o", str(tmp_path / "f.mkv"), "--model", str(path),
                "--precision", "fp32", "--codec", "ffv1")
    assert r.returncode == 0, r.stderr
    from enhancer.quality.clips import frames

    a = np.stack(list(frames(str(tmp_path / "e.mkv")))).astype(float)
    b = np.stack(list(frames(str(tmp_path / "f.mkv")))).astype(float)
    assert a.shape == b.shape and 10 * np.log10(255 ** 2 / ((a - b) ** 2).mean()) > 40


def test_calibrate_command_refuses_what_it_cannot_do(pan_set, tmp_path):  # noqa: F811
    r = run_cli("calibrate", "general-x2-gan", "--data", str(pan_set), "-o", str(tmp_path / "x.safetensors"))
    assert r.returncode == 2 and "aligned-fusion" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run_cli("calibrate", "general-x2", "--data", str(tmp_path / "none.npz"), "-o", str(tmp_path / "x.safetensors"))
    assert r.returncode == 2 and "no such training set" in r.stderr
    assert not (tmp_path / "x.safetensors").exists()


def test_every_shipped_fusion_model_is_calibrated():
    shipped = [(n, p) for n, p, c in weights.catalogue() if c.arch == "aligned-fusion"]
    assert len(shipped) >= 5
    for name, path in shipped:
        loaded = weights.load_model(path)
        assert int8.check_ranges(loaded.card.int8, loaded.model) is None, name


def test_the_default_model_runs_in_int8_where_the_cpu_can():
    from enhancer.restore.loading import load_restorer

    got = load_restorer("general-x2", device="cpu").describe()["precision"]
    assert got == "int8" if int8.available() else got != "int8"
    assert load_restorer("general-x2-gan", device="cpu").describe()["precision"] != "int8"  # the 3D generator


def test_hostile_ranges_are_refused_not_crashed_on(calibrated):
    g, ranges = calibrated
    extra = {**ranges, "zzz": [0.0, 0.0], "yyy": []}  # keys it does not use are ignored
    assert int8.Int8Fusion(g, extra) is not None
    for bad in ([-1e308, 1e308], [0.0, 1e-310], [0.5, 1.0], [float("nan"), 1.0]):
        with pytest.raises(ModelError, match="int8 range feat"):
            ModelRestorer(g, device="cpu", precision="int8", card=_card(g, {**ranges, "feat": bad}))
    card = weights.ModelCard(name="x", arch="aligned-fusion", config=g.config.to_dict(), scale=2)
    assert '"int8"' not in card.to_json()  # older enhancers still read a card without ranges
    text = card.to_json().replace('"name": "x"', '"int8": {"feat": [0, ' + "9" * 400 + '], "x": [0, 1]}, "name": "x"')
    with pytest.raises(ModelError, match="must be finite"):
        weights.ModelCard.from_json(text)


@needs_int8
def test_passes_aligned_ahead_give_the_same_frames(calibrated, monkeypatch):
    g, ranges = calibrated
    frames = (_pan(10, 45, 61, 2) * 255).astype(np.uint8)
    one = ModelRestorer(g, device="cpu", precision="int8", tile=0, card=_card(g, ranges)).restore(frames)
    import enhancer.restore.neural as neural

    monkeypatch.setattr(neural, "CPU_PASS_PIXELS", 45 * 61)  # a stack a pass: the next aligned in a thread
    calls = []
    real = neural.align_stacks
    monkeypatch.setattr(neural, "align_stacks", lambda f, r, centres: calls.append(centres) or real(f, r, centres))
    many = ModelRestorer(g, device="cpu", precision="int8", tile=0, card=_card(g, ranges)).restore(frames)
    assert len(calls) == 6 and np.array_equal(many, one)


def test_auto_leaves_texture_variants_in_their_measured_precision(calibrated, monkeypatch):
    g, ranges = calibrated
    monkeypatch.setattr(int8, "available", lambda: True)
    card = {**_card(g, ranges), "variant": "texture"}
    assert ModelRestorer(g, device="cpu", card=card).describe()["precision"] != "int8"


@needs_int8
def test_inspect_says_int8(capsys):
    r = run_cli("models", "--inspect", "general-x2")
    assert r.returncode == 0, r.stderr
    assert "in int8" in r.stdout and "int8 (on x86 CPUs with VNNI or AVX2" in r.stdout and "parameters: 0" not in r.stdout


def test_a_damaged_training_set_is_one_line(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04" + b"\0" * 64)
    r = run_cli("calibrate", "general-x2", "--data", str(bad), "-o", str(tmp_path / "x.safetensors"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "cannot read the training sets" in r.stderr


def test_calibrate_never_writes_over_its_training_set(pan_set, tmp_path):  # noqa: F811
    import shutil

    data = tmp_path / "set.npz"
    shutil.copy(pan_set, data)
    before = data.read_bytes()
    for out, words in ((data, "one of the training sets"), (tmp_path / "m.pt", "must end in .safetensors"),
                       (tmp_path, "is a folder")):
        r = run_cli("calibrate", "general-x2", "--data", str(data), "-o", str(out))
        assert r.returncode == 2 and words in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert data.read_bytes() == before


def test_weights_are_7_bit_where_the_cpu_has_no_vnni(monkeypatch):
    """Without VNNI two u8 x s8 products are added in a saturating 16-bit sum, so the weights are
    7-bit there (255 * 63 * 2 < 32,767); the width enters the recipe, since it changes the pixels."""
    monkeypatch.delenv("ENHANCER_CPU_INT8", raising=False)
    ranges = {"feat": [0.0, 1.0]}
    monkeypatch.setattr(int8, "cpu_flags", lambda: frozenset({"avx2", "avx512_vnni"}))
    assert int8.weight_max() == 127
    vnni_key = int8.recipe_key(ranges)
    monkeypatch.setattr(int8, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    assert int8.weight_max() == 63 and int8.recipe_key(ranges) != vnni_key
    monkeypatch.setattr(int8, "cpu_flags", lambda: frozenset({"sse4_2"}))
    assert not int8.available()


@needs_int8
def test_7_bit_weights_do_not_saturate_on_the_worst_input():
    """The largest input (255) under weights of one sign: 72 products per output pixel, exact."""
    import torch

    conv = torch.nn.Conv2d(8, 2, 3, padding=1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0] = 1.0
        conv.weight[1] = -1.0
        conv.bias.zero_()
    x = torch.full((1, 8, 6, 6), 255, dtype=torch.uint8).contiguous(memory_format=torch.channels_last)
    out = int8._QConv(conv, (1 / 255, 0), w_max=63)(x, None)
    assert torch.allclose(out[0, 0, 1:-1, 1:-1], torch.full((4, 4), 72.0), atol=1e-3)
    assert torch.allclose(out[0, 1, 1:-1, 1:-1], torch.full((4, 4), -72.0), atol=1e-3)


def test_auto_takes_7_bit_int8_only_for_the_models_measured_in_it(calibrated, monkeypatch):
    """Without VNNI, auto runs int8 for the shipped models measured within 0.05 dB of fp32 in it
    (archive-x1 lost 0.052 dB there and stays fp32); with VNNI, for every calibrated fidelity model."""
    g, ranges = calibrated
    monkeypatch.setattr(int8, "available", lambda: True)
    for name, vnni, want in (("general-x2", False, True), ("archive-x1", False, False), ("mine", False, False),
                             ("archive-x1", True, True), ("mine", True, True)):
        monkeypatch.setattr(int8, "weight_max", lambda vnni=vnni: 127 if vnni else 63)
        card = {**_card(g, ranges), "name": name}
        got = ModelRestorer(g, device="cpu", card=card).describe()["precision"] == "int8"
        assert got is want, (name, vnni)
