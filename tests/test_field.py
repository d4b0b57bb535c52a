"""The field's models (.pth/.pt/.ckpt/.safetensors through spandrel, .onnx through onnxruntime) and
the temporal-consistency stage that steadies them. Tiny seeded models of a real architecture
(Real-ESRGAN's SRVGGNetCompact, as spandrel builds it), made here: nothing is downloaded."""
from __future__ import annotations

import json
import pickle
import warnings
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import make_clip, run_cli
from enhancer.errors import ModelError, UsageError
from enhancer.restore import field
from enhancer.restore.frames import FrameRestorer
from enhancer.restore.loading import load_restorer, parse_temporal
from enhancer.restore.restorer import ClassicalUpscaler
from enhancer.restore.temporal import TemporalConsistency
from enhancer.media.reader import Frame, windows
from enhancer.media.probe import count_frames, probe
from enhancer.pipeline.recipe import restorer_identity

spandrel = pytest.importorskip("spandrel")
from spandrel.architectures.Compact import Compact  # noqa: E402


def _compact(scale: int = 2, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=3, upscale=scale).eval()


@pytest.fixture(scope="module")
def compact_files(tmp_path_factory):
    """The same x2 model as .pth, .pt, .ckpt (a Lightning-style checkpoint) and .safetensors."""
    from safetensors.torch import save_file

    d = tmp_path_factory.mktemp("field")
    m = _compact()
    state = {k: v.contiguous() for k, v in m.state_dict().items()}
    torch.save(state, d / "compact-x2.pth")
    torch.save({"params_ema": state}, d / "compact-x2.pt")  # BasicSR's layout
    torch.save({"state_dict": {f"netG.{k}": v for k, v in state.items()}, "epoch": 3, "global_step": 1200,
                "hyper_parameters": {"lr": 1e-4}}, d / "compact-x2.ckpt")
    save_file(state, str(d / "compact-x2.safetensors"))
    return m, d


