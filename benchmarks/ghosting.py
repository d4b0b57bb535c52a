"""Does a model make moving people fade? PSNR-Y where things move, beside PSNR-Y everywhere.

A fusion that trusts neighbours where the flow cannot follow (a person walking across a still
background) blends the background into the person: the person turns half transparent, while
whole-frame PSNR barely notices (the moving pixels are few). This scores each method only on the
pixels that move: where the clean frame differs from the clean frames two before and two after
it (luma, more than ``--threshold`` levels, dilated by 5 pixels), over real footage held out of
training (``people-walking`` in benchmarks/heldout.py). The clips are degraded as in
flow_quality.py (web, x2, seed 1); lanczos runs in the same run.

    python benchmarks/ghosting.py runs/heldout/people-walking.mkv [more clips] \\
        [--models general-x2,runs/general-x2-st3d/best.safetensors] [--frames 24]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flow_quality import degraded_pair, padded  # noqa: E402

from enhancer.restore import weights  # noqa: E402
from enhancer.restore.neural import ModelRestorer  # noqa: E402
from enhancer.media import ffmpeg as ff  # noqa: E402


def luma(frames: np.ndarray) -> np.ndarray:
    return frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def psnr_masked(clean: np.ndarray, out: np.ndarray, mask: np.ndarray) -> float:
    err = (luma(clean) - luma(out)) ** 2
    mse = float(err[mask].mean()) if mask.any() else 0.0
    return 10 * np.log10(255 ** 2 / max(mse, 255 ** 2 / 1e6))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clips", nargs="+")
    ap.add_argument("--models", default="general-x2")
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--threshold", type=float, default=12.0)
    ap.add_argument("--precision", default="fp32")
    args = ap.parse_args()
    ff.configure()
    models = {}
    for m in args.models.split(","):
        g, card = weights.load(weights.resolve(m) if not m.endswith(".safetensors") else m)
        models[card.name if not m.endswith(".safetensors") else Path(m).stem] = g
    scores: dict[str, list[tuple[float, float]]] = {"lanczos": []}
    moving_share = []
    with tempfile.TemporaryDirectory() as tmp:
        for clip in args.clips:
            clean, low = degraded_pair(clip, args.frames, tmp)
            n = len(clean)
            h, w = low.shape[1:3]
            y = luma(clean)
            kernel = np.ones((11, 11), np.uint8)
            masks = []
            for t in range(n):
                a, b = y[max(0, t - 2)], y[min(n - 1, t + 2)]
                moving = (np.abs(y[t] - a) > args.threshold) | (np.abs(y[t] - b) > args.threshold)
                masks.append(cv2.dilate(moving.astype(np.uint8), kernel) > 0)
            masks = np.stack(masks)
            masks[:, :4], masks[:, -4:], masks[:, :, :4], masks[:, :, -4:] = False, False, False, False
            moving_share.append(float(masks.mean()))
            everywhere = np.zeros_like(masks)
            everywhere[:, 4:-4, 4:-4] = True
            outs = {"lanczos": np.stack([cv2.resize(f, (2 * w, 2 * h), interpolation=cv2.INTER_LANCZOS4)
                                         for f in low])}
            for name, g in models.items():
                outs[name] = ModelRestorer(g, device="cpu", precision=args.precision, tile=0).restore(
                    padded(low, g.temporal_radius))
            for name, out in outs.items():
                scores.setdefault(name, []).append((psnr_masked(clean, out, masks), psnr_masked(clean, out, everywhere)))
            print(f"{Path(clip).stem} ({100 * moving_share[-1]:.1f} % of pixels move): " + ", ".join(
                f"{k} {v[-1][0]:.2f} / {v[-1][1]:.2f}" for k, v in scores.items()), flush=True)
    print(f"\n{len(args.clips)} clip(s), {args.frames} frames, web damage x2; PSNR-Y in dB")
    print("| method | where things move | whole frame |\n|---|---|---|")
    for name, v in scores.items():
        print(f"| {name} | {np.mean([a for a, _ in v]):.2f} | {np.mean([b for _, b in v]):.2f} |")


if __name__ == "__main__":
    main()
