"""Overnight batches: state and resume, locks, interruption, every container, bad input, fuzzing."""
from __future__ import annotations

import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import make_clip, packet_times, run_cli
from enhancer.media import ffmpeg as ff
from enhancer.media.probe import count_frames, probe


def _rows(stdout: str) -> dict[str, dict]:
    return {Path(json.loads(x)["input"]).name: json.loads(x) for x in stdout.splitlines() if x.strip()}


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.startswith(".") and p.name != ".enhancer-records"
            and p.parent.name != ".enhancer-records"]


@pytest.mark.slow
def test_rerun_skips_done_redoes_changed_and_retries_failed_on_request(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "a.mp4", seconds=0.4)
    make_clip(src / "b.mp4", seconds=0.4)
    (src / "bad.mp4").write_bytes(b"\x00" * 1000)
    out = tmp_path / "out"
    r1 = run_cli("enhance", str(src), "-o", str(out), "--json", "-q")
    assert {k: v["status"] for k, v in _rows(r1.stdout).items()} == {"a.mp4": "done", "b.mp4": "done",
                                                                       "bad.mp4": "failed"}
    from enhancer.batch.state import BatchState

    assert {Path(k).name: v.status for k, v in BatchState(out).entries.items()} == \
        {"a.mp4": "done", "b.mp4": "done", "bad.mp4": "failed"}
    time.sleep(0.01)
    make_clip(src / "b.mp4", seconds=0.8)  # b changes
    r2 = run_cli("enhance", str(src), "-o", str(out), "--json", "-q")
    rows = _rows(r2.stdout)
    assert rows["a.mp4"]["status"] == "skipped" and rows["b.mp4"]["status"] == "done"
    assert rows["b.mp4"]["frames"] == 20
    assert rows["bad.mp4"]["status"] == "failed" and "earlier run" in rows["bad.mp4"]["error"]
    assert r2.returncode == 1
    make_clip(src / "bad.mp4", seconds=0.4)  # repaired, but unchanged identity is not what matters here
    r3 = run_cli("enhance", str(src), "-o", str(out), "--json", "-q", "--retry-failed")
    assert _rows(r3.stdout)["bad.mp4"]["status"] == "done" and r3.returncode == 0


@pytest.mark.slow  # three CLI runs beside a lock holder; the lock itself is tested in test_state.py
def test_live_lock_skips_that_output_and_stale_lock_is_taken_over(tmp_path):
    """Another run making one output: this run leaves that one to it and makes the others."""
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "a.mp4", seconds=0.4)
    make_clip(src / "b.mp4", seconds=0.4)
    out = tmp_path / "out"
    out.mkdir()
    import socket

    from enhancer.batch.state import OutputLock

    lock = OutputLock(str(out / "a.mp4")).path
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from enhancer.batch.state import OutputLock; "
                               f"OutputLock({str(out / 'a.mp4')!r}).acquire(); print('held', flush=True); "
                               "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        r = run_cli("enhance", str(src), "-o", str(out), "-q", "--json")
        rows = _rows(r.stdout)
        assert r.returncode == 1 and rows["b.mp4"]["status"] == "done", r.stderr  # a.mp4 is not made (yet)
        assert rows["a.mp4"]["status"] == "busy" and f"process {holder.pid}" in rows["a.mp4"]["error"]
        assert "is making this output" in rows["a.mp4"]["error"] and not (out / "a.mp4").exists()
    finally:
        holder.kill()
        holder.wait()
    # killed without releasing it: the OS dropped the lock, and the next run takes it over
    assert lock.exists()
    r = run_cli("enhance", str(src), "-o", str(out), "--json")
    row = _rows(r.stdout)["a.mp4"]
    assert r.returncode == 0 and row["status"] == "done" and not lock.exists(), r.stderr
    assert any("took over the lock" in w and f"process {holder.pid}" in w for w in row["warnings"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    r = run_cli("enhance", str(src / "a.mp4"), "-o", str(out / "a.mp4"), "--overwrite")
    assert r.returncode == 0 and "took over the lock" in r.stderr, r.stderr


def test_fail_fast_and_report(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a_bad.mp4").write_bytes(os.urandom(3000))
    make_clip(src / "b_good.mp4", seconds=0.4)
    report = tmp_path / "report.json"
    r = run_cli("enhance", str(src), "-o", str(tmp_path / "out"), "--fail-fast", "--report", str(report), "-q")
    assert r.returncode == 1
    data = json.loads(report.read_text())
    assert data["failed"] == 1 and data["done"] == 0 and data["skipped"] == 1
    assert "fail-fast" in data["files"][1]["error"]
    assert "a_bad.mp4" in r.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)])
