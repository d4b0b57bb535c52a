"""Timecode: a source's start timecode and reel name are kept on the output, shifted to its first
frame for --start segments (issue 15)."""
from __future__ import annotations

import re
import subprocess
from fractions import Fraction

import pytest

from conftest import MAKER, make_clip, run_cli
from enhancer.media.ffprobe_json import from_ffprobe_json
from enhancer.media.probe import probe
from enhancer.media.timecode import Timecode, at

LANCZOS = ["--model", "lanczos", "--preset", "ultrafast", "-q"]


def test_non_drop_frame_arithmetic():
    tc = Timecode.parse("01:02:03:04", 25)
    assert tc.frame == (3600 + 2 * 60 + 3) * 25 + 4 and str(tc) == "01:02:03:04"
    assert str(tc.shifted(21)) == "01:02:04:00"
    assert str(Timecode.parse("23:59:59:24", 25).shifted(1)) == "00:00:00:00"  # a day wraps
    assert at("00:00:10:00", Fraction(24000, 1001), 1.0) == "00:00:11:00"  # 23.976 counts at 24
    for bad in ("1:2:3", "01:62:03:04", "01:02:03:25", "", "none"):
        assert Timecode.parse(bad, 25) is None


def test_drop_frame_counting():
    ntsc = Fraction(30000, 1001)
    assert str(Timecode.parse("00:00:59;29", ntsc).shifted(1)) == "00:01:00;02"  # 00 and 01 are skipped
    assert str(Timecode.parse("00:09:59;29", ntsc).shifted(1)) == "00:10:00;00"  # but not every tenth minute
    assert Timecode.parse("00:10:00;00", ntsc).frame == 17982
    assert Timecode.parse("01:00:00;00", ntsc).frame == 107892  # an hour of 29.97 fps, as SMPTE counts it
    for n in range(0, 40000, 7):  # every label reads back as the frame it names
        tc = Timecode(n, 30, True)
        assert Timecode.parse(str(tc), ntsc) == tc
    assert str(Timecode.parse("00:00:59;59", Fraction(60000, 1001)).shifted(1)) == "00:01:00;04"


def _tags(path) -> str:
    """ffmpeg's own report of a file's metadata (the banner), for reading tags back."""
    return subprocess.run([MAKER, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr


def _timecode_of(path) -> set[str]:
    return set(re.findall(r"^\s+timecode\s*:\s*(\S+)", _tags(path), re.M | re.I))


@pytest.fixture
def mov_with_timecode(tmp_path):
    return make_clip(tmp_path / "tc.mov", size="96x64", seconds=2, audio=True,
                     extra_out=["-timecode", "01:02:03:04", "-metadata:s:v:0", "reel_name=R042"])


def test_probe_reads_timecode_and_reel(mov_with_timecode):
    info = probe(str(mov_with_timecode))
    assert info.timecode == "01:02:03:04" and info.reel_name == "R042"
    data = {"format": {"format_name": "mov", "tags": {"timecode": "10:00:00:00"}},
            "streams": [{"index": 0, "codec_type": "video", "codec_name": "h264", "width": 8, "height": 8,
                         "avg_frame_rate": "25/1", "r_frame_rate": "25/1"},
                        {"index": 1, "codec_type": "data", "tags": {"timecode": "01:00:00:00", "reel_name": "A1"}}]}
    info = from_ffprobe_json("x.mov", data)
    assert info.timecode == "01:00:00:00" and info.reel_name == "A1"  # the track's, before the file's


def test_timecode_and_reel_kept_and_shifted(tmp_path, mov_with_timecode):
    src = mov_with_timecode
    for name, extra, expected in (("whole.mov", [], "01:02:03:04"), ("shot.mov", ["--start", "1"], "01:02:04:04"),
                                  ("shot.mp4", ["--start", "0.4"], "01:02:03:14"),
                                  ("shot.mkv", ["--start", "1.2", "--codec", "ffv1"], "01:02:04:09")):
        r = run_cli("enhance", str(src), "-o", str(tmp_path / name), *LANCZOS, *extra)
        assert r.returncode == 0, r.stderr
        assert _timecode_of(tmp_path / name) == {expected}, name
    assert "R042" in _tags(tmp_path / "whole.mov") and "R042" in _tags(tmp_path / "shot.mkv")
    r = run_cli("enhance", str(src), "-o", str(tmp_path / "frames"), "--codec", "png", "--start", "1", *LANCZOS)
    assert r.returncode == 0, r.stderr
    sidecar = next((tmp_path / "frames").rglob("timecode.txt"))
    assert sidecar.read_text().splitlines() == ["01:02:04:04", "reel_name=R042"]


def test_drop_frame_timecode_through_a_segment(tmp_path):
    src = make_clip(tmp_path / "df.mp4", size="96x64", rate="30000/1001", seconds=2.5, audio=False,
                    extra_out=["-timecode", "00:00:59;00"])
    r = run_cli("enhance", str(src), "-o", str(tmp_path / "o.mov"), "--start", "1.001", *LANCZOS)
    assert r.returncode == 0, r.stderr
    assert _timecode_of(tmp_path / "o.mov") == {"00:01:00;02"}  # 30 frames on, across a dropped pair


def test_no_timecode_in_no_timecode_out(tmp_path):
    src = make_clip(tmp_path / "plain.mp4", seconds=0.4, audio=False)
    r = run_cli("enhance", str(src), "-o", str(tmp_path / "o.mov"), *LANCZOS)
    assert r.returncode == 0 and not _timecode_of(tmp_path / "o.mov")