def _frames(n: int = 6, h: int = 40, w: int = 48, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def _direct(module: torch.nn.Module, frames: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        y = module(torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255).clamp(0, 1)
    return (y * 255).round().permute(0, 2, 3, 1).numpy().astype(np.uint8)


@pytest.mark.parametrize("suffix", [".pth", ".pt", ".ckpt", ".safetensors"])
def test_a_field_model_file_runs_frame_by_frame(compact_files, suffix):
    module, d = compact_files
    path = d / f"compact-x2{suffix}"
    r = load_restorer(str(path), device="cpu", precision="fp32", tile=0, temporal="off")
    assert isinstance(r, FrameRestorer) and r.margin == 0 and r.scale == 2
    info = r.describe()
    assert (info["kind"], info["arch"], info["source"]) == ("field", "RealESRGAN Compact", "spandrel")
    assert r.weights_sha256 == field.file_sha256(path)
    frames = _frames()
    out = r.restore(frames)
    assert out.shape == (6, 80, 96, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - _direct(module, frames)).max() <= 1
    deep = frames.astype(np.uint16) * 257  # a 16-bit source keeps its depth
    assert r.restore(deep).dtype == np.uint16
    bf16 = load_restorer(str(path), device="cpu", precision="bf16", tile=0, temporal="off")
    assert bf16.describe()["precision"] == "bf16" and np.abs(bf16.restore(frames).astype(int) - out).mean() < 2


def test_tiles_of_a_field_model_match_whole_frames(compact_files):
    _, d = compact_files
    frames = _frames(3, 70, 90)
    whole = load_restorer(str(d / "compact-x2.pth"), device="cpu", precision="fp32", tile=0, temporal="off")
    tiled = load_restorer(str(d / "compact-x2.pth"), device="cpu", precision="fp32", tile=32, temporal="off")
    assert np.abs(whole.restore(frames).astype(int) - tiled.restore(frames)).max() <= 1


def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(tmp_path):
    flag = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (flag,))

    with open(tmp_path / "evil.pth", "wb") as f:
        torch.save({"body.0.weight": torch.zeros(1), "payload": Payload()}, f, pickle_module=pickle)
    with pytest.raises(ModelError, match="run code"):
        load_restorer(str(tmp_path / "evil.pth"), device="cpu")
    assert not flag.exists()


def test_torchscript_and_unusable_files_are_one_line_errors(compact_files, tmp_path):
    module, _ = compact_files
    with torch.no_grad(), warnings.catch_warnings():  # TorchScript is deprecated, and still what people have
        warnings.simplefilter("ignore")
        torch.jit.trace(module, torch.zeros(1, 3, 8, 8)).save(str(tmp_path / "prog.pt"))
    with pytest.raises(ModelError, match="TorchScript"):
        load_restorer(str(tmp_path / "prog.pt"), device="cpu")
    torch.save({"encoder.weight": torch.zeros(4, 4)}, tmp_path / "other.pth")
    with pytest.raises(ModelError, match="no architecture"):
        load_restorer(str(tmp_path / "other.pth"), device="cpu")
    (tmp_path / "junk.pth").write_bytes(b"\x00not a model" * 50)
    with pytest.raises(ModelError, match="not a readable PyTorch file"):
        load_restorer(str(tmp_path / "junk.pth"), device="cpu")
    state = _compact().state_dict()
    state["body.0.weight"][0, 0, 0, 0] = float("nan")
    torch.save(state, tmp_path / "nan.pth")
    with pytest.raises(ModelError, match="not finite"):
        load_restorer(str(tmp_path / "nan.pth"), device="cpu")
    with pytest.raises(ModelError, match="no such weights file"):
        load_restorer(str(tmp_path / "missing.pth"), device="cpu")


def test_a_scale_the_model_does_not_do_names_its_own(compact_files):
    _, d = compact_files
    with pytest.raises(UsageError, match="works at x2, not x4.*scale 2"):
        load_restorer(str(d / "compact-x2.pth"), scale=4, device="cpu")


def test_frames_are_padded_to_what_the_architecture_takes():
    seen = []
    up = torch.nn.Upsample(scale_factor=2, mode="nearest")

    def run(x):
        seen.append(tuple(x.shape[-2:]))
        return up(x)

    fm = field.FrameModel(name="m", kind="spandrel", arch="test", scale=2, run=run, sha256="0", module=up,
                          multiple_of=16, minimum=32)
    r = FrameRestorer(fm, device="cpu", precision="fp32", tile=0)
    frames = _frames(2, 20, 45)
    out = r.restore(frames)
    assert seen == [(32, 48)] and out.shape == (2, 40, 90, 3)
    assert np.array_equal(out, frames.repeat(2, axis=1).repeat(2, axis=2))  # the padding is cut away again


def test_onnx_model_runs_and_a_fixed_size_one_is_refused(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    module = _compact()
    export = dict(input_names=["x"], output_names=["y"], dynamo=False)
    with torch.no_grad():
        torch.onnx.export(module, (torch.zeros(1, 3, 16, 16),), str(tmp_path / "c.onnx"),
                          dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}, "y": {0: "n", 2: "H", 3: "W"}}, **export)
        torch.onnx.export(module, (torch.zeros(1, 3, 16, 16),), str(tmp_path / "fixed.onnx"), **export)
    r = load_restorer(str(tmp_path / "c.onnx"), device="cpu", temporal="off")
    assert r.scale == 2 and r.describe()["source"] == "onnx" and r.describe()["precision"] == "fp32"
    frames = _frames()
    assert np.abs(r.restore(frames).astype(int) - _direct(module, frames)).max() <= 1
    with pytest.raises(ModelError, match="only 16x16 images.*dynamic axes"):
        load_restorer(str(tmp_path / "fixed.onnx"), device="cpu")
    with pytest.raises(UsageError, match="runs in fp32, not bf16"):
        load_restorer(str(tmp_path / "c.onnx"), device="cpu", precision="bf16")
    from enhancer.restore.inspect import inspect_model

    items = dict(inspect_model(str(tmp_path / "c.onnx"), device="cpu"))
    assert items["architecture"].startswith("onnx (read by onnxruntime") and items["scale"] == "x2"
    assert items["precisions"] == "fp32" and items["parameters"].replace(",", "").isdigit()
    assert items["enhance runs it"].startswith("on cpu in fp32") and items["temporal stage"].startswith("on:")


