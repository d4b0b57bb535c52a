"""The speed and memory a user sees at common input sizes: docs/speed.md's table.

For each input size a short clip is generated (a moving test pattern with noise, H.264) and
enhanced x2 by the real command, ``enhancer enhance CLIP -o OUT.mp4 --json`` (H.264 CRF 18
output, every default), once per method, in the same run:

* ``ffmpeg``: plain ffmpeg, lanczos x2 and the same x264 encode (CRF 18, ``medium``), no enhancer:
  the baseline of issue 28's "done when" (its frames/s is the file's frames over ffmpeg's wall
  time, start included);
* ``lanczos``: the classical baseline through enhancer;
* ``fusion-s``: a model of the default model's architecture and size (``aligned-fusion``,
  ``fusion-s``) with random weights, saved as a model file first (speed does not depend on the
  weights); ``st3d-s`` the same for the aligned spatio-temporal generator;
* any ``.safetensors`` path or installed model's name: that model;
* any of these as ``METHOD@PRECISION`` (``general-x2@int8``): run with ``--precision PRECISION``.

frames/s is the file's frames over the seconds the run's own ``done`` line reports (probe,
decode, model, encode and join; not the start of Python and torch). Peak memory: that of the
enhancer process, the kernel's own count (``getrusage``, so no short peak is missed), and the
largest sum of its ffmpeg processes (decoder and encoder), sampled every 0.1 s (their memory
changes slowly). The whole run needs at most the sum of the two.

    python benchmarks/speed_table.py [--sizes 480p,720p,1080p] [--frames 16 | --frames 24,16,16]
        [--methods lanczos,fusion-s] [--device cpu]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from io_throughput import _children, _tree_rss_kb  # noqa: E402  (process trees, from /proc)

from enhancer.media import ffmpeg as ff  # noqa: E402

SIZES = {"480p": "854x480", "720p": "1280x720", "1080p": "1920x1080"}
_RUN = ("import resource, runpy, sys; sys.argv = ['enhancer'] + sys.argv[1:];\n"
        "try:\n    runpy.run_module('enhancer', run_name='__main__')\n"
        "except SystemExit as e:\n    rc = e.code\n"
        "print('MAXRSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n")


def make_clip(path: Path, size: str, frames: int) -> None:
    ff.run([ff.tools().ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
            f"testsrc2=size={size}:rate=25", "-frames:v", str(frames), "-vf", "noise=alls=6:allf=t", "-c:v",
            "libx264", "-crf", "20", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(path)])


def random_model(path: Path, name: str) -> Path:
    """A model file of the ``name`` configuration (``fusion-*`` or ``st3d-*``, x2) with random
    weights."""
    import torch

    from enhancer.restore import weights
    from enhancer.models.fusion import FUSION_CONFIGS, FusionConfig, FusionGenerator
    from enhancer.models.st3d import ST3D_CONFIGS, ST3DConfig, ST3DGenerator

    if name in ST3D_CONFIGS:
        cfg, cls, arch = ST3DConfig(**{**ST3D_CONFIGS[name].to_dict(), "scale": 2}), ST3DGenerator, "aligned-st3d"
    else:
        cfg, cls, arch = FusionConfig(**{**FUSION_CONFIGS[name].to_dict(), "scale": 2}), FusionGenerator, "aligned-fusion"
    torch.manual_seed(0)
    card = weights.ModelCard(name=f"{name}-random", arch=arch, config=cfg.to_dict(), scale=2,
                             notes="random weights, for timing only")
    model = cls(cfg)
    if arch == "aligned-fusion":  # int8 ranges of the random weights on random stacks: timing only
        from enhancer.restore import int8

        card.int8 = int8.calibrate(model, [torch.rand(1, 3 * (2 * cfg.radius + 1), 48, 48)])
    weights.save(model, path, card)
    return path


def plain_ffmpeg(clip: Path, out: Path, w: int, h: int, frames: int) -> tuple[float, int]:
    """frames/s and peak RSS (MiB) of plain ffmpeg upscaling ``clip`` x2 with lanczos into the x264
    encode enhance makes by default."""
    argv = [ff.tools().ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-i", str(clip), "-vf",
            f"scale={2 * w}:{2 * h}:flags=lanczos", "-c:v", "libx264", "-crf", "18", "-preset", "medium",
            "-pix_fmt", "yuv420p", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss_kb(proc.pid))
        time.sleep(0.05)
    if proc.returncode:
        raise SystemExit(f"ffmpeg failed on {clip}")
    return frames / (time.perf_counter() - t0), peak // 1024


def _is_ffmpeg(pid: int) -> bool:
    """Whether a process runs ffmpeg already (not a fork of ours that is about to)."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().startswith("ffmpeg")
    except OSError:
        return False


