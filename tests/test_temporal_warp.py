"""``--temporal on`` lowers the warping error (Lai et al. 2018) of a per-frame model that flickers,
end to end through ``enhancer enhance``, on real footage from ``samples/``.

The model is a seeded, untrained Real-ESRGAN Compact x2 (spandrel's class) saved as a ``.pth``:
its output is the nearest-neighbour upscale plus random convolution features of the input, so the
compression noise that differs from frame to frame in the real clip comes out amplified and
changing: flicker, as a per-frame model's invented detail does. The motion the warping error
follows is the input clip's own (lanczos-upscaled), as Lai et al. measure a blind method's output
against the flow of its input."""
from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import MAKER, run_cli
from enhancer.quality.evaluate import evaluate, frames

spandrel = pytest.importorskip("spandrel")
from spandrel.architectures.Compact import Compact  # noqa: E402

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "bikes.mp4"  # real footage, held out of training
FRAMES = 12


@pytest.mark.slow
def test_temporal_on_lowers_the_warping_error_of_a_flickering_per_frame_model(tmp_path):
    torch.manual_seed(0)
    model = Compact(num_in_ch=3, num_out_ch=3, num_feat=16, num_conv=2, upscale=2)
    torch.save({k: v.contiguous() for k, v in model.state_dict().items()}, tmp_path / "flicker-x2.pth")
    clip = tmp_path / "bikes.mkv"  # the sample's first frames, losslessly: the reference
    subprocess.run([MAKER, "-hide_banner", "-loglevel", "error", "-y", "-i", str(SAMPLE), "-map", "0:v:0",
                    "-frames:v", str(FRAMES), "-c:v", "ffv1", str(clip)], check=True)
    scores = {}
    for temporal in ("off", "on"):
        out = tmp_path / f"{temporal}.mkv"
        r = run_cli("enhance", str(clip), "-o", str(out), "-m", str(tmp_path / "flicker-x2.pth"), "--temporal",
                    temporal, "--codec", "ffv1", "--pix-fmt", "gbrp", "--device", "cpu", "--precision", "fp32", "-q")
        assert r.returncode == 0, r.stderr
        scores[temporal] = evaluate(str(clip), str(out), metrics=("warp", "psnr_y"), reference_scale="lanczos")
        assert len(scores[temporal].per_frame["warp"]) == FRAMES - 1
    steady = tmp_path / "lanczos"  # the input upscaled, the same way the reference is: no flicker added
    steady.mkdir()
    for i, f in enumerate(frames(str(clip))):
        up = cv2.resize(f, (640, 272), interpolation=cv2.INTER_LANCZOS4)
        cv2.imwrite(str(steady / f"{i:03d}.png"), up[..., ::-1])
    floor = evaluate(str(clip), str(steady), metrics=("warp",), reference_scale="lanczos").mean("warp")
    off, on = scores["off"].mean("warp"), scores["on"].mean("warp")
    assert off > 2 * floor, (off, floor)  # the model does flicker
    assert on < 0.75 * off, (on, off)  # and the stage takes at least a quarter of it away
    assert np.mean(np.array(scores["on"].per_frame["warp"]) < np.array(scores["off"].per_frame["warp"])) >= 0.8
