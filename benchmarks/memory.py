"""Peak memory of a neural run at 720p and 2160p: the defaults against explicit settings, measured
in the same run.

For each frame size a short clip is generated and enhanced with the default model (general-x2),
once with the defaults (tile and chunk fitted to the memory available) and once with each listed
baseline setting, and the peak resident memory of the enhancer process and of its whole process
tree (the ffmpeg decoder and encoder included) is printed, with the tile and chunk the defaults
chose. ``--available`` pretends the machine has that much memory available (the
``ENHANCER_MEMORY_AVAILABLE`` hook), e.g. ``--available 8G`` for an 8 GB machine.

    python benchmarks/memory.py [--frames 8] [--sizes 720p,2160p] [--available 8G] [--encoder 60]
        [--baseline "--chunk 1 --tile 512"] [--baseline "--chunk 8 --tile 0"]

Each clip holds at least one whole chunk of the defaults, so the model's pass is as large as
planned; a short clip does not fill x264's lookahead, so ``--encoder`` measures the encoder alone
on a longer synthetic clip at the output size (its memory is what the plan reserves for it).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from io_throughput import run_measured  # noqa: E402  (peak RSS of a command and of its process tree)

from enhancer.restore.device import free_memory  # noqa: E402
from enhancer.media import ffmpeg as ff  # noqa: E402

SIZES = {"720p": "1280x720", "1080p": "1920x1080", "2160p": "3840x2160"}


def make_clip(path: Path, size: str, frames: int) -> None:
    ff.run([ff.tools().ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
            f"testsrc2=size={size}:rate=25", "-frames:v", str(frames), "-vf", "noise=alls=6:allf=t", "-c:v",
            "libx264", "-crf", "20", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(path)])


def encoder_peak(size: str, frames: int) -> int:
    """Peak RSS in MiB of ffmpeg's libx264 alone encoding ``frames`` frames of this size, as the
    enhancer's encoder does (the x2 output of a model); long enough for its lookahead to fill."""
    code = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    argv = [ff.tools().ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
            f"testsrc2=size={size}:rate=25", "-frames:v", str(frames), "-c:v", "libx264", "-crf", "18", "-preset",
            "medium", "-pix_fmt", "yuv420p", "-f", "null", "-"]
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True).stdout
    return int(out.split()[-1]) // 1024


def chosen(size: str, available: str | None) -> tuple[int, int | None]:
    """The chunk and tile the defaults pick for frames of this size (same code as a run)."""
    import torch

    from enhancer.pipeline.budget import ENCODER_BYTES_PER_PIXEL
    from enhancer.restore.loading import load_restorer

    if available:
        os.environ["ENHANCER_MEMORY_AVAILABLE"] = available
    w, h = (int(v) for v in size.split("x"))
    r = load_restorer("general-x2", device="cpu")
    chunk = r.chunk_for(h, w, reserve=w * h * r.scale ** 2 * ENCODER_BYTES_PER_PIXEL["h264"])
    tile = r.auto_tile(h, w, chunk + 2 * r.margin)
    del r, torch
    return chunk, tile


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=8, help="frames per clip")
    ap.add_argument("--sizes", default="720p,2160p")
    ap.add_argument("--available", default=None, help="memory to assume available, e.g. 8G")
    ap.add_argument("--baseline", action="append", default=None, help="options to compare (repeatable)")
    ap.add_argument("--encoder", type=int, default=0, metavar="FRAMES",
                    help="also measure x264 alone at each output size over this many frames (e.g. 60)")
    ap.add_argument("--json", dest="json_path", default=None, help="also write the rows here")
    args = ap.parse_args()
    baselines = args.baseline or ["--chunk 1 --tile 512"]
    ff.configure()
    env_before = os.environ.get("ENHANCER_MEMORY_AVAILABLE")
    import torch

    if args.available:
        os.environ["ENHANCER_MEMORY_AVAILABLE"] = args.available
    avail = free_memory(torch.device("cpu"))
    if args.available:
        os.environ.pop("ENHANCER_MEMORY_AVAILABLE")
        if env_before:
            os.environ["ENHANCER_MEMORY_AVAILABLE"] = env_before
    print(f"memory available: {avail / 2 ** 30:.1f} GiB{' (assumed)' if args.available else ''}; "
          f"cpu cores: {os.cpu_count()}; frames per clip: {args.frames}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sizes.split(","):
            size = SIZES.get(name, name)
            clip = Path(tmp) / f"{name}.mp4"
            chunk, tile = chosen(size, args.available)
            frames = max(args.frames, chunk)  # at least one whole chunk, so a pass is as large as planned
            make_clip(clip, size, frames)
            for label, extra in [("defaults", [])] + [(b, b.split()) for b in baselines]:
                out = Path(tmp) / f"{name}-{len(rows)}.mp4"
                argv = ["enhance", str(clip), "-o", str(out), "--model", "general-x2", "--device", "cpu", "-q",
                        *extra]
                if args.available:
                    os.environ["ENHANCER_MEMORY_AVAILABLE"] = args.available
                t0 = time.perf_counter()
                secs, own, tree = run_measured(argv)
                os.environ.pop("ENHANCER_MEMORY_AVAILABLE", None)
                if env_before:
                    os.environ["ENHANCER_MEMORY_AVAILABLE"] = env_before
                note = f" (chunk {chunk}, tile {tile or 'none'})" if label == "defaults" else ""
                rows.append({"size": name, "setting": label + note, "process_mib": own, "tree_mib": tree,
                             "seconds": round(secs, 1), "frames": frames})
                print(f"{name:>6} {label + note:<36} enhancer {own:6d} MiB   with ffmpeg {tree:6d} MiB   "
                      f"{secs:6.1f} s ({time.perf_counter() - t0:.0f} s wall)", flush=True)
    if args.encoder:
        for name in args.sizes.split(","):
            w, h = (int(v) for v in SIZES.get(name, name).split("x"))
            peak = encoder_peak(f"{2 * w}x{2 * h}", args.encoder)
            rows.append({"size": name, "setting": f"x264 alone, {2 * w}x{2 * h}", "tree_mib": peak})
            print(f"{name:>6} {'the encoder alone (x264 crf 18 medium, ' + str(2 * w) + 'x' + str(2 * h) + ')':<36} "
                  f"{'':>15} ffmpeg {peak:6d} MiB", flush=True)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