def measure(argv: list[str]) -> tuple[dict, int, int]:
    """(the --json row, peak RSS of the enhancer process, peak RSS of its ffmpeg processes; MiB)."""
    proc = subprocess.Popen([sys.executable, "-c", _RUN, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    peak = [0]

    def poll() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], sum(_tree_rss_kb(c) for c in _children(proc.pid) if _is_ffmpeg(c)))
            time.sleep(0.1)

    t = threading.Thread(target=poll, daemon=True)
    t.start()
    out, err = proc.communicate()
    t.join()
    if proc.returncode != 0:
        raise SystemExit(f"enhancer failed: {err[-2000:]}")
    row = json.loads(out.strip().splitlines()[-1])
    own = next(int(line.split()[1]) for line in err.splitlines() if line.startswith("MAXRSS"))
    return row, own // 1024, peak[0] // 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="480p,720p,1080p", help="names (480p, 720p, 1080p) or WxH")
    ap.add_argument("--frames", default="16", help="frames per clip (at least one model chunk), or one number "
                    "per size")
    ap.add_argument("--methods", default="lanczos,fusion-s",
                    help="lanczos (or another classical), fusion-s or st3d-s (random weights), installed models' names "
                    "or .safetensors paths; METHOD@PRECISION runs it in that precision")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    ff.configure()
    import torch

    from enhancer.restore.device import free_memory

    sizes = args.sizes.split(",")
    counts = [int(n) for n in args.frames.split(",")]
    counts = counts if len(counts) == len(sizes) else counts[:1] * len(sizes)
    print(f"cpu cores: {os.cpu_count()}, torch threads: {torch.get_num_threads()}, memory available: "
          f"{free_memory(torch.device('cpu')) / 2 ** 30:.1f} GiB, device: {args.device}, torch {torch.__version__}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        models = {}
        for m in args.methods.split(","):
            base, _, precision = m.partition("@")
            if base == "ffmpeg":
                models[m] = (None, None)
            elif base.startswith(("fusion-", "st3d-")):
                models[m] = (str(random_model(Path(tmp) / f"{base}.safetensors", base)), precision or "auto")
            else:
                models[m] = (base, precision or "auto")
        for name, frames in zip(sizes, counts):
            size = SIZES.get(name, name)
            clip = Path(tmp) / f"{name}.mp4"
            make_clip(clip, size, frames)
            label = f"{name} ({size})" if name in SIZES else size
            for method, (model, precision) in models.items():
                out = Path(tmp) / f"{name}-{len(rows)}.mp4"
                if method == "ffmpeg":
                    w, h = (int(v) for v in size.split("x"))
                    fps, child = plain_ffmpeg(clip, out, w, h, frames)
                    rows.append((label, "ffmpeg lanczos + the same x264 encode", frames, fps, 0, child))
                    print(f"  {label} ffmpeg: {fps:.2f} frames/s, peak {child:,} MiB", file=sys.stderr, flush=True)
                    continue
                row, own, child = measure(["enhance", str(clip), "-o", str(out), "--model", model, "--device",
                                           args.device, "--precision", precision, "--json", "-q"])
                fps = row["frames"] / row["seconds"]
                rows.append((label, method, row["frames"], fps, own, child))
                print(f"  {label} {method}: {row['frames']} frames in {row['seconds']:.1f} s ({fps:.2f} frames/s), "
                      f"peak {own:,} MiB, ffmpeg {child:,} MiB", file=sys.stderr, flush=True)
    print("| input | method | frames | frames/s | peak memory, enhancer | peak memory, its ffmpeg processes |")
    print("|---|---|---|---|---|---|")
    for label, method, frames, fps, own, child in rows:
        mine = "-" if method.startswith("ffmpeg") else f"{own:,} MiB"  # no enhancer process
        print(f"| {label} | {method} | {frames} | {fps:.2f} | {mine} | {child:,} MiB |")


if __name__ == "__main__":
    main()
