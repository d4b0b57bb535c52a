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
@pytest.mark.slow  # several runs of the CLI: over 15 s on a loaded machine
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


@pytest.mark.slow  # several runs of the CLI: over 15 s on a loaded machine
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


@pytest.mark.slow  # several runs of the CLI: over 15 s on a loaded machine
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
@pytest.mark.slow  # several runs of the CLI: over 15 s on a loaded machine
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
    from enhancer.pipeline.enhance import enhance_video
    from enhancer.restore.restorer import ClassicalUpscaler
    from enhancer.media.encode import EncodeOptions
    from enhancer.media.probe import probe

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


# ---- 9. a line break in a file name ---------------------------------------------------------------
def test_a_line_break_in_a_name_is_enhanced_like_any_other(tmp_path):
    folder = tmp_path / "in\nbox"
    folder.mkdir()
    src = make_clip(folder / "a\nb.mp4", seconds=0.4)
    r = run_cli("enhance", str(folder), "-o", str(tmp_path / "out\nput"), "--json", "-q", "--part-seconds", "0.1",
                *LANCZOS)
    row = _rows(r.stdout)[0]
    assert r.returncode == 0 and row["status"] == "done" and row["frames"] == 10, r.stdout + r.stderr
    assert row["output"] == str(tmp_path / "out\nput" / "a\nb.mp4")
    assert not [p for p in (tmp_path / "out\nput").iterdir() if p.name != ".enhancer-records"][1:]
    assert src.is_file()


