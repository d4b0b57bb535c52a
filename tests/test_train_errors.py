"""`enhancer prepare`, `export`, `train plot` and `train` on a missing file, a file of the wrong
type, a corrupt training set or checkpoint: one line `error: ...`, exit 2, no traceback (issue 14).
Tiny files made here; the commands run in-process (click's runner) but for one end-to-end run."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import run_cli
from enhancer.cli import main
from enhancer.train.config import TrainConfig
from enhancer.train.trainer import train

TINY_MODEL = {"channels": 8, "frame_blocks": 1, "temporal_blocks": 2, "post_blocks": 1}


def _set(path: Path, n: int = 4) -> Path:
    """A training set as `enhancer prepare` writes one (x2, 9 frames, 2 versions), of noise;
    uncompressed, so a flipped byte lands in the data itself."""
    rng = np.random.default_rng(0)
    np.savez(path, hr=rng.integers(0, 256, (n, 9, 32, 32, 3), dtype=np.uint8),
             lq=rng.integers(0, 256, (n, 2, 9, 16, 16, 3), dtype=np.uint8))
    return path


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """A folder with a real training set, a one-step run (its last.pt and log.jsonl), and bad files."""
    d = tmp_path_factory.mktemp("errors")
    _set(d / "set.npz")
    train(TrainConfig(data=str(d / "set.npz"), run_dir=str(d / "run"), model_overrides=TINY_MODEL, steps=1,
                      batch=1, frames_out=2, crop=8, val_every=1, ckpt_every=1, log_every=1, val_sequences=1,
                      warmup=1), progress=False)
    (d / "notes.txt").write_text("some notes, not a checkpoint\n")
    (d / "noise.bin").write_bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    whole = (d / "run" / "last.pt").read_bytes()
    (d / "cut.pt").write_bytes(whole[:len(whole) // 2])
    torch.save({"weight": torch.zeros(3)}, d / "foreign.pt")  # a torch file, not a training checkpoint
    whole = (d / "set.npz").read_bytes()
    (d / "cut.npz").write_bytes(whole[:len(whole) // 2])
    flipped = bytearray(whole)
    flipped[2000] ^= 0xFF  # inside hr.npy's data: its CRC no longer matches
    (d / "flipped.npz").write_bytes(bytes(flipped))
    np.savez(d / "other.npz", a=np.zeros(3))
    (d / "empty_run").mkdir()
    (d / "noise_run").mkdir()
    (d / "noise_run" / "log.jsonl").write_bytes((d / "noise.bin").read_bytes())
    return d


def _cli(d: Path, out: Path, *args: str):
    """The command, {d} standing for the folder of made files and {o} for an empty one for outputs."""
    return CliRunner().invoke(main, [a.replace("{d}", str(d)).replace("{o}", str(out)) for a in args])


def _one_line(r, *words: str, code: int = 2) -> None:
    assert isinstance(r.exception, SystemExit), r.exception  # not an exception's traceback
    assert r.exit_code == code, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for w in words:
        assert w in lines[0], lines[0]


@pytest.mark.parametrize("checkpoint,words", [
    ("{d}/missing.pt", ("missing.pt", "no such checkpoint")),
    ("{d}/notes.txt", ("notes.txt", "not a readable training checkpoint")),  # wrong type
    ("{d}/set.npz", ("set.npz", "not a readable training checkpoint")),  # wrong type
    ("{d}/noise.bin", ("noise.bin", "not a readable training checkpoint")),  # corrupt
    ("{d}/cut.pt", ("cut.pt", "not a readable training checkpoint")),  # truncated
    ("{d}/foreign.pt", ("foreign.pt", "not an enhancer training checkpoint")),
    ("{d}/run", ("run", "is a folder")),
])
def test_export_refuses_what_is_not_a_checkpoint(made, tmp_path, checkpoint, words):
    _one_line(_cli(made, tmp_path, "export", checkpoint, "-o", "{o}/w.safetensors"), *words)
    assert not list(tmp_path.iterdir())


def test_export_refuses_bad_outputs_and_metrics(made, tmp_path):
    for out, words in (("{o}/w.txt", ("w.txt", ".safetensors")), ("{o}", ("is a folder",)),
                       ("{d}/notes.txt/w.safetensors", ("notes.txt is a file",))):
        _one_line(_cli(made, tmp_path, "export", "{d}/run/last.pt", "-o", out), *words)
    for metrics in ("{d}/missing.json", "{d}/noise.bin"):
        r = _cli(made, tmp_path, "export", "{d}/run/last.pt", "-o", "{o}/w.safetensors", "--metrics", metrics)
        _one_line(r, Path(metrics).name, "cannot read the metrics")
    assert not list(tmp_path.iterdir())
    r = _cli(made, tmp_path, "export", "{d}/run/last.pt", "-o", "{o}/w.safetensors")  # the real one exports
    assert r.exit_code == 0 and (tmp_path / "w.safetensors").stat().st_size > 0, r.stderr


@pytest.mark.parametrize("run,words", [
    ("{d}/missing", ("missing", "no such run folder")),
    ("{d}/notes.txt", ("notes.txt", "not a run folder")),  # wrong type
    ("{d}/empty_run", ("empty_run", "no log.jsonl")),
    ("{d}/noise_run", ("log.jsonl", "not a training log")),  # corrupt
])
def test_train_plot_refuses_what_is_not_a_run(made, tmp_path, run, words):
    _one_line(_cli(made, tmp_path, "train", "plot", run, "-o", "{o}/c.png"), *words)
    assert not list(tmp_path.iterdir())


def test_train_plot_output_must_be_a_picture_it_can_write(made, tmp_path):
    for out, words in (("{o}/c.txt", ("c.txt", "picture file")), ("{d}/notes.txt/c.png", ("notes.txt is a file",))):
        _one_line(_cli(made, tmp_path, "train", "plot", "{d}/run", "-o", out), *words)
    assert not list(tmp_path.iterdir())
    r = _cli(made, tmp_path, "train", "plot", "{d}/run", "-o", "{o}/c.png")
    assert r.exit_code == 0 and (tmp_path / "c.png").stat().st_size > 0, r.stderr


@pytest.mark.parametrize("source,out,words", [
    ("{d}/notes.txt", "{o}/s.npz", ("notes.txt", "no images or videos found")),  # wrong type
    ("{d}/set.npz", "{o}/s.npz", ("set.npz", "no images or videos found")),  # a set is not media
    ("{d}/bad/x.png", "{o}/s.npz", ("x.png", "cannot read image")),  # corrupt
    ("{d}/bad", "{o}/s.txt", ("s.txt", ".npz")),  # numpy would write s.txt.npz
    ("{d}/bad", "{o}", ("is a folder",)),
    ("{d}/bad", "{d}/notes.txt/s.npz", ("notes.txt is a file",)),
])
def test_prepare_refuses_bad_sources_and_outputs(made, tmp_path, source, out, words):
    (made / "bad").mkdir(exist_ok=True)
    (made / "bad" / "x.png").write_bytes((made / "noise.bin").read_bytes())
    _one_line(_cli(made, tmp_path, "prepare", source, "-o", out, "--sequences", "2", "--size", "32", "-q"), *words)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("out,words", [("s.txt", ("s.txt", ".npz")), ("", ("is a folder",))])
def test_prepare_from_python_refuses_a_name_numpy_would_change(made, tmp_path, out, words):
    """The library says it too (numpy would silently write s.txt.npz), before any work."""
    from enhancer.data.dataset import PrepareConfig, prepare
    from enhancer.errors import ArgumentError

    with pytest.raises(ArgumentError) as e:
        prepare(PrepareConfig(sources=[str(made / "missing")], out=str(tmp_path / out)), progress=False)
    assert all(w in str(e.value) for w in words) and not list(tmp_path.iterdir())


@pytest.mark.parametrize("data,words", [
    ("{d}/missing.npz", ("missing.npz", "no such training set")),
    ("{d}/notes.txt", ("notes.txt", "not an .npz archive")),  # wrong type
    ("{d}/noise.bin", ("noise.bin", "not an .npz archive")),  # corrupt
    ("{d}/cut.npz", ("cut.npz", "not an .npz archive, or one cut short")),  # truncated
    ("{d}/flipped.npz", ("flipped.npz", "corrupt", "CRC")),  # damaged inside
    ("{d}/other.npz", ("other.npz", "without the arrays hr and lq")),
    ("{d}/run", ("run", "is a folder")),
])
def test_train_refuses_what_is_not_a_training_set(made, tmp_path, data, words):
    config = tmp_path / "t.toml"
    config.write_text(f'data = "{data.replace("{d}", str(made))}"\nrun_dir = "{tmp_path}/run"\n')
    _one_line(_cli(made, tmp_path, "train", "--config", str(config), "-q"), *words)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text,words", [
    ('stepz = 3', ("unknown training options: stepz",)),
    ('steps = "x', ("line 1",)),  # not TOML
    ('steps = "many"', ("steps must be an integer",)),
    ('steps = 3.5', ("steps must be an integer",)),
    ('lr_g = "1e-4"', ("lr_g must be a number",)),
    ('betas_d = [0.5]', ("betas_d must have 2 items",)),
    ('amp = 1', ("amp must be a string",)),
    ('amp = "fp16"', ("amp must be auto, bf16 or off",)),
    ('stage = 3', ("stage must be 1 or 2",)),
])
def test_a_bad_config_is_one_line_naming_the_file(made, tmp_path, text, words):
    """Before any work, and before the run folder is made: a mistyped value used to pass and fail
    deep inside the run."""
    config = tmp_path / "t.toml"
    config.write_text(f'{text}\nrun_dir = "{tmp_path}/run"\n')
    _one_line(_cli(made, tmp_path, "train", "--config", str(config), "-q"), "t.toml", *words)
    assert not (tmp_path / "run").exists()


def test_a_cut_checkpoint_is_one_line_from_the_console_command(made, tmp_path):
    """End to end, as a user runs it (`python -m enhancer`)."""
    r = run_cli("export", str(made / "cut.pt"), "-o", str(tmp_path / "w.safetensors"))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {made / 'cut.pt'}: not a readable training checkpoint")
    assert not (tmp_path / "w.safetensors").exists()


def test_every_shipped_config_reads():
    """The recipes in configs/ pass the option and type checks (a typo there would surface only
    when someone retrains)."""
    root = Path(__file__).resolve().parents[1] / "configs"
    found = sorted(root.glob("*.toml"))
    assert len(found) >= 6
    for path in found:
        cfg = TrainConfig.from_toml(path)
        assert cfg.run_dir and cfg.data, path
