"""The public Python API (enhancer.enhance, enhancer.Enhancer) and --progress json."""
from __future__ import annotations

import doctest
import itertools
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import enhancer
from conftest import decode_frames, make_clip, run_cli

ROOT = Path(__file__).resolve().parent.parent


def _doctest(text: str, globs: dict, name: str) -> doctest.TestResults:
    parser = doctest.DocTestParser()
    test = parser.get_doctest(text, globs, name, name, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    return runner.summarize(verbose=False)


def test_module_docstring_examples_run(tmp_path):
    import enhancer.api

    clip = make_clip(tmp_path / "clip.mp4", size="96x64", seconds=0.4)
    out = tmp_path / "out"
    results = _doctest(enhancer.api.__doc__, {"clip": clip, "out": out}, "enhancer.api")
    assert results.attempted >= 6 and results.failed == 0


@pytest.mark.slow
def test_readme_python_examples_run(tmp_path, monkeypatch):
    """Every ```python block of the README's "Python API" section, as a doctest, from a folder
    that holds samples/ (as a user in a clone would run them)."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Python API"):]
    section = section[:section.index("\n### ", 5)]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) >= 3
    shutil.copytree(ROOT / "samples", tmp_path / "samples")
    monkeypatch.chdir(tmp_path)
    results = _doctest("\n".join(blocks), {}, "README")
    assert results.attempted >= 10 and results.failed == 0
    assert len(decode_frames(tmp_path / "enhanced" / "bikes.mp4")) == 25


def test_public_names_and_import_is_light():
    for name in enhancer.__all__:
        assert getattr(enhancer, name) is not None
    assert issubclass(enhancer.EnhanceFailed, enhancer.EnhancerError)
    code = "import sys, enhancer; print('torch' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_a_classical_enhance_imports_no_pytorch(tmp_path):
    """The whole command with a classical method, from the command line and from Python, never
    imports PyTorch (reading --temporal did, for 1.8 s of a 2.4 s start)."""
    clip = make_clip(tmp_path / "c.mp4", size="80x48", seconds=0.3, audio=False)
    code = ("import sys\nfrom enhancer.cli import main\n"
            f"sys.argv = ['enhancer', 'enhance', {str(clip)!r}, '-o', {str(tmp_path / 'o.mkv')!r}, '--model', "
            "'lanczos', '--scale', '1', '--codec', 'ffv1', '-q']\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "import enhancer\n"
            f"enhancer.enhance({str(clip)!r}, {str(tmp_path / 'p.mkv')!r}, model='bicubic', codec='ffv1')\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False"] and (tmp_path / "o.mkv").is_file() and (tmp_path / "p.mkv").is_file()


def test_api_output_equals_the_cli_output(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", size="80x48", seconds=0.6, audio=True)
    api = enhancer.enhance(clip, tmp_path / "api.mkv", model="bicubic", codec="ffv1")
    assert api.outputs == [str(tmp_path / "api.mkv")] and api.frames == 15
    r = run_cli("enhance", str(clip), "-o", str(tmp_path / "cli.mkv"), "--model", "bicubic", "--codec", "ffv1", "-q")
    assert r.returncode == 0, r.stderr
    assert np.array_equal(decode_frames(tmp_path / "api.mkv"), decode_frames(tmp_path / "cli.mkv"))


def test_api_errors(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    make_clip(a / "x.mp4", seconds=0.2, audio=False)
    make_clip(b / "x.mp4", seconds=0.2, audio=False)
    with pytest.raises(enhancer.UsageError):  # two inputs onto one output file
        enhancer.enhance([a / "x.mp4", b / "x.mp4"], tmp_path / "one.mp4", model="lanczos")
    with pytest.raises(enhancer.EnhancerError, match="unknown model|no model"):
        enhancer.enhance(a / "x.mp4", tmp_path / "o.mp4", model="no-such-model")
    with pytest.raises(enhancer.UsageError):
        enhancer.enhance(a / "x.mp4", "-")
    (tmp_path / "bad.mp4").write_bytes(b"not a video at all" * 10)
    with pytest.raises(enhancer.EnhanceFailed) as err:
        enhancer.enhance([a / "x.mp4", tmp_path / "bad.mp4"], tmp_path / "out", model="lanczos")
    assert [f.status for f in err.value.result.files] == ["done", "failed"]
    assert "bad.mp4" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(TypeError):  # a misspelt option is Python's error, not a silent default
        enhancer.enhance(a / "x.mp4", tmp_path / "o.mp4", sclae=2)
    for tile in ("big", -8, 1.5):  # the same reading of --tile as the CLI's, before any work
        with pytest.raises(enhancer.UsageError, match="tile must be"):
            enhancer.enhance(a / "x.mp4", tmp_path / "t.mp4", model="general-x2", tile=tile)
    assert not (tmp_path / "t.mp4").exists()
    res = run_cli("enhance", str(a / "x.mp4"), "-o", str(tmp_path / "t.mp4"), "--tile", "-8")
    assert res.returncode == 2 and "--tile" in res.stderr and "Traceback" not in res.stderr


def test_enhancer_frames_stream_one_for_one():
    up = enhancer.Enhancer("general-x2")
    assert up.scale == 2 and up.context == 2 and up.model_card["name"] == "general-x2"
    rng = np.random.default_rng(0)
    clip = [rng.integers(0, 256, (40, 56, 3), dtype=np.uint8) for _ in range(7)]
    one = list(up.frames(clip[:1]))
    assert len(one) == 1 and one[0].shape == (80, 112, 3) and one[0].dtype == np.uint8
    assert np.array_equal(up.image(clip[0]), one[0])
    full = list(up.frames(iter(clip)))
    assert len(full) == 7
    # the same as the restorer on the mirrored window the CLI's reader builds for frame 0
    window = np.stack([clip[2], clip[1], clip[0], clip[1], clip[2]])
    assert np.array_equal(up._restorer.restore(window)[0], full[0])
    # chunking is a speed setting only
    small = enhancer.Enhancer("general-x2", chunk=1)
    assert all(np.array_equal(x, y) for x, y in zip(small.frames(clip), full))
    # streaming: an endless source gives frames as they are asked for
    endless = (clip[k % 7] for k in itertools.count())
    first = list(itertools.islice(up.frames(endless), 3))
    assert len(first) == 3 and all(np.array_equal(x, y) for x, y in zip(first, full[:3]))
    deep = up.image(clip[0].astype(np.uint16) * 257)
    assert deep.dtype == np.uint16 and abs(deep.astype(np.int64) // 257 - one[0].astype(np.int64)).max() <= 2


def test_enhancer_rejects_bad_frames():
    up = enhancer.Enhancer("lanczos")
    assert up.model_card == {} and up.context == 0
    for bad in (np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8), np.zeros((8, 8, 3), np.float32),
                [[0, 0, 0]]):
        with pytest.raises(enhancer.InputError):
            up.image(bad)
    with pytest.raises(enhancer.InputError, match="frame 1"):
        list(up.frames([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 10, 3), np.uint8)]))
    assert list(up.frames([])) == []


def _progress_lines(stderr: str) -> list[dict]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


@pytest.mark.slow
def test_progress_json_lines(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", size="96x64", seconds=2, audio=False)
    r = run_cli("enhance", str(clip), "-o", str(tmp_path / "o.mp4"), "--model", "general-x2", "--progress", "json",
                env={"ENHANCER_TEST_SLOW": ""})
    assert r.returncode == 0, r.stderr
    lines = _progress_lines(r.stderr)
    assert lines and lines[-1]["stage"] == "end" and lines[-1]["done"] == 50 and lines[-1]["total"] == 50
    assert {"progress", "stage", "done", "total", "unit", "rate", "eta", "elapsed"} <= set(lines[0])
    assert lines[-1]["progress"] == "c.mp4" and lines[-1]["unit"] == "frame"
    assert [x["done"] for x in lines] == sorted(x["done"] for x in lines)
    running = [x for x in lines if x["stage"] != "end"]
    assert lines[-1]["elapsed"] / 2 - 1 <= len(running) <= lines[-1]["elapsed"] + 2  # about one a second, between updates too
    assert any(line.startswith("done: ") for line in r.stderr.splitlines())  # people's lines stay
    # the default (bars) shows nothing when stderr is not a terminal, and -q overrides json
    for extra in ([], ["-q", "--progress", "json"]):
        r = run_cli("enhance", str(clip), "-o", str(tmp_path / f"o{len(extra)}.mp4"), "--model", "lanczos", *extra)
        assert r.returncode == 0 and not _progress_lines(r.stderr) and "\r" not in r.stderr


def test_api_progress_json(tmp_path, capsys):
    clip = make_clip(tmp_path / "c.mp4", seconds=0.4, audio=False)
    enhancer.enhance(clip, tmp_path / "o.mp4", model="lanczos", progress="json")
    lines = _progress_lines(capsys.readouterr().err)
    assert lines[-1]["stage"] == "end" and lines[-1]["done"] == 10
    enhancer.enhance(clip, tmp_path / "p.mp4", model="lanczos")
    assert not _progress_lines(capsys.readouterr().err)


def test_a_count_past_the_announced_total_is_shown_as_unknown(capsys):
    """A file that announces 25 frames and holds 50 (files joined end to end, a lying header):
    progress says 32 frames, not 32/25 (128 %) with 0:00 left, in every mode."""
    from enhancer import progress

    with progress.using("json"), progress.bar(total=4, desc="f", unit="frame") as b:
        b.update(3)
        b._say("run")
        b.update(3)
        b._say("run")
    lines = _progress_lines(capsys.readouterr().err)
    said = {x["done"]: x for x in lines if x["stage"] == "run"}
    assert said[3]["total"] == 4 and said[3]["eta"] is not None
    assert said[6]["total"] is None and said[6]["eta"] is None
    with progress.bar(total=4, desc="f", unit="frame") as b:  # a plain line where stderr is no terminal
        b.update(6)
        assert b._text("run").startswith("f: 6 frames")


def test_ffmpeg_bundled_picks_the_wheel_binary(monkeypatch):
    import imageio_ffmpeg

    from enhancer.media import ffmpeg as ff

    monkeypatch.setattr(ff, "_tools", ff._tools)  # restored after the test
    monkeypatch.setenv("PATH", "")
    tools = ff.configure(ffmpeg="bundled")
    assert tools.ffmpeg == imageio_ffmpeg.get_ffmpeg_exe() and "bundled" in tools.chosen_by


def test_api_option_mistakes_are_usage_errors(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", seconds=0.2, audio=False)
    for bad in ({"codec": "divx"}, {"audio": "loud"}, {"progress": "fancy"}, {"deinterlace": "maybe"},
                {"model": "lanczos", "scale": 5}, {"encoder_args": "-map 0"}, {"encoder_args": ["-g", 48]},
                {"size": (None, None)}, {"size": (0, 10)}, {"size": "big"}, {"size": (1920,)}):
        with pytest.raises(enhancer.UsageError):
            enhancer.enhance(clip, tmp_path / "o.mp4", **{"model": "lanczos", **bad})
    with pytest.raises(enhancer.UsageError):
        enhancer.Enhancer("bicubic", scale=7)
    done = enhancer.enhance(clip, tmp_path / "sized.mp4", model="lanczos", size="200x100")
    assert done.files[0].status == "done"
    assert not (tmp_path / "o.mp4").exists()


def test_progress_settings_of_two_threads_stay_apart(capsys):
    """The progress mode is per thread: a JSON-progress call in one thread does not switch another
    thread's quiet call to JSON (found in review)."""
    import threading

    from enhancer import progress

    seen = {}

    def run(name, mode, wait):
        with progress.using(mode):
            wait.wait(5)
            with progress.bar(total=1, desc=name) as b:
                b.update(1)
            seen[name] = progress._mode.get()

    go = threading.Event()
    threads = [threading.Thread(target=run, args=("a", "json", go)), threading.Thread(target=run, args=("b", "none", go))]
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join()
    lines = _progress_lines(capsys.readouterr().err)
    assert seen == {"a": "json", "b": "none"} and lines and all(x["progress"] == "a" for x in lines)
    assert progress._mode.get() == "bar"
