"""Shared fixtures: tiny clips generated with ffmpeg's lavfi sources (nothing large committed)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from enhancer.io import ffmpeg as ff

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def ffmpeg_exe() -> str:
    return ff.configure().ffmpeg


def make_clip(path: Path, *, size: str = "96x64", rate: str = "25", seconds: float = 1.0, vcodec: str = "libx264",
              pix_fmt: str = "yuv420p", audio: bool = True, vf: str | None = None, src: str = "testsrc2",
              extra_in: list[str] | None = None, extra_out: list[str] | None = None) -> Path:
    """Generate a small real encoded clip with ffmpeg (moving test pattern, sine audio)."""
    exe = ff.tools().ffmpeg
    argv = [exe, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
            f"{src}{':' if '=' in src else '='}size={size}:rate={rate}:duration={seconds}"]
    if audio:
        argv += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
    argv += list(extra_in or [])
    if vf:
        argv += ["-vf", vf]
    argv += ["-c:v", vcodec, "-pix_fmt", pix_fmt]
    if vcodec == "libx264":
        argv += ["-preset", "ultrafast"]
    if audio:
        argv += ["-c:a", "aac" if path.suffix in (".mp4", ".mov", ".mkv") else "libopus", "-shortest"]
    argv += list(extra_out or []) + [str(path)]
    subprocess.run(argv, check=True)
    return path


def run_cli(*args: str, env: dict | None = None, cwd: str | None = None, timeout: float = 240):
    """Run the real console entry point in a subprocess, as a user would."""
    import sys

    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "enhancer", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=timeout)


def packet_times(path: Path, stream: str = "v:0") -> list[float]:
    """Presentation times of a stream's packets, read with ffmpeg's framecrc muxer (sorted)."""
    exe = ff.tools().ffmpeg
    out = subprocess.run([exe, "-hide_banner", "-loglevel", "error", "-i", str(path), "-map", f"0:{stream}",
                          "-c", "copy", "-f", "framecrc", "-"], capture_output=True, text=True, check=True).stdout
    tb = None
    times = []
    for line in out.splitlines():
        if line.startswith("#tb"):
            num, den = line.split(":")[1].strip().split("/")
            tb = int(num) / int(den)
        elif line and not line.startswith("#"):
            parts = [p.strip() for p in line.split(",")]
            times.append(int(parts[2]) * tb)
    return sorted(times)


def stream_md5(path: Path, stream: str) -> str:
    exe = ff.tools().ffmpeg
    out = subprocess.run([exe, "-hide_banner", "-loglevel", "error", "-i", str(path), "-map", f"0:{stream}",
                          "-c", "copy", "-f", "md5", "-"], capture_output=True, text=True, check=True).stdout
    return out.strip()


def decode_frames(path: Path, pix_fmt: str = "rgb24"):
    """All frames of a file as a numpy array (N, H, W, 3), for content checks."""
    import numpy as np

    exe = ff.tools().ffmpeg
    info = subprocess.run([exe, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    import re

    m = re.search(r"Video: .*?, (\d+)x(\d+)", info)
    w, h = int(m.group(1)), int(m.group(2))
    rot = re.search(r"rotation of (-?\d+)", info, re.I)
    if rot and int(float(rot.group(1))) % 180:
        w, h = h, w
    raw = subprocess.run([exe, "-hide_banner", "-loglevel", "error", "-i", str(path), "-map", "0:v:0",
                          "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", pix_fmt, "-"],
                         capture_output=True, check=True).stdout
    bpp = 6 if "48" in pix_fmt else 3
    n = len(raw) // (w * h * bpp)
    arr = np.frombuffer(raw, dtype=np.uint16 if bpp == 6 else np.uint8)
    return arr[: n * w * h * 3].reshape(n, h, w, 3)
