"""Nothing lost, round three (issue 29): what 180 adversarial cases and a new user still found.

Each test fails on the code before its fix: data that was lost (1-3), results that were silently
wrong (4-7), failures found only after the whole file was made (8-10), wrong refusals and raw
errors (11-14), and a new user's first hour (15-18).
"""
from __future__ import annotations

import hashlib
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_clip, run_cli

LANCZOS = ["--model", "lanczos", "--preset", "ultrafast"]


def _rows(stdout: str) -> list[dict]:
    return [json.loads(x) for x in stdout.splitlines() if x.strip()]


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _records(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((folder / ".enhancer-records").glob("*.json"))]


# ---- 1. a failed input's record reserves nothing ------------------------------------------------
def test_a_failure_record_does_not_hide_a_real_file_from_discovery(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "x.avi").write_bytes(b"not a video at all" * 100)
    r = run_cli("enhance", str(folder), "-o", str(folder), "--json", "-q", *LANCZOS)
    assert _rows(r.stdout)[0]["status"] == "failed" and _rows(r.stdout)[0]["output"].endswith("x.mkv")
    mine = make_clip(folder / "x.mkv", seconds=0.2, audio=False)  # the user's own file, under that name
    before = _md5(mine)
    r = run_cli("enhance", str(folder), "-o", str(folder), "--json", "-q", "--dry-run", "--retry-failed", *LANCZOS)
    assert str(mine) in [row["input"] for row in _rows(r.stdout)], r.stdout
    make_clip(folder / "x.avi", seconds=0.2, audio=False, vcodec="mpeg4")  # repaired
    r = run_cli("enhance", str(folder), "-o", str(folder), "--json", "-q", *LANCZOS)
    assert r.returncode == 0, r.stderr
    assert _md5(mine) == before, "the user's x.mkv was replaced"
    assert {Path(row["output"]).name for row in _rows(r.stdout)} == {"x_avi.mkv", "x.enhanced.mkv"}


def test_a_file_put_where_a_failed_output_would_go_is_never_replaced(tmp_path):
    src = tmp_path / "x.avi"
    src.write_bytes(b"damaged" * 200)
    out = tmp_path / "out" / "x.mkv"
    assert _rows(run_cli("enhance", str(src), "-o", str(out), "--json", "-q", *LANCZOS).stdout)[0]["status"] == "failed"
    out.write_bytes(b"the user's own file")
    make_clip(src, seconds=0.2, audio=False, vcodec="mpeg4")  # repaired
    for extra in ([], ["--retry-failed"]):
        r = run_cli("enhance", str(src), "-o", str(out), "--json", "-q", *extra, *LANCZOS)
        row = _rows(r.stdout)[0]
        assert row["status"] == "skipped" and "exists" in row["error"], row
        assert out.read_bytes() == b"the user's own file"
    r = run_cli("enhance", str(src), "-o", str(out), "--json", "-q", "--overwrite", *LANCZOS)
    assert _rows(r.stdout)[0]["status"] == "done" and out.stat().st_size > 1000


# ---- 2. --report naming one of the batch's outputs ------------------------------------------------
def test_a_report_named_like_an_output_is_refused_before_any_work(tmp_path):
    (tmp_path / "in").mkdir()
    src = make_clip(tmp_path / "in" / "x.mp4", seconds=0.2, audio=False)
    out = tmp_path / "out"
    for args in (["enhance", str(src), "-o", str(out / "x.mp4"), "--report", str(out / "x.mp4")],
                 ["enhance", str(tmp_path / "in"), "-o", str(out), "--report", str(out / "x.mp4")],
                 ["enhance", str(src), "-o", str(out), "--codec", "png", "--report", str(out / "x_frames" / "r.json")],
                 ["enhance", str(src), "-o", str(out), "--preview", "1", "--report", str(out / "x.preview.mp4")]):
        r = run_cli(*args, "-q", *LANCZOS)
        assert r.returncode == 2 and "--report names an output of this batch" in r.stderr, (args, r.stderr)
        assert not out.exists() or not any(out.iterdir())


# ---- 3. a preview over another input -----------------------------------------------------------
def test_a_preview_never_lands_on_an_input_nor_on_another_preview(tmp_path):
    src = make_clip(tmp_path / "x.mp4", seconds=0.4, audio=False)
    (tmp_path / "out").mkdir()
    other = make_clip(tmp_path / "out" / "x.preview.mp4", seconds=0.2, audio=False)
    before = _md5(other)
    r = run_cli("enhance", str(src), str(other), "-o", str(tmp_path / "out"), "--preview", "0.2", "--overwrite", "-q",
                *LANCZOS)
    assert r.returncode == 2 and "the preview would replace an input" in r.stderr, r.stderr
    assert _md5(other) == before
    folder = tmp_path / "two"
    folder.mkdir()
    make_clip(folder / "a.mov", seconds=0.2, audio=False)
    make_clip(folder / "a.mp4", seconds=0.2, audio=False)
    r = run_cli("enhance", str(folder), "-o", str(tmp_path / "o2"), "--preview", "0.2", "-q", *LANCZOS)
    assert r.returncode == 2 and "would both be previewed as" in r.stderr, r.stderr


