"""A scale-1 passthrough keeps frames in the source's own YUV (enhancer.media.planar): the pixels
the decoder gave are the pixels the encoder gets, with no RGB round trip; where the source's
format or size cannot travel that way, frames go through RGB as before."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

from conftest import MAKER, make_clip, packet_times, run_cli
from enhancer.media.planar import Planar, planar_of
from enhancer.media.probe import probe
from enhancer.media.reader import FrameReader
from enhancer.pipeline.engine import EnhanceOptions, planar_frames
from enhancer.restore.restorer import ClassicalUpscaler


def _frame_hashes(path, pix_fmt: str | None = None) -> list[str]:
    """The MD5 of each decoded frame (in ``pix_fmt`` where given)."""
    argv = [MAKER, "-hide_banner", "-loglevel", "error", "-i", str(path), "-map", "0:v:0", "-fps_mode", "passthrough"]
    argv += ["-pix_fmt", pix_fmt] if pix_fmt else []
    out = subprocess.run(argv + ["-f", "framemd5", "-"], capture_output=True, text=True, check=True).stdout
    return [line.rsplit(",", 1)[1].strip() for line in out.splitlines() if line and not line.startswith("#")]


def _pix_fmt(path) -> str:
    return probe(str(path)).pix_fmt


def test_layouts_and_what_may_travel_planar():
    assert Planar("yuv420p", 6, 4).frame_bytes == 24 + 2 * 3 * 2
    assert Planar("yuv422p", 6, 4).frame_bytes == 24 + 2 * 3 * 4
    assert Planar("yuv444p", 6, 4).frame_bytes == 3 * 24
    assert planar_of("yuv420p", 8, 1280, 720) == Planar("yuv420p", 1280, 720)
    # deeper, other or odd-sized formats go through RGB
    assert planar_of("yuv420p10le", 10, 1280, 720) is None and planar_of("nv12", 8, 64, 64) is None
    assert planar_of("yuv420p", 8, 95, 64) is None and planar_of("yuvj420p", 8, 64, 64) is None
    only_scale_1 = EnhanceOptions()
    assert planar_frames(ClassicalUpscaler("lanczos", 1), only_scale_1)
    assert not planar_frames(ClassicalUpscaler("lanczos", 2), only_scale_1)
    assert not planar_frames(ClassicalUpscaler("lanczos", 1), EnhanceOptions(preview=1.0))
    assert not planar_frames(ClassicalUpscaler("lanczos", 1), EnhanceOptions(splice=True, start=1.0))


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv422p", "yuv444p"])
def test_a_lossless_passthrough_keeps_the_sources_pixels_exactly(tmp_path, pix_fmt):
    """Every frame of the output equals the source's, bit for bit, timestamps and audio kept."""
    src = make_clip(tmp_path / "in.mkv", size="96x64", vcodec="ffv1", pix_fmt=pix_fmt, seconds=0.6)
    out = tmp_path / "out.mkv"
    r = run_cli("enhance", str(src), "-o", str(out), "--model", "lanczos", "--scale", "1", "--codec", "ffv1",
                "--pix-fmt", pix_fmt, "-q")
    assert r.returncode == 0, r.stderr
    assert _pix_fmt(out) == pix_fmt
    assert _frame_hashes(out) == _frame_hashes(src) and len(_frame_hashes(src)) == 15
    assert packet_times(out) == pytest.approx(packet_times(src), abs=1e-3)
    assert packet_times(out, "a:0") and probe(str(out)).audio


def test_planar_reader_gives_the_planes_and_the_same_clock(tmp_path):
    src = make_clip(tmp_path / "in.mp4", size="96x64", seconds=0.4)
    info = probe(str(src))
    with FrameReader(info, planar=True) as planar, FrameReader(info) as rgb:
        a, b = list(planar), list(rgb)
    assert planar.planar == Planar("yuv420p", 96, 64)
    assert [f.image.shape for f in a] == [(96 * 64 * 3 // 2,)] * len(b) and b[0].image.shape == (64, 96, 3)
    assert [(f.pts, f.time_base) for f in a] == [(f.pts, f.time_base) for f in b]
    y = a[3].image[:96 * 64].reshape(64, 96).astype(float)
    luma = 16 + (65.481 * b[3].image[..., 0] + 128.553 * b[3].image[..., 1] + 24.966 * b[3].image[..., 2]) / 255
    assert np.abs(y - luma).mean() < 1.5  # the same picture (BT.601 luma of the RGB against Y)


def test_an_rgb_output_from_planar_frames_converts_with_the_sources_matrix(tmp_path):
    """FFV1's default RGB (gbrp) from planar frames: the same RGB the reader makes of the source
    (its matrix and range said to the encoder, not guessed)."""
    src = make_clip(tmp_path / "in.mp4", size="320x240", seconds=0.3, audio=False,
                    extra_out=["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709"])
    out = tmp_path / "out.mkv"
    r = run_cli("enhance", str(src), "-o", str(out), "--model", "lanczos", "--scale", "1", "--codec", "ffv1", "-q")
    assert r.returncode == 0, r.stderr
    assert _pix_fmt(out).startswith(("gbr", "bgr", "rgb"))
    with FrameReader(probe(str(src))) as a, FrameReader(probe(str(out))) as b:
        pairs = list(zip(a, b))
    assert pairs and max(int(np.abs(x.image.astype(int) - y.image.astype(int)).max()) for x, y in pairs) <= 1


@pytest.mark.parametrize("crop,pix_fmt", [("format=yuv444p,crop=95:63:0:0", "yuv444p"), (None, "yuv444p10le")])
def test_what_cannot_travel_planar_goes_through_rgb(tmp_path, crop, pix_fmt):
    """An odd size or a 10-bit source: the RGB path, as before (same frames out, within rounding)."""
    src = make_clip(tmp_path / "in.mkv", size="96x64", vcodec="ffv1", pix_fmt=pix_fmt, seconds=0.3, audio=False,
                    vf=crop)
    info = probe(str(src))
    assert (info.display_width, info.bit_depth) == ((95, 8) if crop else (96, 10))
    assert FrameReader(info, planar=True).planar is None
    out = tmp_path / "out.mkv"
    r = run_cli("enhance", str(src), "-o", str(out), "--model", "lanczos", "--scale", "1", "--codec", "ffv1",
                "--pix-fmt", pix_fmt, "-q")
    assert r.returncode == 0, r.stderr
    with FrameReader(info) as a, FrameReader(probe(str(out))) as b:
        pairs = list(zip(a, b))
    step = 257 if info.bit_depth > 8 else 1  # 16-bit frames from a 10-bit source: compared in 8-bit levels
    assert len(pairs) == 8
    assert max(int(np.abs(x.image.astype(int) - y.image.astype(int)).max()) for x, y in pairs) <= 2 * step
