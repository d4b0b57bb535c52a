"""Choosing a model: tasks and scales, `enhancer models` grouped by task, one-line mismatches."""
from __future__ import annotations

import pytest
import torch

from conftest import make_clip, run_cli
from enhancer.restore import weights
from enhancer.errors import ModelError
from enhancer.media.probe import probe
from enhancer.models.fusion import FusionConfig, FusionGenerator

TINY = dict(channels=4, low_channels=4, low_blocks=1, high_blocks=1)


def _model(folder, name: str, scale: int, task: str = "", variant: str = "fidelity"):
    torch.manual_seed(0)
    g = FusionGenerator(FusionConfig(scale=scale, **TINY))
    card = weights.ModelCard(name=name, arch="aligned-fusion", config=g.config.to_dict(), scale=scale, task=task,
                             variant=variant, metrics={"psnr_y": 30.0})
    weights.save(g, folder / f"{name}.safetensors", card)


@pytest.fixture()
def shelf(tmp_path, monkeypatch):
    """Installed models: only these (the checkout's own weights/ folder is hidden)."""
    d = tmp_path / "models"
    d.mkdir()
    _model(d, "web-x2", 2, "web")
    _model(d, "web-x2-gan", 2, "web", "texture")
    _model(d, "web-x4", 4)  # an older card without a task: web
    _model(d, "old-film-x1", 1, "archive")
    _model(d, "a-clean-x4", 4, "clean")  # first by name: a clean model never becomes web's default
    monkeypatch.setenv("ENHANCER_WEIGHTS", str(d))
    monkeypatch.setattr(weights, "weights_dirs", lambda: [d])
    return d


def test_pick_by_task_and_scale(shelf):
    assert weights.pick(None, None) == "web-x2"  # fidelity before texture
    assert weights.pick("web", 4) == "web-x4"
    assert weights.pick("archive", None) == "old-film-x1"
    assert weights.pick("web", 2, variant="texture") == "web-x2-gan"
    assert weights.pick("clean", None) == "a-clean-x4"  # the clean job is done at x4 unless asked
    with pytest.raises(ModelError) as e:
        weights.pick("web", 1)
    assert "task archive" in str(e.value) and "old-film-x1" in str(e.value)
    with pytest.raises(ModelError) as e:
        weights.pick("archive", 4)
    assert "web-x4" in str(e.value) and "old-film-x1" in str(e.value)


def test_bad_task_or_variant_on_a_card_is_refused(tmp_path):
    g = FusionGenerator(FusionConfig(scale=2, **TINY))
    for field, value in (("task", "cinema"), ("variant", "shiny")):
        card = weights.ModelCard(name="m", arch="aligned-fusion", config=g.config.to_dict(), scale=2,
                                 **{field: value})
        weights.save(g, tmp_path / "m.safetensors", card)
        with pytest.raises(ModelError, match=field):
            weights.read_card(tmp_path / "m.safetensors")


def test_a_broken_file_never_hides_the_model_of_its_name(shelf, tmp_path, monkeypatch, caplog):
    """A user's unreadable web-x2 in a folder looked in first: the next web-x2 stands in (with a
    warning), and the default does not silently become the texture variant."""
    user = tmp_path / "user"
    user.mkdir()
    (user / "web-x2.safetensors").write_bytes(b"\x00" * 64)
    monkeypatch.setattr(weights, "weights_dirs", lambda: [user, shelf])
    monkeypatch.setattr(weights, "_WARNED", set())
    assert weights.available()["web-x2"] == user / "web-x2.safetensors"  # first found, as listed
    assert weights.pick(None, None) == "web-x2"
    assert weights.resolve("web-x2") == shelf / "web-x2.safetensors"
    assert any("web-x2.safetensors" in r.message and "instead" in r.message for r in caplog.records)
    good, broken = weights.installed()
    assert [p for p, _ in broken] == [user / "web-x2.safetensors"] and len(good) == 5
    (shelf / "web-x2.safetensors").write_bytes(b"\x00" * 64)  # none reads: loading says why
    with pytest.raises(ModelError, match="not a readable"):
        weights.load(weights.resolve("web-x2"))


@pytest.mark.slow
def test_cli_picks_and_refuses_one_line(shelf, tmp_path):
    env = {"ENHANCER_WEIGHTS": str(shelf)}
    r = run_cli("models", env=env)
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    # one line per model: name, task and scale, variant (and which is the default), what it repairs
    assert any(ln.startswith("web-x2 ") and " web x2 [fidelity" in ln and "repairs " in ln for ln in lines), lines
    assert any(ln.startswith("web-x4 ") and " web x4 " in ln for ln in lines), lines
    assert any(ln.startswith("old-film-x1 ") and " archive x1 " in ln for ln in lines), lines
    assert any(ln.startswith("a-clean-x4 ") and " clean x4 [fidelity, default]" in ln for ln in lines), lines
    r = run_cli("models", "web-x2", env=env)  # one model's whole card
    assert r.returncode == 0 and r.stdout.startswith("web-x2: ") and "file: " in r.stdout
    r = run_cli("models", "nope", env=env)
    assert r.returncode == 2 and "no installed model is named 'nope'" in r.stderr
    clip = make_clip(tmp_path / "c.mp4", seconds=0.2, audio=False)
    r = run_cli("enhance", str(clip), "-o", str(tmp_path / "a.mp4"), "--task", "archive", "-q", env=env)
    assert r.returncode == 0, r.stderr
    assert probe(str(tmp_path / "a.mp4")).width == 96  # restored at its own size
    r = run_cli("enhance", str(clip), "-o", str(tmp_path / "b.mp4"), "--scale", "4", "-q", env=env)
    assert r.returncode == 0, r.stderr
    assert probe(str(tmp_path / "b.mp4")).width == 384
    r = run_cli("enhance", str(clip), "-o", str(tmp_path / "k.mp4"), "--task", "clean", "-q", env=env)  # x4
    assert r.returncode == 0, r.stderr
    assert probe(str(tmp_path / "k.mp4")).width == 384
    r = run_cli("enhance", str(clip), "-o", str(tmp_path / "c.mp4"), "-m", "web-x2", "--scale", "4", "-q", env=env)
    assert r.returncode == 2 and "web-x4" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run_cli("enhance", str(clip), "-o", str(tmp_path / "d.mp4"), "-m", "web-x2", "--task", "archive", "-q",
                env=env)
    assert r.returncode == 2 and "old-film-x1" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run_cli("enhance", str(clip), "-o", str(tmp_path / "e.mp4"), "--scale", "1", "--dry-run", env=env)
    assert r.returncode == 2 and "--task archive" in r.stderr  # the dry run decides as the real run does
