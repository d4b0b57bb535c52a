"""`enhancer evaluate` against an independent computation, on pairs it did not make itself.

The reference and the candidate come in different containers (MP4, MKV, MOV) with different time
bases (1/12800, 1/1000, 1/90000), YUV or RGB references, as people have them. The independent
side decodes each file on its own with plain ffmpeg (no filter graph pairing frames) through the
conversion the README names, computes PSNR with numpy, and runs libvmaf on frame-aligned copies
(Y4M files, frame k at time k on both sides) with a plain graph.
"""
from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import MAKER, make_clip
from enhancer.quality.evaluate import evaluate

# the README's conversion: the source's matrix and range (here untagged SD: BT.601, limited),
# swscale bicubic with accurate rounding and full chroma interpolation
TO_RGB = "scale=in_color_matrix=bt601:in_range=tv:flags=bicubic+accurate_rnd+full_chroma_int,format=rgb24"
W, H, N = 320, 240, 20


def _rgb(path: Path, rgb_source: bool) -> np.ndarray:
    vf = "format=rgb24" if rgb_source else TO_RGB
    raw = subprocess.run([MAKER, "-v", "error", "-i", str(path), "-map", "0:v:0", "-vf", vf, "-fps_mode", "passthrough",
                          "-f", "rawvideo", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, H, W, 3)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a - b) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255 ** 2 / mse)


def _independent(ref: Path, cand: Path, ref_rgb: bool, tmp: Path) -> dict[str, float]:
    r, c = _rgb(ref, ref_rgb).astype(np.float64), _rgb(cand, False).astype(np.float64)
    assert len(r) == len(c) == N

    def y(x):  # BT.601 luma of RGB in [0, 255], as the README defines PSNR-Y
        return 16 + (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255

    out = {"psnr_rgb": float(np.mean([_psnr(a, b) for a, b in zip(r, c)])),
           "psnr_y": float(np.mean([_psnr(y(a), y(b)) for a, b in zip(r, c)]))}
    aligned = []
    for name, src in (("c", cand), ("r", ref)):  # frame-aligned copies: frame k at time k on both
        y4m = tmp / f"{name}.y4m"
        subprocess.run([MAKER, "-v", "error", "-y", "-i", str(src), "-map", "0:v:0", "-fps_mode", "passthrough",
                        "-pix_fmt", "yuv444p", "-f", "yuv4mpegpipe", "-strict", "-1", str(y4m)], check=True)
        aligned.append(y4m)
    log = tmp / "vmaf.json"
    subprocess.run([MAKER, "-v", "error", "-i", str(aligned[0]), "-i", str(aligned[1]), "-lavfi",
                    f"libvmaf=log_fmt=json:log_path={log}", "-f", "null", "-"], check=True)
    out["vmaf"] = json.loads(log.read_text())["pooled_metrics"]["vmaf"]["mean"]
    return out


def _encode(src: Path, dst: Path, *args: str) -> Path:
    subprocess.run([MAKER, "-v", "error", "-y", "-i", str(src), "-map", "0:v:0", "-c:v", "libx264", "-preset",
                    "ultrafast", *args, str(dst)], check=True)
    return dst


# (reference container and pixels, candidate container): the time bases differ in every pair
PAIRS = {
    "mkv-yuv-ref vs mp4": ("mkv", "yuv420p", ".mp4", []),  # the pair: 1/1000 against 1/12800
    "mkv-rgb-ref vs mov": ("mkv", "gbrp", ".mov", ["-video_track_timescale", "90000"]),
    "mov-yuv-ref vs mkv": ("mov", "yuv420p", ".mkv", []),
}


@pytest.mark.parametrize("pair", list(PAIRS))
def test_metrics_agree_with_an_independent_computation(tmp_path, pair):
    ref_ext, pix, cand_ext, cand_args = PAIRS[pair]
    if ref_ext == "mkv":
        ref = make_clip(tmp_path / "ref.mkv", size=f"{W}x{H}", seconds=N / 25, vcodec="ffv1", pix_fmt=pix, audio=False)
    else:  # lossless H.264 in MOV on a 1/90000 clock
        ref = make_clip(tmp_path / "ref.mov", size=f"{W}x{H}", seconds=N / 25, pix_fmt=pix, audio=False,
                        extra_out=["-qp", "0", "-video_track_timescale", "90000"])
    cand = _encode(ref, tmp_path / f"cand{cand_ext}", "-crf", "35", "-pix_fmt", "yuv420p", *cand_args)
    ours = evaluate(str(ref), str(cand), metrics=("psnr_y", "psnr_rgb", "vmaf"))
    truth = _independent(ref, cand, pix == "gbrp", tmp_path)
    assert ours.frames == N
    assert abs(ours.mean("psnr_rgb") - truth["psnr_rgb"]) < 0.05, (ours.mean("psnr_rgb"), truth)
    assert abs(ours.mean("psnr_y") - truth["psnr_y"]) < 0.05, (ours.mean("psnr_y"), truth)
    assert abs(ours.mean("vmaf") - truth["vmaf"]) < 0.5, (ours.mean("vmaf"), truth)
    assert truth["vmaf"] > 60  # a CRF 35 encode of this pattern; the wrong pairing scored about 20
