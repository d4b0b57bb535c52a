"""Where the time of ``enhance`` goes, stage by stage: docs/speed.md's breakdown.

For each input size a short clip is generated (the same moving pattern with noise as
speed_table.py, H.264) and each stage is timed on its own, in CPU seconds per output frame
(``time.thread_time`` of the thread running each Python stage, ``getrusage`` of the children for
the ffmpeg ones), so the figures add up to the work the machine does, whatever else runs beside:

* decode: ffmpeg decoding the source to nothing;
* to RGB: ffmpeg decoding and converting to RGB as the reader does, less the decode;
* flow, warp: the alignment of the aligned models (DIS optical flow on each neighbour pair, then
  bicubic warps), timed inside the model's own pass;
* network: the model's forward passes (its precision as ``auto`` picks it, or ``--precision``);
* from RGB: ffmpeg converting the upscaled RGB frames back to the encoder's 4:2:0, as the
  writer does (measured on frames of the output's size);
* encode: x264 CRF 18 ``medium`` (enhance's default) on the upscaled frames.

    python benchmarks/stage_times.py [--sizes 480p,720p,1080p] [--frames 12] [--model general-x2]
        [--precision auto] [--threads 1] [--flow-preset fast|medium]

Wall time on N cores is at least the sum divided by N: the stages overlap (decode, model and
encode run in their own processes and threads), but they share the cores.
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed_table import SIZES, make_clip  # noqa: E402

from enhancer.media import ffmpeg as ff  # noqa: E402


def _child_seconds(argv: list[str], stdin: bytes | None = None) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, input=stdin, check=True, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _frames(clip: Path, n: int, w: int, h: int) -> np.ndarray:
    raw = subprocess.run([ff.tools().ffmpeg, "-v", "error", "-i", str(clip), "-frames:v", str(n), "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "pipe:1"], check=True, stdout=subprocess.PIPE).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="480p,720p,1080p")
    ap.add_argument("--frames", type=int, default=12, help="input frames (the output has 4 fewer: the margins)")
    ap.add_argument("--model", default="general-x2")
    ap.add_argument("--precision", default="auto", help="one, or several to compare in one run (bf16,int8)")
    ap.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads")
    ap.add_argument("--flow-preset", default=None, help="DIS preset (default: the one enhance uses)")
    args = ap.parse_args()
    ff.configure()
    import cv2
    import torch

    from enhancer.restore import weights
    from enhancer.restore.neural import ModelRestorer
    from enhancer.models import align

    if args.flow_preset:
        align.FLOW_PRESET = args.flow_preset
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    g, card = weights.load(weights.resolve(args.model))
    fmpg = ff.tools().ffmpeg
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, precision in [(n, p) for n in args.sizes.split(",") for p in args.precision.split(",")]:
            size = SIZES.get(name, name)
            w, h = (int(v) for v in size.split("x"))
            clip = Path(tmp) / f"{name}.mp4"
            make_clip(clip, size, args.frames)
            frames = _frames(clip, args.frames, w, h)
            restorer = ModelRestorer(g, device="cpu", precision=precision, tile=0, card=card.__dict__)
            spent: dict[str, float] = {"flow": 0.0, "warp": 0.0, "network": 0.0}
            real = {"flow": align.flow, "warp": align.warp}

            def timed(key, fn):
                def f(*a, **k):
                    t0 = time.thread_time()  # this thread only: the alignment runs in a thread of its own
                    out = fn(*a, **k)
                    spent[key] += time.thread_time() - t0
                    return out
                return f

            align.flow, align.warp = timed("flow", real["flow"]), timed("warp", real["warp"])
            run = restorer._run
            restorer._run = timed("network", run)
            out = restorer.restore(frames)
            align.flow, align.warp = real["flow"], real["warp"]
            n = len(out)
            big = out.tobytes()
            oh, ow = out.shape[1:3]
            raw_in = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{ow}x{oh}", "-r", "25", "-i", "pipe:0"]
            decode = _child_seconds([fmpg, "-v", "error", "-i", str(clip), "-f", "null", "-"])
            to_rgb = _child_seconds([fmpg, "-v", "error", "-i", str(clip), "-vf",
                                     "scale=flags=bicubic+accurate_rnd+full_chroma_int,format=rgb24", "-f", "null", "-"])
            from_rgb = _child_seconds([fmpg, "-v", "error", *raw_in, "-vf",
                                       "scale=flags=bicubic+accurate_rnd+full_chroma_int,format=yuv420p",
                                       "-f", "null", "-"], big)
            passthrough = _child_seconds([fmpg, "-v", "error", *raw_in, "-f", "null", "-"], big)
            encode = _child_seconds([fmpg, "-v", "error", *raw_in, "-vf",
                                     "scale=flags=bicubic+accurate_rnd+full_chroma_int,format=yuv420p", "-c:v",
                                     "libx264", "-crf", "18", "-preset", "medium", "-f", "null", "-"], big)
            per = {"decode": decode / args.frames, "to RGB": max(0.0, to_rgb - decode) / args.frames,
                   "flow": spent["flow"] / n, "warp": spent["warp"] / n,
                   "network": max(0.0, spent["network"]) / n,
                   "from RGB": max(0.0, from_rgb - passthrough) / n, "encode": max(0.0, encode - from_rgb) / n}
            rows.append((f"{name} ({size})", per, restorer.describe()["precision"]))
            print(f"  {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in per.items()), file=sys.stderr, flush=True)
    keys = list(rows[0][1])
    print(f"\nCPU seconds per output frame, model {card.name} x{g.scale}, {args.threads} thread(s)")
    print("| input | precision | " + " | ".join(keys) + " | total |")
    print("|---|---|" + "---|" * len(keys) + "---|")
    for label, per, prec in rows:
        print(f"| {label} | {prec} | " + " | ".join(f"{per[k]:.3f}" for k in keys) + f" | {sum(per.values()):.2f} |")


if __name__ == "__main__":
    main()