# ---- 6. an AVI whose empty packets mean "the frame before, again" ---------------------------------
def _avi_with_empty_packets(path: Path, keep_every: int = 5) -> Path:
    """A 2 s MJPEG AVI at 15 fps (30 ticks) where only every ``keep_every``-th packet holds a
    picture: the others are emptied in place (size 0, the bytes turned into a JUNK chunk) and in
    the index, as a VfW capture's dropped frames or Cinepak's unchanged ones are stored."""
    import struct

    make_clip(path, size="96x64", rate="15", seconds=2, vcodec="mjpeg", pix_fmt="yuvj420p", audio=False)
    data = bytearray(path.read_bytes())
    movi, idx = data.find(b"movi"), data.rfind(b"idx1")
    for k in range(struct.unpack("<I", data[idx + 4:idx + 8])[0] // 16):
        at = idx + 8 + 16 * k
        cid, flags, offset, size = struct.unpack("<4sIII", data[at:at + 16])
        if cid != b"00dc" or k % keep_every == 0 or size < 8:
            continue
        struct.pack_into("<4sI4sI", data, movi + offset, b"00dc", 0, b"JUNK", size - 8)
        struct.pack_into("<4sIII", data, at, cid, flags, offset, 0)
    path.write_bytes(bytes(data))
    return path


def test_an_avis_empty_packets_are_repeats_with_one_frame_count_and_the_sources_rate(tmp_path):
    from conftest import decode_frames, packet_times

    src = _avi_with_empty_packets(tmp_path / "capture.avi")
    r = run_cli("probe", str(src), "--count")
    assert "frames:      30 (24 of them empty packets" in r.stdout, r.stdout
    out = tmp_path / "out.mp4"
    r = run_cli("enhance", str(src), "-o", str(out), "--json", "-q", "--part-seconds", "0.2", *LANCZOS)
    row = _rows(r.stdout)[0]
    assert row["status"] == "done" and row["frames"] == 30, row
    assert any("24 of the 30 frames are empty packets" in w for w in row["warnings"])
    times = packet_times(out)
    assert len(times) == 30 and times[-1] == pytest.approx(29 / 15, abs=1e-3)
    assert all(b - a == pytest.approx(1 / 15, abs=1e-3) for a, b in zip(times, times[1:]))  # 15 fps, not 5 or 15.5
    frames = decode_frames(out)
    assert (frames[1].astype(int) - frames[0]).__abs__().max() <= 2  # a repeat of the picture before
    assert (frames[5].astype(int) - frames[4]).__abs__().max() > 20  # the next picture


# ---- 12. what is left out of the output is said ---------------------------------------------------
def test_cover_art_and_a_second_video_stream_left_out_are_said(tmp_path):
    from conftest import MAKER

    main = make_clip(tmp_path / "main.mp4", size="96x64", seconds=0.4)
    cover = tmp_path / "cover.png"
    subprocess.run([MAKER, "-v", "error", "-f", "lavfi", "-i", "color=red:size=32x32", "-frames:v", "1", str(cover)],
                   check=True)
    art = tmp_path / "art.mp4"
    subprocess.run([MAKER, "-v", "error", "-i", str(main), "-i", str(cover), "-map", "0", "-map", "1", "-c", "copy",
                    "-c:v:1", "png", "-disposition:v:1", "attached_pic", str(art)], check=True)
    two = tmp_path / "two.mkv"
    subprocess.run([MAKER, "-v", "error", "-i", str(main), "-f", "lavfi", "-i", "testsrc=size=48x32:duration=0.4",
                    "-map", "0:v", "-map", "1:v", "-c:v", "libx264", "-preset", "ultrafast", str(two)], check=True)
    for src, said in ((art, "cover art (stream 2, png)"), (two, "video stream 1 (h264 48x32)")):
        r = run_cli("enhance", str(src), "-o", str(tmp_path / "out" / (src.stem + ".mkv")), "--json", "-q", *LANCZOS)
        row = _rows(r.stdout)[0]
        assert row["status"] == "done" and any(said in w and "left out" in w for w in row["warnings"]), row


# ---- 11. names that differ only in the case of their extension ------------------------------------
def test_a_mp4_and_a_MP4_in_one_folder_get_their_own_outputs(tmp_path):
    from enhancer.batch.naming import discover, plan_jobs

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.mp4", "a.MP4", "b.AVI", "c.avi", "c.ts"):
        (folder / name).write_bytes(b"x")
    jobs = plan_jobs(discover([str(folder)]), str(tmp_path / "out"), "h264")
    assert {Path(j.input).name: Path(j.output).name for j in jobs} == {
        "a.mp4": "a.mp4", "a.MP4": "a_MP4.mp4", "b.AVI": "b.mkv", "c.avi": "c_avi.mkv", "c.ts": "c_ts.mkv"}
    jobs = plan_jobs(discover([str(folder)]), str(folder), "h264")  # into the input folder: a.mp4 is an input
    assert {Path(j.input).name: Path(j.output).name for j in jobs}["a.mp4"] == "a.enhanced.mp4"


# ---- 14. the Python API: every wrong argument an EnhancerError with one clear line ----------------
def test_the_api_refuses_wrong_arguments_with_one_clear_line(tmp_path):
    import numpy as np

    import enhancer
    from enhancer.errors import ArgumentError

    src = make_clip(tmp_path / "a.mp4", seconds=0.2, audio=False)
    out = tmp_path / "out.mp4"
    cases = [(lambda: enhancer.enhance(src, None), "output must be a path, not None"),
             (lambda: enhancer.enhance(str(src) + "\0", out, model="lanczos"), "holds a NUL byte"),
             (lambda: enhancer.enhance(src, str(out) + "\0x", model="lanczos"), "holds a NUL byte"),
             (lambda: enhancer.enhance(src, out, model=3), "model must be a name or a path, not 3"),
             (lambda: enhancer.Enhancer(123), "model must be a name or a path, not 123"),
             (lambda: enhancer.Enhancer("lanczos").frames(None), "frames must be an iterable"),
             (lambda: enhancer.Enhancer("lanczos", scale="2"), "scale must be 1, 2 or 4 (an int"),
             (lambda: enhancer.Enhancer("lanczos", scale=3), "scale must be 1, 2 or 4"),
             (lambda: enhancer.enhance(src, out, model="lanczos", scale=3), "scale must be 1, 2 or 4")]
    for call, said in cases:
        with pytest.raises(ArgumentError) as e:
            call()
        assert said in str(e.value) and "\n" not in str(e.value)
    assert not out.exists()
    assert len(list(enhancer.Enhancer("lanczos").frames(np.zeros((2, 8, 8, 3), np.uint8)))) == 2


# ---- 15. progress when stderr is a log or a pipe --------------------------------------------------
def test_a_plain_progress_line_every_few_seconds_where_stderr_is_not_a_terminal(monkeypatch):
    import io
    import threading

    from enhancer import progress

    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(progress._LineBar, "interval", 0.02)  # "a few seconds", made short
    ticked = threading.Event()
    real = progress._LineBar._say

    def said(self, stage):
        real(self, stage)
        ticked.set()

    monkeypatch.setattr(progress._LineBar, "_say", said)
    with progress.using("bar"), progress.bar(total=444, desc="[1/2] film.avi", unit="frame") as b:
        b.update(111)
        ticked.clear()
        assert ticked.wait(5)  # a line, with no redraw asked for
    lines = [x for x in err.getvalue().splitlines() if x]
    assert lines and lines[-1].startswith("[1/2] film.avi: 111/444 frames (25%)"), lines
    assert "\r" not in err.getvalue() and "\x1b" not in err.getvalue()  # plain lines, no bar drawing
    err.truncate(0)
    with progress.using("none"), progress.bar(total=10, desc="quiet", unit="frame") as b:
        b.update(5)
    assert err.getvalue() == ""


# ---- 16. delivery codecs are 4:2:0 by default -----------------------------------------------------
@pytest.mark.slow  # several runs of the CLI: over 15 s on a loaded machine
def test_an_rgb_source_makes_4_2_0_h264_unless_asked_and_prores_keeps_4_4_4(tmp_path):
    from conftest import MAKER

    from enhancer.media.probe import probe

    frames = tmp_path / "frames"
    frames.mkdir()
    subprocess.run([MAKER, "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25:duration=0.2",
                    str(frames / "f_%04d.png")], check=True)
    for name, extra, pix in (("web.mp4", [], "yuv420p"), ("asked.mp4", ["--pix-fmt", "yuv444p"], "yuv444p"),
                             ("edit.mov", ["--codec", "prores"], "yuv444p1")):  # ProRes 4444 decodes as 12-bit
        r = run_cli("enhance", str(frames), "-o", str(tmp_path / name), "-q", *extra, *LANCZOS)
        assert r.returncode == 0, r.stderr
        assert probe(str(tmp_path / name)).pix_fmt.startswith(pix), name


# ---- 17. a study pairs the same clip --------------------------------------------------------------
def test_a_study_leaves_out_a_clip_whose_versions_differ_in_length_and_says_so(tmp_path):
    for method, seconds in (("a", {"short": 1.0, "same": 0.4}), ("b", {"short": 3.0, "same": 0.4})):
        (tmp_path / method).mkdir()
        for clip, length in seconds.items():
            make_clip(tmp_path / method / f"{clip}.mp4", size="64x48", seconds=length, audio=False)
    r = run_cli("study", "make", str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(tmp_path / "out"), "--seed", "1")
    assert r.returncode == 0, r.stderr
    assert "1 pairs (1 clips" in r.stdout and "short (1.00 s in a, 3.00 s in b)" in r.stdout, r.stdout
    trials = json.loads((tmp_path / "out" / "study.json").read_text())["trials"]
    assert {t["clip"] for t in trials} == {"same"}
    (tmp_path / "a" / "same.mp4").unlink()
    r = run_cli("study", "make", str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(tmp_path / "out2"))
    assert r.returncode == 2 and "differ in length" in r.stderr, r.stderr


def test_what_counts_as_the_environments_failure(tmp_path):
    import errno

    from enhancer.batch.runner import environment_failure
    from enhancer.errors import FFmpegError, InputError, OutputError

    target = str(tmp_path / "a.mkv")
    assert environment_failure(OutputError("output folder is not writable", path=str(tmp_path)), target)
    assert environment_failure(OutputError("cannot create output folder: Permission denied"), target)
    assert environment_failure(FFmpegError("encoding failed", stderr_tail=["No space left on device"]), target)
    assert environment_failure(OSError(errno.ENOSPC, "No space left on device"), target)
    assert not environment_failure(InputError("not a readable video (Invalid data found)"), target)
    assert not environment_failure(FFmpegError("decoding failed", stderr_tail=["Invalid NAL unit size"]), target)