def test_interrupt_stops_cleans_up_and_rerun_finishes(tmp_path, sig):
    src = make_clip(tmp_path / "long.mp4", size="320x240", seconds=20, rate="25")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "enhancer", "enhance", str(src), "-o", str(out), "--scale", "4",
                             "--model", "lanczos",
                             "--preset", "slow", "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    parts = out / ".long.mp4.parts"
    deadline = time.time() + 60
    while time.time() < deadline and not list(parts.glob(".part_*.partial-*")):
        time.sleep(0.1)
    assert list(parts.glob(".part_*.partial-*")), "the encode never started"
    time.sleep(0.5)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    # nothing half-written is left: only finished parts (none yet) kept for the rerun to reuse
    assert not [p for p in out.rglob("*") if ".partial-" in p.name] and not (out / "long.mp4").exists()
    assert not [p for p in _leftovers(out) if p != parts and p.parent != parts]
    r = run_cli("enhance", str(src), "-o", str(out), "--scale", "2", "--model", "lanczos", "--preset", "ultrafast",
                "--json", "-q")
    assert json.loads(r.stdout)["status"] == "done"
    assert not _leftovers(out)


# ---- every input a user has ------------------------------------------------------------------
FORMATS = [
    ("h264.mp4", ["-c:v", "libx264", "-preset", "ultrafast"], True),
    ("hevc.mkv", ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error"], True),
    ("vp9.webm", ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8"], True),
    ("av1.mkv", ["-c:v", "libsvtav1", "-preset", "12"], False),
    ("mpeg2.ts", ["-c:v", "mpeg2video"], True),
    ("mpeg4.avi", ["-c:v", "mpeg4"], True),
    ("mjpeg.avi", ["-c:v", "mjpeg", "-pix_fmt", "yuvj420p"], False),
    ("prores.mov", ["-c:v", "prores_ks", "-pix_fmt", "yuv422p10le"], True),
    ("ffv1.mkv", ["-c:v", "ffv1"], True),
    ("theora.ogv", ["-c:v", "libtheora"], True),
    ("flv1.flv", ["-c:v", "flv"], True),
    ("h264_444.mp4", ["-c:v", "libx264", "-pix_fmt", "yuv444p", "-preset", "ultrafast"], False),
    ("h264_10bit.mkv", ["-c:v", "libx264", "-pix_fmt", "yuv420p10le", "-preset", "ultrafast"], False),
    ("anim.gif", ["-c:v", "gif"], False),
]


# the quick run decodes three (the plain case, AVI's empty packets, 10-bit without audio), the slow run the rest
QUICK_FORMATS = {"h264.mp4", "mpeg4.avi", "h264_10bit.mkv"}


@pytest.mark.parametrize("name,vargs,audio", [pytest.param(*f, id=f[0], marks=() if f[0] in QUICK_FORMATS else
                                                           pytest.mark.slow) for f in FORMATS])
def test_every_container_and_codec(tmp_path, name, vargs, audio):
    src = tmp_path / name
    argv = [ff.tools().ffmpeg, "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25:duration=1"]
    if audio:
        argv += ["-f", "lavfi", "-i", "sine=duration=1:sample_rate=48000"]
    argv += vargs
    if "-pix_fmt" not in vargs and name != "anim.gif":
        argv += ["-pix_fmt", "yuv420p"]
    if audio:
        acodec = {".webm": "libopus", ".ogv": "libvorbis", ".flv": "libmp3lame", ".avi": "libmp3lame",
                  ".ts": "mp2"}.get(src.suffix, "aac")
        argv += ["-c:a", acodec, "-shortest"]
    subprocess.run(argv + [str(src)], check=True)
    out = tmp_path / "out"
    r = run_cli("enhance", str(src), "-o", str(out), "--json", "-q")
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)
    dst = Path(row["output"])
    assert count_frames(str(dst)) == count_frames(str(src)) == row["frames"]
    assert not row["incomplete"], row["warnings"]  # a whole file is never called incomplete
    tin, tout = packet_times(src), packet_times(dst)
    if src.suffix == ".avi":  # an empty packet (ffmpeg's AVI writer leaves one after the first frame of
        # mpeg4) shows the frame before again: the output has a frame on every tick, each source frame's among them
        assert all(min(abs((a - tin[0]) - (b - tout[0])) for b in tout) < 0.002 for a in tin)
        assert max(abs(b - a - 0.04) for a, b in zip(tout, tout[1:])) < 0.002
    else:  # the same timeline from the first frame on (ffmpeg moves a file's start to zero, as a remux does)
        assert max(abs((a - tin[0]) - (b - tout[0])) for a, b in zip(tin, tout)) < 0.002
    info = probe(str(dst))
    assert (info.width, info.height) == (192, 128)
    assert bool(info.audio) == audio
    if "10le" in " ".join(vargs):
        assert info.bit_depth == 10


@pytest.mark.slow  # two runs of the default model; image sequences are quick in test_cli.py and test_first_hour.py
def test_image_sequence_inputs(tmp_path):
    frames = tmp_path / "shots"
    frames.mkdir()
    subprocess.run([ff.tools().ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25",
                    "-frames:v", "7", str(frames / "frames_%05d.png")], check=True)
    r = run_cli("enhance", str(frames), "-o", str(tmp_path / "o1"), "--json", "-q")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["frames"] == 7
    r = run_cli("enhance", str(frames / "frames_%05d.png"), "-o", str(tmp_path / "o2"), "--json", "-q")
    row = json.loads(r.stdout)
    assert row["status"] == "done" and row["frames"] == 7 and Path(row["output"]).name == "frames.mkv"


# ---- bad input -------------------------------------------------------------------------------
def _truncated(path: Path, keep: float) -> bytes:
    data = path.read_bytes()
    return data[: int(len(data) * keep)]


def test_bad_inputs_each_get_one_line_and_the_batch_goes_on(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    good = make_clip(src / "good.mp4", seconds=0.5)
    (src / "zero.mp4").write_bytes(b"")
    (src / "random.mkv").write_bytes(os.urandom(20000))
    moov_end = make_clip(tmp_path / "moov.mp4", seconds=1)  # moov atom at the end
    (src / "nomoov.mp4").write_bytes(_truncated(moov_end, 0.7))
    subprocess.run([ff.tools().ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "sine=duration=0.5",
                    str(src / "audio_only.m4a")], check=True)
    (src / "dir.mp4").mkdir()
    out = tmp_path / "out"
    r = run_cli("enhance", str(src), str(src / "audio_only.m4a"), "-o", str(out), "--json", "-q")
    assert r.returncode == 1
    rows = _rows(r.stdout)
    assert rows["good.mp4"]["status"] == "done"
    for name, words in [("zero.mp4", "empty"), ("random.mkv", "not a readable video"), ("nomoov.mp4", "moov"),
                        ("audio_only.m4a", "audio-only")]:
        assert rows[name]["status"] == "failed", name
        assert name in rows[name]["error"] and words in rows[name]["error"], rows[name]["error"]
    err_lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(err_lines) == 4 and "Traceback" not in r.stderr
    assert not _leftovers(out)
    assert good.exists()


def test_transport_stream_cut_in_the_middle_keeps_what_decodes(tmp_path):
    full = make_clip(tmp_path / "full.ts", size="96x64", seconds=2, vcodec="mpeg2video")
    cut = tmp_path / "cut.ts"
    cut.write_bytes(_truncated(full, 0.5))
    r = run_cli("enhance", str(cut), "-o", str(tmp_path / "out"), "--json", "-q")
    row = json.loads(r.stdout)
    assert row["status"] == "done" and 10 < row["frames"] < 50
    assert count_frames(row["output"]) == row["frames"]


def test_missing_and_unreadable_inputs(tmp_path):
    r = run_cli("enhance", str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "o"), "--json", "-q")
    assert r.returncode == 1 and "missing.mp4: no such file" in json.loads(r.stdout)["error"]
    if os.geteuid() != 0:
        locked = make_clip(tmp_path / "locked.mp4", seconds=0.4)
        locked.chmod(0)
        r = run_cli("enhance", str(locked), "-o", str(tmp_path / "o"), "--json", "-q")
        assert "permission denied" in json.loads(r.stdout)["error"]


@pytest.mark.slow
def test_full_disk_fails_cleanly(tmp_path):
    src = make_clip(tmp_path / "a.mp4", size="320x240", seconds=3, vf="noise=alls=30:allf=t")
    out = tmp_path / "out"
    out.mkdir()

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (150_000, 150_000))

    r = subprocess.run([sys.executable, "-m", "enhancer", "enhance", str(src), "-o", str(out / "a.mkv"), "--codec",
                        "ffv1", "--json", "-q"], capture_output=True, text=True, preexec_fn=small_files, timeout=240)
    assert r.returncode == 1, r.stderr
    row = json.loads(r.stdout)
    assert row["status"] == "failed" and "a.mkv" in row["error"] and ("disk" in row["error"] or "large" in row["error"])
    assert not [p for p in out.iterdir() if p.name != ".enhancer-records"]