# ---- 4. a crash between the output's rename and the removal of its parts -------------------------
_CRASH_AFTER_RENAME = """
import os, shutil, sys
real = shutil.rmtree
def rmtree(path, *a, **k):
    if str(path).endswith(".parts") and os.path.exists(sys.argv[1]):
        os._exit(137)  # as kill -9 right after the rename
    return real(path, *a, **k)
shutil.rmtree = rmtree
from enhancer.cli import main
main(sys.argv[2:], prog_name="enhancer")
"""


def test_a_crash_after_the_rename_leaves_a_recorded_output_and_no_parts(tmp_path):
    src = make_clip(tmp_path / "a.mp4", seconds=0.4, audio=False)
    out = tmp_path / "out" / "a.mkv"
    args = ["enhance", str(src), "-o", str(out), "--json", "-q", *LANCZOS]
    p = subprocess.run([sys.executable, "-c", _CRASH_AFTER_RENAME, str(out), *args], capture_output=True, text=True)
    assert p.returncode == 137 and out.is_file(), p.stderr
    parts = out.parent / ".a.mkv.parts"
    assert parts.is_dir()
    r = run_cli(*args)  # the same recipe: done, and the parts folder cleared
    assert _rows(r.stdout)[0]["status"] == "skipped" and _rows(r.stdout)[0]["error"] == "done in an earlier run"
    assert not parts.exists()
    r = run_cli(*args, "--crf", "30")  # another recipe: our own output, redone
    assert _rows(r.stdout)[0]["status"] == "done", r.stdout


# ---- 5. an output damaged after its run --------------------------------------------------------
def test_an_output_cut_short_after_its_run_is_made_again_and_a_replaced_one_is_kept(tmp_path):
    src = make_clip(tmp_path / "a.mp4", seconds=0.4, audio=False)
    out = tmp_path / "out" / "a.mkv"
    args = ["enhance", str(src), "-o", str(out), "--json", "-q", *LANCZOS]
    assert _rows(run_cli(*args).stdout)[0]["status"] == "done"
    whole = out.read_bytes()
    out.write_bytes(whole[: len(whole) // 3])  # truncate -s 1/3
    r = run_cli(*args)
    row = _rows(r.stdout)[0]
    assert row["status"] == "done" and row["frames"] == 10, row
    assert any("cut short" in w for w in row["warnings"])
    assert out.stat().st_size == len(whole)
    out.write_bytes(b"x" * 5000)  # emptied and refilled by someone else: not ours
    r = run_cli(*args)
    row = _rows(r.stdout)[0]
    assert row["status"] == "skipped" and "not the file" in row["error"] and out.read_bytes() == b"x" * 5000
    assert any("not the file" in w for w in row["warnings"])  # said, whatever --quiet


# ---- 10. a full disk is not the input's failure --------------------------------------------------
def test_a_full_disk_is_not_recorded_as_the_inputs_failure(tmp_path):
    src = make_clip(tmp_path / "a.mp4", size="160x120", seconds=1, vf="noise=alls=30:allf=t", audio=False)
    out = tmp_path / "out"
    out.mkdir()
    args = [sys.executable, "-m", "enhancer", "enhance", str(src), "-o", str(out / "a.mkv"), "--codec", "ffv1",
            "--json", "-q", *LANCZOS[:2]]

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    r = subprocess.run(args, capture_output=True, text=True, preexec_fn=small_files, timeout=240)
    row = _rows(r.stdout)[0]
    assert r.returncode == 1 and row["status"] == "failed" and row["environment"], row
    assert "rerun tries it again" in row["error"]
    assert not [rec for rec in _records(out) if rec["entry"]["status"] == "failed"]
    r = subprocess.run(args, capture_output=True, text=True, timeout=240)  # space again: made, no flag needed
    assert _rows(r.stdout)[0]["status"] == "done", r.stdout


# ---- 8. what the container or the encoder cannot hold, refused before any work --------------------
@pytest.mark.parametrize("args", [["-o", "{out}/x.mp4", "--codec", "ffv1"], ["-o", "{out}/x.mp4", "--codec", "prores"],
                                  ["-o", "{out}", "--container", "mp4", "--codec", "ffv1"]])
def test_a_codec_the_container_cannot_hold_is_a_usage_error_before_any_work(tmp_path, args):
    src = make_clip(tmp_path / "x.mp4", seconds=0.2, audio=False)
    out = tmp_path / "out"
    r = run_cli("enhance", str(src), *[a.format(out=out) for a in args], "-q", *LANCZOS[:2])
    assert r.returncode == 2 and "cannot hold" in r.stderr and ".mkv" in r.stderr, r.stderr
    assert not out.exists()


def test_a_frame_too_large_for_the_encoder_is_refused_before_the_model_runs(tmp_path):
    from enhancer.errors import OutputError
    from enhancer.infer.engine import enhance_video
    from enhancer.infer.restorer import ClassicalUpscaler
    from enhancer.io.muxer import EncodeOptions
    from enhancer.io.probe import probe

    src = make_clip(tmp_path / "tall.mkv", size="16x9000", seconds=0.12, audio=False, vcodec="ffv1",
                    pix_fmt="yuv420p")

    class Counting(ClassicalUpscaler):
        calls = 0

        def restore(self, frames):
            Counting.calls += 1
            return super().restore(frames)

    with pytest.raises(OutputError, match="h264 cannot encode a 32x18000 frame"):
        enhance_video(probe(str(src)), str(tmp_path / "o.mkv"), Counting("lanczos", 2), EncodeOptions(codec="h264"))
    assert Counting.calls == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
