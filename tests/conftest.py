"""Shared fixtures: tiny clips generated with ffmpeg's lavfi sources (nothing large committed),
and the ffmpeg builds the suite runs against.

The suite runs with the bundled ffmpeg (imageio-ffmpeg's), whatever is on PATH: it is pinned
through ``ENHANCER_FFMPEG`` here, so subprocess runs of the CLI use it too
(``ENHANCER_TEST_FFMPEG=/path/to/ffmpeg`` runs the whole suite with another). Older builds are
named explicitly by the tests that run against them (:func:`ffmpeg_build`, ``test_ffmpeg_builds.py``).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# what lies beside the repository, not in it (large weights, data sets): every test that reads it
# skips, with the reason, where it is absent (ENHANCER_TEST_SHARED names another place)
SHARED = Path(os.environ.get("ENHANCER_TEST_SHARED") or ROOT.parent / "shared")


def needs_shared(*parts: str, alternative: str | None = None):
    """A skip marker for a test that reads ``SHARED/parts...``: it runs where that file is there
    (or the environment variable ``alternative`` names a file that is), and skips, saying which
    file it lacks, elsewhere."""
    path = SHARED.joinpath(*parts)
    other = os.environ.get(alternative) if alternative else None
    there = path.is_file() or bool(other and Path(other).is_file())
    why = f"{path} is not here" + (f" and {alternative} names no file" if alternative else "")
    return pytest.mark.skipif(not there, reason=why)


def _bundled() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


os.environ["ENHANCER_FFMPEG"] = os.environ.get("ENHANCER_TEST_FFMPEG") or _bundled()
os.environ.pop("ENHANCER_FFPROBE", None)

from enhancer.media import ffmpeg as ff  # noqa: E402  (after the pin above)

# the ffmpeg that makes and checks test media, whichever build a test runs enhancer with
MAKER = ff.configure().ffmpeg


@pytest.fixture(scope="session")
def ffmpeg_exe() -> str:
    return ff.tools().ffmpeg


# ---- the ffmpeg builds the suite runs against -------------------------------------------------
CACHE = Path(os.environ.get("ENHANCER_TEST_CACHE") or Path.home() / ".cache" / "enhancer-tests")
STATIC_7 = ("imageio-ffmpeg", "0.6.0", "imageio_ffmpeg/binaries/ffmpeg-linux-x86_64-v7.0.2")


@dataclass(frozen=True)
class Build:
    name: str
    ffmpeg: str
    ffprobe: str | None  # set where the build has one (it is then used: JSON probing)


def _static_7() -> Build:
    """imageio-ffmpeg 0.6.0's static ffmpeg 7.0.2, fetched once with pip into the cache."""
    package, version, member = STATIC_7
    exe = CACHE / Path(member).name
    if not exe.is_file():
        if sys.platform != "linux":
            pytest.skip("the static ffmpeg 7.0.2 build is for Linux x86-64")
        # each pytest-xdist worker downloads into its own folder; the binary lands by an atomic rename
        into = CACHE / f"download.{os.getpid()}"
        into.mkdir(parents=True, exist_ok=True)
        got = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
                              "--platform", "manylinux2014_x86_64", "-d", str(into), f"{package}=={version}"],
                             capture_output=True, text=True, timeout=600)
        wheels = sorted(into.glob(f"imageio_ffmpeg-{version}-*.whl"))
        if got.returncode != 0 or not wheels:
            pytest.skip(f"cannot fetch {package}=={version} with pip: {(got.stderr.strip().splitlines() or ['?'])[-1]}")
        with zipfile.ZipFile(wheels[0]) as z:
            tmp = exe.with_name(exe.name + f".{os.getpid()}.tmp")
            tmp.write_bytes(z.read(member))
            tmp.chmod(0o755)
            os.replace(tmp, exe)
        shutil.rmtree(into, ignore_errors=True)
    return Build("7.0.2 (imageio-ffmpeg 0.6.0)", str(exe), None)


def _debian() -> Build:
    """Debian's ffmpeg and ffprobe (5.1 on Debian 12), which .ci/run installs where missing."""
    exe, probe = Path("/usr/bin/ffmpeg"), Path("/usr/bin/ffprobe")
    if not exe.is_file():
        pytest.skip("no /usr/bin/ffmpeg: apt-get install ffmpeg (.ci/run does where it can)")
    return Build(f"{ff.parse_version(subprocess.run([str(exe), '-version'], capture_output=True, text=True).stdout)[1]}"
                 " (Debian)", str(exe), str(probe) if probe.is_file() else None)


BUILDS = {"bundled": lambda: Build("bundled", os.environ["ENHANCER_FFMPEG"], None), "debian": _debian,
          "static-7.0.2": _static_7}


@pytest.fixture(params=list(BUILDS), scope="session")
def ffmpeg_build(request) -> Build:
    """Each build in turn (skipped with the reason where one cannot be had)."""
    return BUILDS[request.param]()


@pytest.fixture
def use_build(ffmpeg_build, monkeypatch):
    """Configure this process for one build (its ffprobe too, where it has one) for one test."""
    monkeypatch.setenv("ENHANCER_FFMPEG", ffmpeg_build.ffmpeg)
    if ffmpeg_build.ffprobe:
        monkeypatch.setenv("ENHANCER_FFPROBE", ffmpeg_build.ffprobe)
    ff.configure()
    yield ffmpeg_build
    monkeypatch.undo()
    ff.configure()


def make_clip(path: Path, *, size: str = "96x64", rate: str = "25", seconds: float = 1.0, vcodec: str = "libx264",
              pix_fmt: str = "yuv420p", audio: bool = True, vf: str | None = None, src: str = "testsrc2",
              extra_in: list[str] | None = None, extra_out: list[str] | None = None) -> Path:
    """Generate a small real encoded clip with ffmpeg (moving test pattern, sine audio)."""
    exe = MAKER
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


def packet_times(path: Path, stream: str = "v:0", copyts: bool = False) -> list[float]:
    """Presentation times of a stream's packets, read with ffmpeg's framecrc muxer (sorted); with
    ``copyts`` on the file's own clock (else ffmpeg counts them from the file's start)."""
    exe = MAKER
    out = subprocess.run([exe, "-hide_banner", "-loglevel", "error", *(["-copyts"] if copyts else []), "-i", str(path),
                          "-map", f"0:{stream}", "-c", "copy", "-f", "framecrc", "-"], capture_output=True, text=True,
                         check=True).stdout
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
    exe = MAKER
    out = subprocess.run([exe, "-hide_banner", "-loglevel", "error", "-i", str(path), "-map", f"0:{stream}",
                          "-c", "copy", "-f", "md5", "-"], capture_output=True, text=True, check=True).stdout
    return out.strip()


def decode_frames(path: Path, pix_fmt: str = "rgb24"):
    """All frames of a file as a numpy array (N, H, W, 3), for content checks."""
    import numpy as np

    exe = MAKER
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


@pytest.fixture(autouse=True)
def _options_spelt_as_python():
    """A command line run in this process (click's CliRunner) names options as flags in the
    messages that follow; each test starts and ends with the Python API's spelling."""
    from enhancer.errors import spell_options

    spell_options({})
    yield
    spell_options({})