def test_fuzzed_files_never_hang_or_crash(tmp_path):
    base = make_clip(tmp_path / "base.mp4", size="64x48", seconds=0.6).read_bytes()
    rng = random.Random(1234)
    out = tmp_path / "out"
    for k in range(12):
        data = bytearray(base)
        for _ in range(rng.randint(1, 40)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[: rng.randrange(len(data))]
        (tmp_path / f"f{k}.mp4").write_bytes(bytes(data))
    files = [str(tmp_path / f"f{k}.mp4") for k in range(12)]
    r = subprocess.run([sys.executable, "-m", "enhancer", "enhance", *files, "-o", str(out), "--json", "-q"],
                       capture_output=True, text=True, timeout=280)
    assert "Traceback" not in r.stderr and "internal error" not in r.stdout
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(rows) == 12
    for row in rows:
        if row["status"] == "done":
            assert count_frames(row["output"]) == row["frames"] > 0
        else:
            assert row["status"] == "failed" and row["error"] and "\n" not in row["error"]
    assert not _leftovers(out)


@pytest.mark.slow
def test_long_file_resumes_after_the_last_finished_part(tmp_path):
    from conftest import decode_frames

    src = make_clip(tmp_path / "long.mp4", size="320x240", seconds=12, rate="25")
    args = ["--codec", "ffv1", "--part-seconds", "1", "--scale", "4", "--model", "lanczos", "--json", "-q"]
    straight = tmp_path / "straight.mkv"
    r = run_cli("enhance", str(src), "-o", str(straight), *args)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out" / "long.mkv"
    parts = out.with_name(".long.mkv.parts")
    proc = subprocess.Popen([sys.executable, "-m", "enhancer", "enhance", str(src), "-o", str(out), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if len(json.loads((parts / "manifest.json").read_text())["parts"]) >= 3:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert not out.exists()
    done = json.loads((parts / "manifest.json").read_text())["parts"]
    assert 3 <= len(done) < 12
    r = run_cli("enhance", str(src), "-o", str(out), *args)
    row = json.loads(r.stdout)
    assert row["status"] == "done" and row["frames"] == 300, r.stderr
    assert any("resumed" in w for w in row["warnings"])
    assert not parts.exists()
    assert packet_times(out) == pytest.approx(packet_times(straight), abs=1e-3)
    a, b = decode_frames(straight), decode_frames(out)
    assert a.shape == b.shape and (a == b).all()  # joined frame-accurately: the very same frames
    assert probe(str(out)).audio