# ---- the temporal-consistency stage ---------------------------------------------------------
def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth random colour texture in [0, 1] (something optical flow can follow)."""
    rng = np.random.default_rng(seed)
    small = rng.random((h // 6, w // 6, 3)).astype(np.float32)
    return cv2.GaussianBlur(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), (0, 0), 1.0).clip(0, 1)


def _pan(n: int, h: int = 64, w: int = 96, step: int = 3, seed: int = 0) -> np.ndarray:
    big = _texture(h + 20, w + step * n + 20, seed)
    return np.stack([big[10:10 + h, 10 + step * i:10 + step * i + w] for i in range(n)])


def _u8(x: np.ndarray) -> np.ndarray:
    return (x.clip(0, 1) * 255 + 0.5).astype(np.uint8)


def _run(restorer, frames: np.ndarray, chunk: int) -> np.ndarray:
    stream = (Frame(index=i, pts=i, time_base=Fraction(1, 25), image=f) for i, f in enumerate(frames))
    outs = [restorer.restore(np.stack(w.images)) for w in windows(stream, restorer.margin, chunk)]
    return np.concatenate(outs)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255 ** 2 / max(mse, 1e-12))


def test_temporal_stage_is_the_same_however_the_video_is_chunked():
    frames = _u8(_pan(14))
    one = _run(TemporalConsistency(ClassicalUpscaler("bicubic", 2), radius=2), frames, chunk=14)
    assert one.shape == (14, 128, 192, 3)
    for chunk in (1, 3, 8):
        assert np.array_equal(_run(TemporalConsistency(ClassicalUpscaler("bicubic", 2), radius=2), frames, chunk),
                              one), chunk


def test_temporal_stage_steadies_noise_and_follows_motion():
    clean = _pan(12, step=3)
    noisy = _u8(clean + np.random.default_rng(5).normal(0, 0.04, clean.shape).astype(np.float32))
    per_frame = ClassicalUpscaler("bicubic", 2)
    truth = _u8(np.stack([cv2.resize(f, (192, 128), interpolation=cv2.INTER_CUBIC) for f in clean]))
    plain = _run(per_frame, noisy, 12)
    steady = _run(TemporalConsistency(per_frame, radius=2), noisy, 12)
    core = slice(2, 10)  # away from the mirrored ends
    # the picture moves 6 output pixels a frame: blending neighbours warped by the flow brings the
    # output nearer the clean picture; unaligned blending would smear it far below
    assert _psnr(steady[core], truth[core]) > _psnr(plain[core], truth[core]) + 1.5
    # frame-to-frame change, once the motion is taken out (the clean pan's own change subtracted)
    def flicker(x):
        return np.abs(np.diff(x[core].astype(np.float32) - truth[core], axis=0)).mean()
    assert flicker(steady) < 0.7 * flicker(plain)


def test_temporal_stage_keeps_a_deep_source_deep():
    frames = _u8(_pan(7))
    eight = _run(TemporalConsistency(ClassicalUpscaler("bicubic", 2), radius=1), frames, 7)
    deep = _run(TemporalConsistency(ClassicalUpscaler("bicubic", 2), radius=1), frames.astype(np.uint16) * 257, 7)
    assert deep.dtype == np.uint16 and np.abs(deep / 257 - eight).max() <= 1.5


def test_temporal_stage_does_not_blend_across_a_scene_cut():
    a, b = _pan(6, seed=1), _pan(6, seed=2)
    frames = _u8(np.concatenate([a, b]))
    plain = _run(ClassicalUpscaler("bicubic", 2), frames, 12)
    steady = _run(TemporalConsistency(ClassicalUpscaler("bicubic", 2), radius=2), frames, 12)
    for i in (4, 5, 6, 7):  # the frames either side of the cut keep their own picture
        assert _psnr(steady[i], plain[i]) > 40, i


def test_temporal_setting_reaches_the_recipe_and_fits_only_per_frame_models(compact_files):
    _, d = compact_files
    path = str(d / "compact-x2.pth")
    auto = load_restorer(path, device="cpu", precision="fp32")
    assert isinstance(auto, TemporalConsistency) and auto.margin == 2 and auto.inner.margin == 0
    assert restorer_identity(auto)["temporal"] == {"radius": 2, "strength": 0.5}
    one = load_restorer(path, device="cpu", precision="fp32", temporal=1)
    off = load_restorer(path, device="cpu", precision="fp32", temporal="off")
    idents = [restorer_identity(r) for r in (auto, one, off)]
    assert len({json.dumps(i, sort_keys=True) for i in idents}) == 3 and "temporal" not in idents[2]
    assert all(i["weights_sha256"] == field.file_sha256(path) for i in idents)
    # enhancer's own models and classical methods keep the keys they had
    assert "temporal" not in restorer_identity(load_restorer("lanczos"))
    assert isinstance(load_restorer("lanczos", temporal=1), TemporalConsistency)
    with pytest.raises(UsageError, match="spatio-temporal model"):
        load_restorer("general-x2", device="cpu", temporal=2)
    assert [parse_temporal(v) for v in ("auto", "off", "0", 3, None)] == [None, 0, 0, 3, None]
    assert parse_temporal("on") == parse_temporal(" ON ") == 2
    for bad in ("5", "-1", "two", True, "yes"):
        with pytest.raises(UsageError):
            parse_temporal(bad)


@pytest.mark.slow  # eight runs of the CLI; the field model files run in-process above
def test_cli_enhances_with_a_field_model_file(compact_files, tmp_path):
    _, d = compact_files
    src = make_clip(tmp_path / "clip.mp4", seconds=0.6)
    dst = tmp_path / "out.mp4"
    args = ("enhance", str(src), "-o", str(dst), "-m", str(d / "compact-x2.pth"), "--json", "-q")
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)
    info = probe(str(dst))
    assert row["status"] == "done" and (info.width, info.height) == (192, 128)
    assert count_frames(str(dst)) == count_frames(str(src)) == row["frames"]
    assert json.loads(run_cli(*args).stdout)["status"] == "skipped"  # same recipe
    assert json.loads(run_cli(*args, "--temporal", "off").stdout)["status"] == "done"  # another recipe
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"junk")
    r = run_cli("enhance", str(src), "-o", str(tmp_path / "x.mp4"), "-m", str(bad), "-q")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "bad.pth" in r.stderr, r.stderr
    r = run_cli("enhance", str(src), "-o", str(tmp_path / "x.mp4"), "-m", "lanczos", "--temporal", "9", "-q")
    assert r.returncode == 2 and "--temporal" in r.stderr
    # on is auto's radius for a field model: after the off run, on redoes it and auto then finds it made
    assert json.loads(run_cli(*args, "--temporal", "on").stdout)["status"] == "done"
    assert json.loads(run_cli(*args, "--temporal", "on").stdout)["status"] == "skipped"
    assert json.loads(run_cli(*args).stdout)["status"] == "skipped"


@pytest.mark.slow  # two runs of the watch command; the temporal setting is checked in-process above
def test_temporal_on_for_any_per_frame_model_in_api_ray_spec_and_watch(tmp_path):
    import enhancer
    from enhancer.pipeline.request import ModelChoice

    for r in (load_restorer("lanczos", temporal="on"), ModelChoice("lanczos", temporal="on").load(),
              enhancer.Enhancer("lanczos", temporal="on")._restorer):
        assert isinstance(r, TemporalConsistency) and r.radius == 2 and r.margin == 2
    assert not isinstance(enhancer.Enhancer("lanczos", temporal="auto")._restorer, TemporalConsistency)
    with pytest.raises(UsageError, match="spatio-temporal model"):
        load_restorer("general-x2", device="cpu", temporal="on")
    (tmp_path / "in").mkdir()
    src = make_clip(tmp_path / "in" / "clip.mp4", seconds=0.3)
    out = tmp_path / "out"
    r = run_cli("watch", str(src.parent), "-o", str(out), "--once", "--settle", "0.1", "-m", "lanczos",
                "--temporal", "on", "-q")
    assert r.returncode == 0, r.stderr
    assert count_frames(str(out / "clip.mp4")) == count_frames(str(src))
    r = run_cli("watch", str(src.parent), "-o", str(out), "--once", "-m", "lanczos", "--temporal", "always")
    assert r.returncode == 2 and "--temporal" in r.stderr and "on" in r.stderr


@pytest.mark.slow  # eight runs of the CLI; inspect_model itself runs in the ONNX test
def test_models_inspect_says_what_the_file_is_and_what_enhance_does(compact_files, tmp_path):
    m, d = compact_files
    path = d / "compact-x2.pth"
    r = run_cli("models", "--inspect", str(path))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    items = dict(line.split(": ", 1) for line in lines)
    assert len(items) == len(lines)  # one item a line
    assert {"architecture", "scale", "parameters", "channels", "value range", "precisions", "size needs",
            "tiling advice", "sha256", "enhance runs it", "temporal stage", "tiling"} <= set(items)
    assert items["architecture"].startswith("RealESRGAN Compact (read by spandrel")
    assert items["scale"] == "x2" and items["parameters"] == f"{sum(p.numel() for p in m.parameters()):,}"
    assert items["sha256"] == field.file_sha256(path) and items["channels"].startswith("3 in, 3 out")
    assert items["precisions"] == "fp32, bf16, fp16" and items["enhance runs it"].startswith("on cpu in ")
    assert items["temporal stage"].startswith("on: each frame blended with 2 neighbours")
    assert "--tile auto" in items["tiling"]
    as_json = json.loads(run_cli("models", "--inspect", str(path), "--json").stdout)
    assert as_json.keys() == items.keys() and as_json["sha256"] == items["sha256"]  # tiles follow free memory
    # enhancer's own models, by name and by file
    own = dict(line.split(": ", 1) for line in run_cli("models", "--inspect", "general-x2").stdout.splitlines())
    assert "enhancer's own model general-x2" in own["architecture"] and own["scale"] == "x2"
    assert own["temporal stage"].startswith("off (enhancer's own models see their neighbours")
    assert own["sha256"] == field.file_sha256(own["file"])
    by_file = dict(line.split(": ", 1) for line in run_cli("models", "--inspect", own["file"]).stdout.splitlines())
    assert by_file["sha256"] == own["sha256"] and by_file["architecture"] == own["architecture"]
    # the size needs of a transformer, and its advice against tiles
    from enhancer.restore.inspect import inspect_model
    from spandrel.architectures.SwinIR import SwinIR

    torch.manual_seed(0)
    swin = SwinIR(upscale=2, img_size=16, window_size=4, embed_dim=12, depths=[1], num_heads=[2], mlp_ratio=2,
                  upsampler="pixelshuffledirect")
    torch.save({"params": swin.state_dict()}, tmp_path / "swinir-x2.pth")
    items = dict(inspect_model(str(tmp_path / "swinir-x2.pth"), device="cpu"))
    assert items["architecture"].startswith("SwinIR") and items["size needs"].startswith("at least 16 pixels")
    assert "against tiles" in items["tiling advice"] and items["tiling"].startswith("whole frames")
    # errors: one line, exit 2
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"junk")
    for arg in (str(bad), str(tmp_path / "missing.pth"), "no-such-model", "lanczos"):
        r = run_cli("models", "--inspect", arg)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and r.stdout == "", (arg, r.stderr)


def test_a_pytorch_too_old_to_unpickle_safely_is_refused_before_the_file_is_read(compact_files, monkeypatch):
    m, d = compact_files

    def no_load(*a, **k):
        raise AssertionError("torch.load ran")

    for version in ("2.9.1+cu121", "2.5.1", "1.13.0", "nightly"):
        monkeypatch.setattr(torch, "__version__", version)
        monkeypatch.setattr(torch, "load", no_load)
        for suffix in (".pth", ".pt", ".ckpt"):
            with pytest.raises(ModelError, match=r"PyTorch .* cannot read a pickled model file safely") as e:
                field.load(d / f"compact-x2{suffix}")
            text = str(e.value)
            assert "\n" not in text and "pip install 'torch>=2.10'" in text and f"compact-x2{suffix}" in text
    monkeypatch.setattr(torch, "__version__", "2.5.1")
    # safetensors holds no pickle: any PyTorch reads it
    assert field.load(d / "compact-x2.safetensors").arch == "RealESRGAN Compact"
    monkeypatch.undo()
    monkeypatch.setattr(torch, "__version__", "2.10.0+cpu")
    assert field.load(d / "compact-x2.pth").scale == 2


@pytest.mark.slow  # about 16 s: a benchmark of six methods
def test_benchmark_and_its_report_put_a_model_file_beside_enhancers_own_and_the_classical(tmp_path):
    # Real-ESRGAN's SRVGGNetCompact (spandrel's Compact) with random weights, saved as people publish it
    torch.save({"params": _compact(seed=3).state_dict()}, tmp_path / "compact-x2.pth")
    clean = make_clip(tmp_path / "clean.mp4", size="64x48", seconds=0.4)
    out = tmp_path / "bench"
    r = run_cli("benchmark", str(clean), "--scale", "2", "--models", f"{tmp_path / 'compact-x2.pth'},general-x2",
                "--metrics", "psnr_y", "-o", str(out), "-q")
    assert r.returncode == 0, r.stderr
    rows = [line.split("|")[1].strip() for line in r.stdout.splitlines() if line.startswith("| ")][1:]
    assert rows == ["compact-x2.pth", "general-x2", "bicubic", "lanczos", "hqdn3d+lanczos", "nlmeans+lanczos"]
    data = json.loads((out / "benchmark.json").read_text())
    assert data["model_files"] == {"compact-x2.pth": {
        "path": str((tmp_path / "compact-x2.pth").resolve()), "sha256": field.file_sha256(tmp_path / "compact-x2.pth"),
        "arch": "RealESRGAN Compact", "temporal_radius": 2}}
    assert data["means"]["compact-x2.pth"]["psnr_y"] > 10
    made = [x["output"] for x in data["results"] if x["method"] == "compact-x2.pth"]
    assert made == [str(out / "compact-x2.pth" / "clean.mkv")]
    assert (probe(made[0]).width, probe(made[0]).height) == (64, 48)  # the clean size: degraded x2, restored x2
    assert "compact-x2.pth" in (out / "report" / "index.html").read_text()
    # a file of another scale: one line, exit 2, before any work
    r = run_cli("benchmark", str(clean), "--scale", "4", "--models", str(tmp_path / "compact-x2.pth"),
                "-o", str(tmp_path / "b4"), "-q")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "x2" in r.stderr, r.stderr


def _arch_cases():
    """Small real architectures as spandrel builds them, each saved the way its authors publish it."""
    from spandrel.architectures.ESRGAN import ESRGAN
    from spandrel.architectures.SPAN import SPAN
    from spandrel.architectures.SwinIR import SwinIR

    return [
        ("ESRGAN", ".pth", "bare", lambda: ESRGAN(num_filters=8, num_blocks=1, scale=4)),  # RRDBNet, as x4plus
        ("SPAN", ".safetensors", "bare", lambda: SPAN(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=2)),
        ("SwinIR", ".pth", "params", lambda: SwinIR(upscale=2, img_size=16, window_size=4, embed_dim=12, depths=[1],
                                                     num_heads=[2], mlp_ratio=2, upsampler="pixelshuffledirect")),
    ]


@pytest.mark.parametrize("arch,suffix,layout,build", _arch_cases(), ids=[c[0] for c in _arch_cases()])
def test_architectures_of_the_field_match_a_direct_run(tmp_path, arch, suffix, layout, build):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    module = build().eval()
    state = {k: v.contiguous() for k, v in module.state_dict().items()}
    path = tmp_path / f"m{suffix}"
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save({layout: state} if layout != "bare" else state, path)
    r = load_restorer(str(path), device="cpu", precision="fp32", tile=0, temporal="off")
    assert r.frame_model.arch == arch
    frames = _frames(2, 24, 32)
    assert _psnr(r.restore(frames), _direct(module, frames)) >= 45
