"""Does data keep up with training? Measured figures, one run, this machine.

Prints clips/s for
  * the full degradation pipeline on one 9-frame 160x160 clip (cheap stages + the real codec
    stage through ffmpeg), per preset: what `enhancer prepare` does per degraded version;
  * on-the-fly batches from a prepared set (crop, flips, time reversal), as training reads them;
beside the training step time of the `small` generator on the same batch shape, so the ratio
says whether data could starve the model (it cannot if batches/s >> steps/s).

    python benchmarks/data_speed.py [--set runs/data/web-x2.npz]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch

from enhancer.data.degrade import PRESETS, degrade_clip, sample


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", default=None, help="a prepared .npz (default: a small one made here)")
    ap.add_argument("--clips", type=int, default=24)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:160, 0:160]
    clip = np.stack([np.stack([(xs * 3 + t * 5) % 256, (ys * 2 + t) % 256, ((xs ^ ys) * 4) % 256], -1)
                     for t in range(9)]).astype(np.uint8)
    print(f"cpu cores: {os.cpu_count()}, torch threads: {torch.get_num_threads()}")
    print("degradation pipeline, one 9-frame 160x160 clip -> 80x80, all stages incl. codec:")
    for preset in PRESETS:
        t0 = time.perf_counter()
        for k in range(args.clips):
            degrade_clip(clip, sample(preset, 2, seed=k))
        dt = time.perf_counter() - t0
        print(f"    {preset:<8} {args.clips / dt:7.1f} clips/s")

    from enhancer.data.dataset import ClipDataset, PrepareConfig, prepare

    path = args.set
    tmp = None
    if path is None:
        tmp = tempfile.TemporaryDirectory()
        import cv2

        img = (rng.random((600, 800, 3)) * 255).astype(np.uint8)
        img = cv2.GaussianBlur(img, (0, 0), 3)
        cv2.imwrite(os.path.join(tmp.name, "p.png"), img)
        path = os.path.join(tmp.name, "set.npz")
        prepare(PrepareConfig(sources=[tmp.name], out=path, sequences=16, frames=9), progress=False)
    ds = ClipDataset(path)
    batch, frames_in, frames_out, crop = 12, 7, 3, 56
    t0 = time.perf_counter()
    n = 50
    for _ in range(n):
        ds.batch(rng, batch, frames_in, frames_out, crop)
    batches_per_s = n / (time.perf_counter() - t0)

    from enhancer.models.generator import CONFIGS, Generator

    g = Generator(CONFIGS["small"])
    opt = torch.optim.Adam(g.parameters(), 1e-4)
    lq, hr = ds.batch(rng, batch, frames_in, frames_out, crop)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = g(lq)
        loss = (out.float() - hr).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    t0 = time.perf_counter()
    for _ in range(5):
        step()
    steps_per_s = 5 / (time.perf_counter() - t0)
    print(f"training batches (B={batch}, {frames_in} frames in, {crop}px crops): {batches_per_s:7.1f} batches/s")
    print(f"small generator training step (bf16 autocast):                 {steps_per_s:7.2f} steps/s")
    print(f"data / model ratio: {batches_per_s / steps_per_s:.0f}x (data starves training below 1x)")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
