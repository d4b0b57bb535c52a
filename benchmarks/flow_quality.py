"""How the optical flow's settings change held-out quality and speed: the inputs to choosing the
cheapest flow that keeps the model's quality (docs/speed.md, "Where the time goes").

Each held-out clip (benchmarks/heldout.py) is degraded once (``enhancer degrade --preset web``,
seed 1, its first ``--frames`` frames); then, in the same run, lanczos and the model under each
flow setting (DIS preset, the longest side the flow is estimated at) restore it, and the table
gives PSNR-Y against the clean frames (as ``enhancer evaluate`` computes it), averaged over the
clips, beside the seconds the alignment took.

    python benchmarks/flow_quality.py runs/heldout/*.mkv [--model general-x2] [--frames 16]
        [--settings medium:1024,fast:1024,medium:512] [--precision fp32]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from enhancer.restore import weights
from enhancer.quality.evaluate import psnr_y
from enhancer.restore.neural import ModelRestorer
from enhancer.media import ffmpeg as ff
from enhancer.models import align


def frames_of(path: Path, n: int) -> np.ndarray:
    cap = cv2.VideoCapture(str(path))
    out = []
    while len(out) < n:
        ok, f = cap.read()
        if not ok:
            break
        out.append(f[..., ::-1])
    return np.stack(out)


def degraded_pair(clip: str, frames: int, folder: str, duration: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The clean clip's first ``frames`` frames and its web-damaged x2 copy's (seed 1), of one
    length."""
    low_path = Path(folder) / (Path(clip).stem + ".mkv")
    segment = ["--duration", str(duration)] if duration else []
    subprocess.run([sys.executable, "-m", "enhancer", "degrade", clip, "-o", str(low_path), "--preset", "web",
                    "--scale", "2", "--seed", "1", *segment, "-q"], check=True)
    clean, low = frames_of(Path(clip), frames), frames_of(low_path, frames)
    n = min(len(clean), len(low))
    return clean[:n], low[:n]


def padded(low: np.ndarray, r: int) -> np.ndarray:
    """The clip with its edge frames repeated ``r`` times, as the reader gives a model."""
    return np.concatenate([low[:1].repeat(r, 0), low, low[-1:].repeat(r, 0)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clips", nargs="+")
    ap.add_argument("--model", default="general-x2")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--settings", default="medium:1024,fast:1024,medium:512,fast:512")
    ap.add_argument("--precision", default="fp32")
    args = ap.parse_args()
    ff.configure()
    g, card = weights.load(weights.resolve(args.model))
    settings = [(p, int(s)) for p, s in (x.split(":") for x in args.settings.split(","))]
    rows: dict[str, list[float]] = {"lanczos": []}
    secs: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for clip in args.clips:
            clean, low = degraded_pair(clip, args.frames, tmp, duration=args.frames / 10 + 1)
            h, w = low.shape[1:3]
            window = padded(low, g.temporal_radius)
            b = 4
            inner = (slice(b, -b), slice(b, -b))
            lz = np.stack([cv2.resize(f, (2 * w, 2 * h), interpolation=cv2.INTER_LANCZOS4) for f in low])
            rows["lanczos"].append(np.mean([psnr_y(c[inner], o[inner]) for c, o in zip(clean, lz)]))
            for preset, side in settings:
                key = f"{preset}:{side}"
                align.FLOW_PRESET, align.FLOW_MAX_SIDE = preset, side
                align._local.__dict__.clear()  # a new DIS object for the new preset
                real = align.align_stacks
                spent = [0.0]

                def timed(*a, **k):
                    t0 = time.perf_counter()
                    out = real(*a, **k)
                    spent[0] += time.perf_counter() - t0
                    return out

                import enhancer.restore.neural as neural
                neural.align_stacks = timed
                out = ModelRestorer(g, device="cpu", precision=args.precision, tile=0).restore(window)
                neural.align_stacks = real
                rows.setdefault(key, []).append(np.mean([psnr_y(c[inner], o[inner]) for c, o in zip(clean, out)]))
                secs[key] = secs.get(key, 0.0) + spent[0]
            print(f"{Path(clip).stem}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in rows.items()), flush=True)
    print(f"\n{len(args.clips)} clips, {args.frames} frames each, model {card.name}, {args.precision}")
    print("| method | PSNR-Y | alignment seconds |\n|---|---|---|")
    for k, v in rows.items():
        print(f"| {k} | {np.mean(v):.3f} | {secs.get(k, 0):.1f} |")


if __name__ == "__main__":
    main()
