"""The one output path: the picture encoded alone, joined with the source's other streams by one
function; files as parts, stdout as a stream piped into the join."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import MAKER, make_clip, run_cli
from enhancer.media.mp4boxes import mov_track_titles
from enhancer.media.probe import count_frames

LANCZOS = ["--model", "lanczos", "-q"]


def _framecrc(path) -> str:
    return subprocess.run([MAKER, "-v", "error", "-i", str(path), "-map", "0", "-c", "copy", "-f", "framecrc", "-"],
                          capture_output=True, text=True, check=True).stdout


@pytest.mark.slow  # a 4 s 320x240 clip at --preset veryslow, twice; test_cli.py's pipe stays quick
def test_stdout_streams_and_equals_the_file_output(tmp_path):
    """-o - writes as the frames come (the first bytes arrive long before the end) and is, stream
    for stream and packet for packet, the file output."""
    src = make_clip(tmp_path / "clip.mp4", seconds=4.0, size="320x240")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "enhancer", "enhance", str(src), "-o", "-", *LANCZOS,
                             "--preset", "veryslow"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    first = proc.stdout.read(1)
    t_first = time.monotonic() - t0
    running = proc.poll() is None
    data = first + proc.stdout.read()
    proc.wait(timeout=240)
    t_end = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr.read()
    assert running and t_first < t_end - 1.0, (t_first, t_end)  # streamed, not sent whole at the end
    piped = tmp_path / "piped.mkv"
    piped.write_bytes(data)
    slow = tmp_path / "slow.mkv"
    assert run_cli("enhance", str(src), "-o", str(slow), *LANCZOS, "--preset", "veryslow").returncode == 0
    assert _framecrc(piped) == _framecrc(slow)
    assert count_frames(str(piped)) == count_frames(str(src))


def test_stdout_reader_that_stops_early_is_an_error(tmp_path):
    """A reader that goes away (| head -c 1000) is a failure with one line, even where Python's
    stdout is unbuffered (short writes), never a silent 'done'."""
    src = make_clip(tmp_path / "clip.mp4", seconds=2.0, size="320x240")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # far more than a pipe's buffer (64 KiB): the join is still writing when the reader goes
    proc = subprocess.Popen([sys.executable, "-m", "enhancer", "enhance", str(src), "-o", "-", *LANCZOS, "--crf", "4"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdout.read(1000)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=240) == 1, err
    assert "stdout stopped before the output was complete" in err and "Traceback" not in err, err


def test_an_output_folder_that_cannot_be_made_is_one_line(tmp_path):
    """compare and degrade (the Muxer's other users) say which output and why, no traceback."""
    src = make_clip(tmp_path / "clip.mp4", seconds=0.4, audio=False)
    (tmp_path / "file.txt").write_text("not a folder")
    for args in (["compare", str(src), str(src), "-o", str(tmp_path / "file.txt" / "c.mp4"), "-q"],
                 ["degrade", str(src), "-o", str(tmp_path / "file.txt" / "d.mp4"), "-q"]):
        r = run_cli(*args)
        assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
        line = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
        assert len(line) == 1 and "file.txt" in line[0] and "part_" not in line[0], r.stderr


def test_encoder_errors_name_the_output_not_the_part(tmp_path):
    src = make_clip(tmp_path / "clip.mp4", seconds=0.4, audio=False, size="96x64")
    r = run_cli("enhance", str(src), "-o", str(tmp_path / "o.mov"), "--codec", "dnxhr", *LANCZOS)
    assert r.returncode == 1 and "o.mov" in r.stderr and "part_" not in r.stderr and ".partial" not in r.stderr, \
        r.stderr
    # an encoder that fails inside ffmpeg (a profile x264 refuses for this picture): the resumable
    # parts path and the stream to stdout both say the encoder's own error
    big = make_clip(tmp_path / "big.mp4", seconds=0.4, audio=False, size="320x180")
    for out in (str(tmp_path / "p.mkv"), "-"):
        r = run_cli("enhance", str(big), "-o", out, "--encoder-args", "-profile:v baseline", "--pix-fmt", "yuv444p",
                    *LANCZOS)
        assert r.returncode == 1 and "encoding failed" in r.stderr, r.stderr
        assert "part_" not in r.stderr and ".parts" not in r.stderr and "pipe:0" not in r.stderr, r.stderr


def test_ctrl_c_in_compare_and_degrade_is_clean(tmp_path):
    """Ctrl-C (SIGINT to the whole group, as a terminal sends it) stops compare and degrade with
    exit 130 and leaves no temporary beside the output."""
    src = make_clip(tmp_path / "clip.mp4", seconds=20.0, size="640x360")  # far longer than the wait below
    for name, args in (("c.mp4", ["compare", str(src), str(src)]), ("d.mp4", ["degrade", str(src)])):
        out = tmp_path / "out" / name
        out.parent.mkdir(exist_ok=True)
        proc = subprocess.Popen([sys.executable, "-m", "enhancer", *args, "-o", str(out), "-q"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        deadline = time.time() + 60
        while time.time() < deadline and not any(p.name.startswith(".") for p in out.parent.iterdir()):
            time.sleep(0.05)
        time.sleep(0.3)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130 and "interrupted" in err and "error:" not in err, (name, proc.returncode, err)
        assert list(out.parent.iterdir()) == [], list(out.parent.iterdir())


def test_quicktime_titles_in_mac_roman_are_read_as_such(tmp_path):
    """A QuickTime udta/\xa9nam with a Macintosh language code holds Mac Roman text."""
    def box(kind: bytes, payload: bytes) -> bytes:
        return (8 + len(payload)).to_bytes(4, "big") + kind + payload

    mac = "Caméra 2".encode("mac_roman")
    nam = box(b"\xa9nam", len(mac).to_bytes(2, "big") + (0).to_bytes(2, "big") + mac)
    utf = "Caméra 3".encode("utf-8")
    name = box(b"name", utf)
    moov = box(b"moov", box(b"trak", box(b"udta", nam)) + box(b"trak", box(b"udta", name)))
    path = tmp_path / "t.mov"
    path.write_bytes(box(b"ftyp", b"qt  \0\0\0\0") + moov)
    assert mov_track_titles(str(path)) == {0: "Caméra 2", 1: "Caméra 3"}
    path.write_bytes(box(b"ftyp", b"qt  \0\0\0\0") + moov[:-5])  # cut short: read what is whole, never fail
    assert mov_track_titles(str(path)) in ({}, {0: "Caméra 2"})


def test_a_segment_starts_both_streams_at_its_start(tmp_path):
    """--start/--duration from a file whose key frames are far apart (the seek lands seconds
    before the segment): picture and sound both begin at the segment's start, in MKV, MP4 and on
    stdout. The sound before it used to come along at negative times, which Matroska cannot
    hold: the whole file moved, the picture seconds after the sound."""
    from conftest import packet_times

    src = make_clip(tmp_path / "sparse.mp4", seconds=5.0, extra_out=["-g", "1000"])
    outs = []
    for name in ("seg.mkv", "seg.mp4"):
        out = tmp_path / name
        r = run_cli("enhance", str(src), "-o", str(out), "--start", "3", "--duration", "1.2", *LANCZOS)
        assert r.returncode == 0, r.stderr
        outs.append(out)
    piped = tmp_path / "piped.mkv"
    with open(piped, "wb") as f:
        r = subprocess.run([sys.executable, "-m", "enhancer", "enhance", str(src), "-o", "-", "--start", "3",
                            "--duration", "1.2", *LANCZOS], stdout=f, stderr=subprocess.PIPE, text=True, timeout=240)
    assert r.returncode == 0, r.stderr
    outs.append(piped)
    for out in outs:
        video, audio = packet_times(out, "v:0", copyts=True), packet_times(out, "a:0", copyts=True)
        assert len(video) == 30, (out.name, len(video))  # 1.2 s at 25 fps
        assert min(video) < 0.1 and min(audio) < 0.1 and min(audio) > -0.05, (out.name, min(video), min(audio))
        assert 1.1 < max(audio) < 1.3, (out.name, max(audio))  # the segment's sound, not the seconds before it
