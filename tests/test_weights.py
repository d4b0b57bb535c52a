"""Model files are untrusted input: every card field is checked before anything is built, weights
must be finite and so must what they produce; tile and chunk sizes follow the memory available
(issue 13, items 14-16)."""
from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from conftest import make_clip, run_cli
from enhancer.restore import weights
from enhancer.errors import ModelError
from enhancer.restore.device import free_memory, memory_budget
from enhancer.restore.neural import ModelRestorer
from enhancer.models import Generator, GeneratorConfig

TINY = dict(channels=8, frame_blocks=1, temporal_blocks=2, post_blocks=1)


def tiny(seed: int = 0, scale: int = 2) -> Generator:
    torch.manual_seed(seed)
    g = Generator(GeneratorConfig(scale=scale, **TINY))
    with torch.no_grad():
        for p in g.parameters():
            p.normal_(0, 0.1)
    return g.eval()


def card_of(g: Generator, **changes) -> dict:
    card = {"format": "enhancer-weights", "name": "tiny", "arch": "stgan-generator", "config": g.config.to_dict(),
            "scale": g.config.scale, "damage": "", "recipe": {}, "metrics": {}, "notes": "", "version": 1}
    for key, value in changes.items():
        if key.startswith("config."):
            card["config"][key[7:]] = value
        elif value is _DROP:
            card.pop(key)
        else:
            card[key] = value
    return card


_DROP = object()


def write(path: Path, card, tensors: dict | None = None, g: Generator | None = None) -> Path:
    g = g or tiny()
    tensors = tensors if tensors is not None else {k: v.contiguous() for k, v in g.state_dict().items()}
    save_file(tensors, str(path), metadata={"enhancer": card if isinstance(card, str) else json.dumps(card)})
    return path


BAD_CARDS = {
    "channels 1e9": {"config.channels": 1e9},
    "channels 1e5": {"config.channels": 100000},
    "channels -5": {"config.channels": -5},
    "channels '32'": {"config.channels": "32"},
    "channels true": {"config.channels": True},
    "unknown config key": {"config.dropout": 0.1},
    "config 'x'": {"config": "x"},
    "scale 3": {"scale": 3, "config.scale": 3},
    "scale differs from config": {"scale": 4},
    "temporal_blocks 1e6": {"config.temporal_blocks": 1000000},
    "frame_blocks 1e7": {"config.frame_blocks": 10000000},
    "temporal_blocks 1": {"config.temporal_blocks": 1},
    "unknown card key": {"licence": "mine"},
    "name not a string": {"name": 7},
    "no arch": {"arch": _DROP},
    "unknown arch": {"arch": "transformer"},
    "version 'one'": {"version": "one"},
    "metrics a list": {"metrics": [1, 2]},
}


@pytest.mark.parametrize("case", sorted(BAD_CARDS))
def test_bad_cards_are_refused_before_anything_is_built(tmp_path, case):
    """Item 14: card values were trusted: tracebacks, and configs that ate 12 GB."""
    path = write(tmp_path / "bad.safetensors", card_of(tiny(), **BAD_CARDS[case]))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with pytest.raises(ModelError) as err:
        weights.load_model(path)
    assert time.perf_counter() - t0 < 5 and resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000
    line = str(err.value)
    assert "\n" not in line and "bad.safetensors" in line


@pytest.mark.parametrize("card", ["[]", "null", '"text"', "{" * 10_000, "[" * 100_000 + "]" * 100_000, "not json"])
def test_cards_that_are_not_objects(tmp_path, card):
    with pytest.raises(ModelError):
        weights.load_model(write(tmp_path / "bad.safetensors", card))


def test_tensors_must_match_the_config(tmp_path):
    g = tiny()
    state = {k: v.contiguous() for k, v in g.state_dict().items()}
    cases = {
        "shape": dict(state, **{"head.weight": torch.zeros(8, 3, 1, 3, 4)}),
        "missing": {k: v for k, v in state.items() if k != "tail.bias"},
        "extra": dict(state, extra=torch.zeros(1)),
        "integer": dict(state, **{"tail.bias": torch.zeros(12, dtype=torch.int32)}),
    }
    for name, tensors in cases.items():
        with pytest.raises(ModelError, match="tensor|weights do not match"):
            weights.load_model(write(tmp_path / f"{name}.safetensors", card_of(g), tensors))


def test_a_bad_model_file_is_one_line_and_exit_2(tmp_path):
    src = make_clip(tmp_path / "a.mp4", seconds=0.2, audio=False)
    for name, card in (("huge", card_of(tiny(), **{"config.temporal_blocks": 1000000})),
                       ("typed", card_of(tiny(), **{"config.channels": "32"}))):
        path = write(tmp_path / f"{name}.safetensors", card)
        r = run_cli("enhance", str(src), "-o", str(tmp_path / "o.mp4"), "--model", str(path))
        assert r.returncode == 2 and "Traceback" not in r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and f"{name}.safetensors" in lines[0], r.stderr
    assert not (tmp_path / "o.mp4").exists()


