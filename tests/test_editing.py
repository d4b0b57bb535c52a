"""Outputs for editors: DNxHR, the user's own encoder options, exact output sizes (issue 15)."""
from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from conftest import MAKER, decode_frames, make_clip, run_cli
from enhancer.errors import EnhancerError
from enhancer.media.encoder_args import check_encoder_args
from enhancer.media.geometry import fitted_size

LANCZOS = ["--model", "lanczos", "-q"]


def _stream(path) -> str:
    return subprocess.run([MAKER, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr


@pytest.mark.parametrize("src_fmt,expected", [pytest.param("yuv420p", "DNXHR HQ", marks=pytest.mark.slow),
                                              ("yuv422p10le", "DNXHR HQX"),
                                              pytest.param("yuv444p", "DNXHR 444", marks=pytest.mark.slow)])
def test_dnxhr_profiles_follow_the_source(tmp_path, src_fmt, expected):
    src = make_clip(tmp_path / "s.mov", size="160x64", seconds=0.3, audio=True, pix_fmt=src_fmt,
                    vcodec="libx264" if "10" not in src_fmt else "prores_ks")
    r = run_cli("enhance", str(src), "-o", str(tmp_path / "o"), "--codec", "dnxhr", *LANCZOS)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "o" / "s.mov"  # DNxHR goes into MOV by default
    info = _stream(out)
    assert "dnxhd" in info and f"({expected})" in info and "320x128" in info and "Audio: aac" in info
    assert len(decode_frames(out)) == len(decode_frames(src))


def test_dnxhr_too_small_is_one_line(tmp_path):
    src = make_clip(tmp_path / "s.mp4", size="96x64", seconds=0.2, audio=False)
    r = run_cli("enhance", str(src), "-o", str(tmp_path / "o.mov"), "--codec", "dnxhr", *LANCZOS)
    assert r.returncode == 1 and "at least 256x120" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "o.mov" in r.stderr


def test_dnxhr_size_is_judged_after_size(tmp_path):
    """The smallest DNxHR frame is checked on what the encoder gets: --size can make a small
    source fit, and can make a large one too small (refused before any work, not inside ffmpeg)."""
    small = make_clip(tmp_path / "s.mp4", size="96x64", seconds=0.2, audio=False)
    r = run_cli("enhance", str(small), "-o", str(tmp_path / "o.mov"), "--codec", "dnxhr", "--size", "384x256",
                *LANCZOS)
    assert r.returncode == 0, r.stderr
    assert "384x256" in _stream(tmp_path / "o.mov")
    big = make_clip(tmp_path / "b.mp4", size="320x180", seconds=0.2, audio=False)
    r = run_cli("enhance", str(big), "-o", str(tmp_path / "p.mov"), "--codec", "dnxhr", "--size", "128x72",
                *LANCZOS)
    assert r.returncode == 1 and "at least 256x120" in r.stderr and "128x72" in r.stderr, r.stderr
    assert "larger --size" in r.stderr and len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "p.mov").exists()


def test_encoder_args_reach_the_encoder_and_are_checked(tmp_path):
    src = make_clip(tmp_path / "s.mp4", size="96x64", seconds=0.8, audio=False)
    r = run_cli("enhance", str(src), "-o", str(tmp_path / "o.mp4"), "--encoder-args", "-g 5 -bf 0", *LANCZOS)
    assert r.returncode == 0, r.stderr
    types = subprocess.run([MAKER, "-hide_banner", "-i", str(tmp_path / "o.mp4"), "-vf", "showinfo", "-f", "null",
                            "-"], capture_output=True, text=True).stderr
    kinds = [line.split("type:")[1][0] for line in types.splitlines() if "type:" in line and "showinfo" in line]
    assert len(kinds) == 20 and "B" not in kinds and [i for i, k in enumerate(kinds) if k == "I"] == [0, 5, 10, 15]
    for bad in ("-map 0", "-vf scale=2:2", "-c:a mp3", "-tune film other.mp4", "-pix_fmt gray", "-f null"):
        r = run_cli("enhance", str(src), "-o", str(tmp_path / "x.mp4"), "--encoder-args", bad, *LANCZOS)
        assert r.returncode == 2 and "--encoder-args" in r.stderr, bad
        assert not (tmp_path / "x.mp4").exists() and not (tmp_path / "other.mp4").exists()
    assert check_encoder_args(["-x264-params", "aq-mode=3", "-profile:v", "high"]) == (
        "-x264-params", "aq-mode=3", "-profile:v", "high")
    for harmless in (["-tune", "film", "-g", "48", "-bf", "2", "-level", "4.1", "-b:v", "5M", "-maxrate", "6M",
                      "-bufsize", "8M", "-refs", "3", "-filter_threads", "2", "-psnr"],):
        assert check_encoder_args(harmless) == tuple(harmless)
    # a flag takes no value, so a word after it is an output file; an option needs its value; options
    # for audio, colour tags, length, logging or ffmpeg's own help are enhancer's (found in review)
    for bad in (["-hide_banner", "x.mp4"], ["-g"], ["-b:v"], ["-/vf", "f.txt"], ["-ar", "22050"], ["-b:a", "64k"],
                ["-color_range", "pc"], ["-colorspace", "bt709"], ["-fs", "1M"], ["-v", "quiet"], ["-pass", "1"],
                ["-h"], ["-version"], ["-tune film"], ["-g", 48]):
        with pytest.raises(EnhancerError):
            check_encoder_args(bad)


def test_users_x264_params_join_enhancers_own(tmp_path):
    """A user's -x264-params used to replace enhancer's (ffmpeg keeps the last of a repeated option),
    dropping the memory-fitted lookahead."""
    from enhancer.media.encoder_args import merged_params

    vargs, extra = merged_params(["-c:v", "libx264", "-x264-params", "rc-lookahead=10:sync-lookahead=0"],
                                 ["-tune", "film", "-x264-params", "aq-mode=3"])
    assert vargs == ["-c:v", "libx264", "-x264-params", "rc-lookahead=10:sync-lookahead=0:aq-mode=3"]
    assert extra == ["-tune", "film"]
    src = make_clip(tmp_path / "s.mp4", size="96x64", seconds=0.2, audio=False)
    r = run_cli("enhance", str(src), "-o", str(tmp_path / "o.mp4"), "--encoder-args", "-x264-params aq-mode=3",
                "--model", "lanczos", "-v", env={"ENHANCER_MEMORY_AVAILABLE": "10M"})
    assert r.returncode == 0, r.stderr
    assert "rc-lookahead=5:sync-lookahead=0:aq-mode=3" in r.stderr and r.stderr.count("-x264-params") == 1


def test_fitted_size_keeps_the_aspect():
    even = (True, True)
    from fractions import Fraction

    assert fitted_size(640, 360, Fraction(16, 9), (1280, None), even) == ((1280, 720), (1280, 720))
    assert fitted_size(640, 360, Fraction(16, 9), (None, 101), (False, False)) == ((180, 101), (180, 101))
    assert fitted_size(640, 360, Fraction(16, 9), (800, 800), even) == ((800, 450), (800, 800))
    assert fitted_size(640, 480, Fraction(4, 3), (1920, 1080), even) == ((1440, 1080), (1920, 1080))


def test_size_options(tmp_path):
    src = make_clip(tmp_path / "s.mp4", size="160x90", seconds=0.2, audio=False)
    r = run_cli("enhance", str(src), "-o", str(tmp_path / "w.mp4"), "--width", "500", *LANCZOS)
    assert r.returncode == 0, r.stderr
    assert decode_frames(tmp_path / "w.mp4").shape[1:3] == (282, 500)
    r = run_cli("enhance", str(src), "-o", str(tmp_path / "b.mp4"), "--size", "400x400", "--json", *LANCZOS)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert any("black bars" in w for w in res["warnings"])  # padding is never silent
    frames = decode_frames(tmp_path / "b.mp4")
    assert frames.shape[1:3] == (400, 400)
    bars = np.concatenate([frames[:, :80], frames[:, -80:]])
    assert bars.max() <= 20 and frames[:, 120:280].mean() > 40  # 400x224 picture, bars above and below
    r = run_cli("enhance", str(src), "-o", str(tmp_path / "e.mp4"), "--size", "400x400", "--width", "3", *LANCZOS)
    assert r.returncode == 2
    r = run_cli("enhance", str(src), "-o", str(tmp_path / "e.mp4"), "--size", "big", *LANCZOS)
    assert r.returncode == 2 and "WIDTHxHEIGHT" in r.stderr
