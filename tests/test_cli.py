"""The command line as a user runs it: batches, naming, exit codes, JSON lines, bad input."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import make_clip, run_cli
from enhancer.media import ffmpeg as ff
from enhancer.media.probe import count_frames, probe


def _json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_batch_goes_on_after_a_bad_file_and_reports_json(tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    make_clip(src / "a.mp4", seconds=0.5)
    make_clip(src / "sub" / "b.mkv", seconds=0.5, audio=False)
    (src / "broken.mp4").write_bytes(os.urandom(4096))
    (src / "notes.txt").write_text("not a video")
    out = tmp_path / "out"
    r = run_cli("enhance", str(src), "-o", str(out), "--recursive", "--json", "-q")
    assert r.returncode == 1, r.stderr
    rows = {Path(row["input"]).name: row for row in _json_lines(r.stdout)}
    assert set(rows) == {"a.mp4", "b.mkv", "broken.mp4"}
    assert rows["a.mp4"]["status"] == "done" and rows["a.mp4"]["frames"] == 12
    assert rows["b.mkv"]["status"] == "done"
    assert rows["broken.mp4"]["status"] == "failed"
    assert "broken.mp4" in rows["broken.mp4"]["error"] and "\n" not in rows["broken.mp4"]["error"]
    assert (out / "a.mp4").exists() and (out / "sub" / "b.mkv").exists()
    assert not (out / "broken.mp4").exists()
    assert not [p for p in out.rglob(".*") if p.name != ".enhancer-records"], "temporary files left behind"
    assert r.stderr.count("broken.mp4") >= 1 and "Traceback" not in r.stderr
    # a rerun skips what is done and still reports the bad file
    r2 = run_cli("enhance", str(src), "-o", str(out), "--recursive", "--json", "-q")
    rows2 = {Path(row["input"]).name: row["status"] for row in _json_lines(r2.stdout)}
    assert rows2 == {"a.mp4": "skipped", "b.mkv": "skipped", "broken.mp4": "failed"}


def test_single_file_output_name_and_overwrite(tmp_path):
    src = make_clip(tmp_path / "clip.mp4", seconds=0.5)
    dst = tmp_path / "result.mkv"
    r = run_cli("enhance", str(src), "-o", str(dst), "--scale", "4", "--model", "lanczos", "-q")
    assert r.returncode == 0, r.stderr
    info = probe(str(dst))
    assert (info.width, info.height) == (384, 256) and info.container.startswith("matroska")
    mtime = dst.stat().st_mtime_ns
    r = run_cli("enhance", str(src), "-o", str(dst), "--scale", "4", "--model", "lanczos", "-q")
    assert r.returncode == 0 and dst.stat().st_mtime_ns == mtime  # skipped: done, same recipe
    r = run_cli("enhance", str(src), "-o", str(dst), "--scale", "4", "--model", "lanczos", "--overwrite", "--json",
                "-q")
    assert _json_lines(r.stdout)[0]["status"] == "done" and dst.stat().st_mtime_ns != mtime
    # options changed: redone
    r = run_cli("enhance", str(src), "-o", str(dst), "--scale", "2", "--model", "lanczos", "--json", "-q")
    assert _json_lines(r.stdout)[0]["status"] == "done" and probe(str(dst)).width == 192


@pytest.mark.slow  # a run of the default model; test_naming.py and test_gaps.py check the same quickly
def test_output_never_replaces_input(tmp_path):
    src = make_clip(tmp_path / "clip.mp4", seconds=0.5)
    before = src.read_bytes()
    r = run_cli("enhance", str(tmp_path), "-o", str(tmp_path), "--json", "-q")
    assert r.returncode == 0, r.stderr
    row = _json_lines(r.stdout)[0]
    assert Path(row["output"]).name == "clip.enhanced.mp4"
    assert src.read_bytes() == before


def test_dry_run_writes_nothing(tmp_path):
    src = make_clip(tmp_path / "clip.mp4", seconds=0.5)
    r = run_cli("enhance", str(src), "-o", str(tmp_path / "out"), "--dry-run", "--json")
    assert r.returncode == 0
    assert _json_lines(r.stdout)[0]["status"] == "planned"
    assert not (tmp_path / "out").exists()


def test_usage_errors_exit_2(tmp_path):
    src = make_clip(tmp_path / "clip.mp4", seconds=0.5)
    x, o = str(tmp_path / "x.mp4"), str(tmp_path / "o")
    assert run_cli("enhance", str(src)).returncode == 2  # no -o
    assert run_cli("enhance", str(src), "-o", x, "--scale", "3").returncode == 2
    assert run_cli("enhance", str(src), "-o", x, "--model", "nope").returncode == 2
    assert run_cli("enhance", str(tmp_path / "empty_dir_*"), "-o", o).returncode == 1  # no such file
    r = run_cli("enhance", str(src), "-o", x, "--ffmpeg", str(tmp_path / "no-ffmpeg"))
    assert r.returncode == 2 and "no-ffmpeg" in r.stderr
    r = run_cli("enhance", str(src), "-o", x, "--start", "abc")
    assert r.returncode == 2
    assert not (tmp_path / "x.mp4").exists()


def test_ffmpeg_from_environment_is_used(tmp_path):
    src = make_clip(tmp_path / "clip.mp4", seconds=0.5)
    wrapper = tmp_path / "bin" / "my-ffmpeg"
    wrapper.parent.mkdir()
    marker = tmp_path / "called"
    wrapper.write_text(f"#!/bin/sh\ntouch '{marker}'\nexec '{ff.tools().ffmpeg}' \"$@\"\n")
    wrapper.chmod(0o755)
    r = run_cli("enhance", str(src), "-o", str(tmp_path / "o.mp4"), "-q", "-v", env={"ENHANCER_FFMPEG": str(wrapper)})
    assert r.returncode == 0, r.stderr
    assert marker.exists() and "my-ffmpeg" in r.stderr  # -v shows the commands


def test_probe_command(tmp_path):
    src = make_clip(tmp_path / "clip.mp4", seconds=1)
    r = run_cli("probe", str(src), "--json", "--count")
    assert r.returncode == 0
    d = json.loads(r.stdout)
    assert d["frame_count"] == 25 and d["frame_count_exact"] and d["width"] == 96
    r = run_cli("probe", str(tmp_path / "missing.mp4"))
    assert r.returncode == 1 and "missing.mp4: no such file" in r.stderr


def test_glob_and_segment_and_image_sequence(tmp_path):
    make_clip(tmp_path / "one.mp4", seconds=2)
    make_clip(tmp_path / "two.mp4", seconds=2)
    out = tmp_path / "out"
    r = run_cli("enhance", str(tmp_path / "*.mp4"), "-o", str(out), "--start", "0:00.5", "--duration", "1",
                "--codec", "png", "--json", "-q")
    assert r.returncode == 0, r.stderr
    rows = _json_lines(r.stdout)
    assert [row["status"] for row in rows] == ["done", "done"]
    assert len(list((out / "one_frames").glob("*.png"))) == 25


def test_module_entry_point_and_help():
    """`python -m enhancer` is the command; its help lists every command there is and nothing
    else, and what `enhance --help` offers and promises is what enhance and the muxer do."""
    import re

    import click

    from enhancer import __version__
    from enhancer.cli import main
    from enhancer.cli.enhance import enhance
    from enhancer.media.encode import CODECS, CONTAINERS, EncodeOptions
    from enhancer.media.plan import _video_args

    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"enhancer, version {__version__}"
    r = run_cli("--help")
    assert r.returncode == 0
    listed = re.findall(r"^  (\S+)  ", r.stdout.split("Commands:")[1], re.M)
    assert sorted(listed) == sorted(main.commands)
    r = run_cli("enhanc", "x.mp4")
    assert r.returncode == 2 and "No such command 'enhanc'" in r.stderr
    r = run_cli("enhance", "--help")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())  # the help's own line breaks out of the way
    for param in enhance.params:  # every option is documented
        if isinstance(param, click.Option):
            assert any(name in r.stdout for name in param.opts), param.opts
    choices = {p.name: list(p.type.choices) for p in enhance.params if isinstance(p.type, click.Choice)}
    # each codec offered is one the muxer writes, and every one it writes is offered
    assert sorted(choices["codec"]) == sorted(CODECS) and "[h264|h265|prores|dnxhr|ffv1|mpeg2|png|tiff]" in text
    assert all(f".{c}" in CONTAINERS for c in choices["container"])
    for mode in choices["audio"]:
        EncodeOptions(audio=mode)  # each one offered is accepted
    # the defaults the help promises are the ones used
    defaults = EncodeOptions()
    assert "[default: h264]" in text and defaults.codec == "h264"
    assert "[default: copy]" in text and defaults.audio == "copy"
    assert "h264 (default 18) / h265 (default 20)" in text
    for codec, crf in (("h264", "18"), ("h265", "20")):
        args = _video_args(EncodeOptions(codec=codec), 8, "matroska")[1]
        assert args[args.index("-crf") + 1] == crf
    args = _video_args(EncodeOptions(), 8, "matroska")[1]
    assert "(default medium)" in text and args[args.index("-preset") + 1] == "medium"


def test_unwritable_output_folder(tmp_path):
    if os.geteuid() == 0:
        # root ignores permissions: use a path below a regular file instead
        blocker = tmp_path / "file"
        blocker.write_text("x")
        target = blocker / "out"
    else:
        target = tmp_path / "ro"
        target.mkdir()
        target.chmod(0o500)
    src = make_clip(tmp_path / "clip.mp4", seconds=0.5)
    r = run_cli("enhance", str(src), "-o", str(target), "--json", "-q")
    assert r.returncode == 1
    row = _json_lines(r.stdout)[0]
    assert row["status"] == "failed" and "output folder" in row["error"]
    shutil.rmtree(tmp_path / "ro", ignore_errors=True)


def test_stdin_to_stdout_pipe(tmp_path):
    import subprocess
    import sys

    src = make_clip(tmp_path / "clip.mp4", seconds=0.6)
    out = tmp_path / "piped.mkv"
    with open(src, "rb") as fin, open(out, "wb") as fout:
        r = subprocess.run([sys.executable, "-m", "enhancer", "enhance", "-", "-o", "-", "--model", "lanczos", "-q"],
                           stdin=fin, stdout=fout, stderr=subprocess.PIPE, timeout=240)
    assert r.returncode == 0, r.stderr
    info = probe(str(out))
    assert (info.width, info.height) == (192, 128) and info.audio
    assert count_frames(str(out)) == count_frames(str(src))


def test_preview_writes_a_short_split_comparison(tmp_path):
    src = make_clip(tmp_path / "long.mp4", seconds=3)
    r = run_cli("enhance", str(src), "-o", str(tmp_path / "out"), "--preview", "1", "--model", "lanczos", "--json",
                "-q")
    assert r.returncode == 0, r.stderr
    row = _json_lines(r.stdout)[0]
    assert row["output"].endswith("long.preview.mp4") and row["frames"] == 25
    info = probe(row["output"])
    assert (info.width, info.height) == (192, 128) and abs(info.duration - 1.0) < 0.1
    assert not (tmp_path / "out" / "long.mp4").exists()