def test_a_good_card_still_loads_and_the_shipped_model_too(tmp_path):
    g = tiny(3)
    loaded = weights.load_model(write(tmp_path / "ok.safetensors", card_of(g, metrics={"psnr": float("nan")}), g=g))
    x = torch.rand(1, 3, 6, 10, 10)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), g(x))
    assert len(loaded.sha256) == 64
    shipped = weights.available().get("general-x2")
    if shipped:
        assert weights.load_model(shipped).card.name == "general-x2"


def test_non_finite_weights_are_refused_at_load(tmp_path):
    """Item 15: all-NaN weights produced a black video reported done."""
    g = tiny()
    with torch.no_grad():
        for p in g.parameters():
            p.fill_(float("nan"))
    path = write(tmp_path / "nan.safetensors", card_of(g), g=g)
    with pytest.raises(ModelError, match="not finite"):
        weights.load_model(path)
    src = make_clip(tmp_path / "a.mp4", seconds=0.2, audio=False)
    r = run_cli("enhance", str(src), "-o", str(tmp_path / "o.mp4"), "--model", str(path))
    assert r.returncode == 2 and "not finite" in r.stderr and not (tmp_path / "o.mp4").exists()


def test_non_finite_output_fails_the_file(tmp_path):
    g = tiny()
    with torch.no_grad():
        g.tail.weight.fill_(3e38)  # finite weights, infinite results
    path = write(tmp_path / "overflow.safetensors", card_of(g), g=g)
    r = ModelRestorer(weights.load_model(path).model, device="cpu", precision="fp32", tile=0)
    with pytest.raises(ModelError, match="NaN or infinite"):
        r.restore(np.full((5, 16, 16, 3), 200, np.uint8))
    src = make_clip(tmp_path / "a.mp4", seconds=0.4, audio=False)
    r = run_cli("enhance", str(src), "-o", str(tmp_path / "o.mp4"), "--model", str(path), "--json", "-q")
    row = json.loads(r.stdout)
    assert r.returncode == 1 and row["status"] == "failed" and "NaN or infinite" in row["error"]
    assert not (tmp_path / "o.mp4").exists()


