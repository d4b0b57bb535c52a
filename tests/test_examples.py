"""The scripts in examples/ run headless, as a user runs them from the repository root."""
from __future__ import annotations

import os
import pytest
import subprocess
import sys
from pathlib import Path

from conftest import decode_frames

ROOT = Path(__file__).resolve().parent.parent


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


@pytest.mark.slow  # the watch example, waiting on its files; test_watch.py stays quick
def test_watch_round_trip():
    r = subprocess.run(["bash", "examples/watch_round_trip.sh", "--model", "lanczos", "--preset", "ultrafast"],
                       cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    work = Path(r.stdout.split("working in ")[1].split()[0])
    try:
        assert len(decode_frames(work / "imports" / "bikes.mp4")) == 75
        assert len(decode_frames(work / "imports" / "traffic.mp4")) == 120  # taken only once fully written
        assert "stopped watching" in r.stderr
    finally:
        subprocess.run(["rm", "-rf", str(work)])


def test_pipe(tmp_path):
    out = tmp_path / "piped.mp4"
    r = subprocess.run(["bash", "examples/pipe.sh", "samples/traffic.mp4", str(out), "--model", "lanczos",
                        "--duration", "1"], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    frames = decode_frames(out)
    assert frames.shape == (30, 360, 640, 3)
    probe = subprocess.run([os.environ["ENHANCER_FFMPEG"], "-hide_banner", "-i", str(out)], capture_output=True,
                           text=True).stderr
    assert "Audio: aac" in probe


@pytest.mark.slow
def test_notebook_script(tmp_path):
    r = subprocess.run([sys.executable, "examples/notebook.py", str(tmp_path)], cwd=ROOT, env=_env(),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "done 25 frames" in r.stdout and "12 frames of (360, 640, 3)" in r.stdout
    import cv2

    still = cv2.imread(str(tmp_path / "before-after.png"))
    assert still.shape == (360, 640, 3)