# ---- item 16: memory -------------------------------------------------------------------------
def test_memory_available_can_be_set_and_the_budget_is_half_of_it(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setenv("ENHANCER_MEMORY_AVAILABLE", "8G")
    assert free_memory(cpu) == 8 << 30 and memory_budget(cpu) == 4 << 30
    monkeypatch.setenv("ENHANCER_MEMORY_AVAILABLE", "1.5GiB")
    assert free_memory(cpu) == int(1.5 * (1 << 30))
    monkeypatch.setenv("ENHANCER_MEMORY_AVAILABLE", "nonsense")
    assert free_memory(cpu) > 0


@pytest.mark.parametrize("available", ["2G", "8G", "16G", "64G"])
def test_defaults_plan_to_use_about_half_the_memory(monkeypatch, available):
    """Item 16: defaults on a 2160p clip went past 12 GB. The chunk and the tile are fitted so the
    whole-frame buffers, the tiles' activations, the process itself and the encoder stay within
    half of what is available (the planned figure; benchmarks/memory.py measures the peaks)."""
    from types import SimpleNamespace

    from enhancer.restore import neural
    from enhancer.pipeline.budget import encoder_bytes, fit_encoder
    from enhancer.media.encode import EncodeOptions

    monkeypatch.setenv("ENHANCER_MEMORY_AVAILABLE", available)
    half = free_memory(torch.device("cpu")) / 2
    g = Generator(GeneratorConfig(scale=2, channels=32, frame_blocks=4, temporal_blocks=2, post_blocks=2))
    for h, w in ((720, 1280), (2160, 3840)):
        r = ModelRestorer(g, device="cpu", precision="fp32", tile="auto")
        info = SimpleNamespace(display_width=w, display_height=h)
        encode = fit_encoder(info, 2, EncodeOptions())
        # an 8K x264 at its preset's 40-frame lookahead holds 6.8 GB: fitted where that is over a quarter
        default = encoder_bytes(info, 2, EncodeOptions())
        assert (encode.lookahead is not None) == (default > free_memory(torch.device("cpu")) / 4)
        if h == 2160:
            assert encode.lookahead == {"2G": 5, "8G": 5, "16G": 10, "64G": None}[available]
        encoder = encoder_bytes(info, 2, encode)
        chunk = r.chunk_for(h, w, reserve=encoder)
        tile = r.auto_tile(h, w, chunk + 2 * r.margin)
        side_h, side_w = (h, w) if tile is None else (min(tile, h), min(tile, w))
        process = r._frame_bytes(h, w, chunk) + r._tile_bytes(side_h, side_w, chunk + 2 * r.margin) \
            + neural.PROCESS_BASE
        assert 1 <= chunk <= 8 and (tile is None or tile >= neural.AUTO_TILE_MIN)
        if chunk > 1 or (tile is not None and tile > neural.AUTO_TILE_MIN):  # above the floor: within half
            assert process + encoder <= half * 1.02, (h, w, chunk, tile, (process + encoder) / 2 ** 30)
        if available == "8G" and h == 2160:
            assert process <= 4 << 30  # the enhancer's own share of a 2160p run fits half of 8 GB
            # x264 alone holds 2.3-2.5 GB at 4320p however lean: a 2160p x2 H.264 run plans about 6 of 8 GB
            assert process + encoder <= 0.75 * (8 << 30)
        if available == "64G":
            assert chunk == 8 and (h == 2160 or tile is None)  # plenty: the fastest settings at 720p


def test_one_default_chunk_and_one_place_that_chooses_it():
    """The chunk's default is defined once (MODEL_CHUNK, shown by the CLI's help) and chosen in one
    place (planned_chunk, which the Python API uses)."""
    from enhancer.cli.enhance import enhance
    from enhancer.restore.restorer import MODEL_CHUNK, ClassicalUpscaler, planned_chunk

    r = ModelRestorer(Generator(GeneratorConfig(scale=2, channels=4, frame_blocks=0, post_blocks=0)),
                      device="cpu", precision="fp32", tile=0)
    assert r.chunk == MODEL_CHUNK["cpu"] == 8
    assert planned_chunk(r, 64, 64) == 8 and r.reserve == 0
    assert planned_chunk(r, 64, 64, requested=3, reserve=1000) == 3 and r.reserve == 1000  # told all the same
    c = ClassicalUpscaler("lanczos", 2)
    assert planned_chunk(c, 64, 64) == c.chunk == 1 and planned_chunk(c, 64, 64, requested=4) == 4
    chunk_help = next(p.help for p in enhance.params if p.name == "chunk")
    assert f"default {MODEL_CHUNK['cpu']} on CPU, {MODEL_CHUNK['cuda']} on CUDA" in chunk_help


def test_encoder_lookahead_shrinks_where_memory_is_short(tmp_path):
    """Item 16: the encoder is fitted too. Where x264 at its preset's lookahead would take more than
    a quarter of the memory available, it looks ahead 10 (or 5) frames with fewer threads (6.8 GB
    to 3.6 and 2.5 GB measured at 4320p), says so, and the output's recipe does not change (a rerun with more
    memory skips it)."""
    import json

    src = make_clip(tmp_path / "a.mp4", size="192x128", seconds=0.4, audio=False)
    out = tmp_path / "o.mp4"
    r = run_cli("enhance", str(src), "-o", str(out), "--model", "lanczos", "--json", "-v",
                env={"ENHANCER_MEMORY_AVAILABLE": "60M"})
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.splitlines()[-1])
    assert res["status"] == "done" and any("looks ahead 10 frames" in w for w in res["warnings"])
    assert "rc-lookahead=10" in r.stderr
    r = run_cli("enhance", str(src), "-o", str(out), "--model", "lanczos", "--json",
                env={"ENHANCER_MEMORY_AVAILABLE": "64G"})
    assert json.loads(r.stdout.splitlines()[-1])["status"] == "skipped"
    r = run_cli("enhance", str(src), "-o", str(tmp_path / "p.mp4"), "--model", "lanczos", "--json", "-v",
                env={"ENHANCER_MEMORY_AVAILABLE": "64G"})
    assert "rc-lookahead" not in r.stderr and not json.loads(r.stdout.splitlines()[-1])["warnings"]


@pytest.mark.slow
def test_memory_limited_run_gives_the_same_frames(tmp_path):
    """A small budget shrinks the chunk and tiles the frames, and the result is the same."""
    from conftest import decode_frames

    path = tmp_path / "m.safetensors"
    g = tiny(4)
    weights.save(g, path, weights.ModelCard(name="m", arch="stgan-generator", config=g.config.to_dict(), scale=2))
    src = make_clip(tmp_path / "a.mp4", size="640x384", seconds=0.32, audio=False)
    outs = []
    for i, avail in enumerate(["64G", "1M"]):
        out = tmp_path / f"o{i}.mkv"
        r = run_cli("enhance", str(src), "-o", str(out), "--model", str(path), "--codec", "ffv1", "--json", "-q",
                    env={"ENHANCER_MEMORY_AVAILABLE": avail})
        assert r.returncode == 0, r.stderr
        outs.append(decode_frames(out).astype(int))
    restorer = ModelRestorer(g, device="cpu", precision="fp32", tile="auto")
    import os

    os.environ["ENHANCER_MEMORY_AVAILABLE"] = "1M"
    try:
        chunk = restorer.chunk_for(384, 640)
        assert chunk < 8 and restorer.auto_tile(384, 640, chunk + 4) is not None
    finally:
        del os.environ["ENHANCER_MEMORY_AVAILABLE"]
    assert outs[0].shape == outs[1].shape and np.abs(outs[0] - outs[1]).max() <= 1


def test_a_saved_model_file_is_readable_by_others(tmp_path):
    """Written through a temporary file, a model file still gets the usual permissions (umask),
    not the 0600 of the temporary."""
    import stat

    g = tiny(4)
    old = os.umask(0o022)
    try:
        weights.save(g, tmp_path / "m.safetensors",
                     weights.ModelCard(name="m", arch="stgan-generator", config=g.config.to_dict(), scale=2))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.safetensors").stat().st_mode) == 0o644
