"""`enhancer evaluate` with its default metrics beside ffmpeg's libvmaf alone, on the same pair.

The pair is made from real footage: the first FRAMES frames of a clean clip scaled to SIZE
(x264 CRF 16), and `enhancer degrade --scale 1 --seed 3` of it.
Then, in rounds that interleave them (the machine may be loaded by other work; the ratio is
what counts), it times the plain libvmaf command and the whole `enhancer evaluate` command, and
prints wall and CPU seconds of each (median over rounds) and the ratio. `--before PATH` also times
the `enhancer` of another checkout (its package folder on PYTHONPATH) in the same rounds.

    python benchmarks/evaluate_speed.py                       # 48 frames of 960x540
    python benchmarks/evaluate_speed.py --before /tmp/old --rounds 1

`--agreement CLIP...` instead measures what the bounded analysis size changes: for each clip,
three candidates (`degrade --scale 1` with `web` and `vhs`, and `web` at x2 upscaled back with
lanczos), scored with perceptual, tLP and tOF at full size and at the default bound.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = ROOT.parent / "shared" / "data" / "videos" / "bigbuckbunny.mp4"


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(argv: list[str], cwd: Path, env: dict | None = None) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, the process and its children) of one command, run in
    ``cwd`` (not the checkout: ``python -m`` puts the current folder first on the import path)."""
    c0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - c0
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(argv)}\n{proc.stderr.decode(errors='replace')[-2000:]}")
    return wall, cpu


def make_pair(source: str, work: Path, frames: int, size: str, ffmpeg: str) -> tuple[Path, Path]:
    w, h = size.split("x")
    ref, cand = work / "reference.mp4", work / "degraded.mp4"
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-i", source, "-map", "0:v:0",
                    "-vf", f"scale={w}:{h}:flags=lanczos,setsar=1", "-frames:v", str(frames), "-c:v", "libx264",
                    "-crf", "16", "-pix_fmt", "yuv420p", str(ref)], check=True)
    subprocess.run([sys.executable, "-m", "enhancer", "degrade", str(ref), "-o", str(cand), "--scale", "1",
                    "--seed", "3", "-q"], check=True)
    return ref, cand


def agreement(sources: list[str], frames: int, size: str) -> None:
    from enhancer.quality.evaluate import ANALYSIS_PIXELS, evaluate
    from enhancer.media import ffmpeg as ff

    exe, rows = ff.tools().ffmpeg, []
    w, h = size.split("x")
    with tempfile.TemporaryDirectory() as tmp:
        for src in sources:
            ref, _ = make_pair(src, Path(tmp), frames, size, exe)
            name = Path(src).stem
            kept = Path(tmp) / f"{name}-ref.mp4"
            ref.rename(kept)
            cands = {}
            for preset in ("web", "vhs"):
                cands[preset] = Path(tmp) / f"{name}-{preset}.mp4"
                subprocess.run([sys.executable, "-m", "enhancer", "degrade", str(kept), "-o", str(cands[preset]),
                                "--scale", "1", "--preset", preset, "--seed", "5", "-q"], check=True, cwd=tmp)
            low, up = Path(tmp) / f"{name}-low.mp4", Path(tmp) / f"{name}-x2-lanczos.mkv"
            subprocess.run([sys.executable, "-m", "enhancer", "degrade", str(kept), "-o", str(low), "--scale", "2",
                            "--seed", "5", "-q"], check=True, cwd=tmp)
            subprocess.run([exe, "-loglevel", "error", "-y", "-i", str(low), "-vf", f"scale={w}:{h}:flags=lanczos",
                            "-c:v", "ffv1", str(up)], check=True)
            cands["web x2 + lanczos"] = up
            for label, cand in cands.items():
                vals = {}
                for pixels in (None, ANALYSIS_PIXELS):
                    sc = evaluate(str(kept), str(cand), metrics=("perceptual", "tlp", "tof"), analysis_pixels=pixels)
                    vals[pixels] = [sc.mean(k) for k in ("perceptual", "tlp", "tof")]
                rows.append((f"{name} {label}", vals[None], vals[ANALYSIS_PIXELS]))
                print(f"{name:22} {label:17}" + "".join(f"{a:9.4f} ->{b:7.4f}" for a, b in zip(*vals.values())),
                      flush=True)

    def ranks(xs):
        order = sorted(range(len(xs)), key=lambda i: xs[i])
        r = [0] * len(xs)
        for k, i in enumerate(order):
            r[i] = k
        return r

    print(f"{len(rows)} pairs of {frames} frames of {size}; full size -> at most {ANALYSIS_PIXELS} pixels")
    for j, key in enumerate(("perceptual", "tLP", "tOF")):
        full, bounded = [r[1][j] for r in rows], [r[2][j] for r in rows]
        rf, rb = ranks(full), ranks(bounded)
        n = len(rows)
        rho = 1 - 6 * sum((a - b) ** 2 for a, b in zip(rf, rb)) / (n * (n * n - 1))
        ratio = statistics.median(b / a for a, b in zip(full, bounded) if a)
        print(f"{key}: bounded / full median {ratio:.2f} (range {min(b / a for a, b in zip(full, bounded) if a):.2f}"
              f"-{max(b / a for a, b in zip(full, bounded) if a):.2f}), Spearman rank correlation {rho:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default=str(DEFAULT_SOURCE), help="clean clip the pair is made from")
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--size", default="960x540")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--before", default=None, metavar="PATH",
                    help="another checkout whose enhancer is timed too (PYTHONPATH=PATH)")
    ap.add_argument("--evaluate-args", default="", help="more options for evaluate, e.g. '--full-size'")
    ap.add_argument("--agreement", nargs="+", metavar="CLIP", help="measure what the bounded analysis size "
                    "changes, on these clips (see above)")
    args = ap.parse_args()
    if args.agreement:
        agreement(args.agreement, args.frames, args.size)
        return

    from enhancer.media import ffmpeg as ff

    exe = ff.with_filter("libvmaf")
    if exe is None:
        sys.exit("no ffmpeg with libvmaf here")
    with tempfile.TemporaryDirectory() as tmp:
        ref, cand = make_pair(args.source, Path(tmp), args.frames, args.size, ff.tools().ffmpeg)
        vmaf_cmd = [exe, "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(cand), "-i", str(ref),
                    "-lavfi", "[0:v][1:v]libvmaf", "-f", "null", "-"]
        eval_cmd = [sys.executable, "-m", "enhancer", "evaluate", "-r", str(ref), str(cand), "-q",
                    *args.evaluate_args.split()]
        runs: dict[str, list[tuple[float, float]]] = {"libvmaf alone": [], "enhancer evaluate": []}
        envs = {"libvmaf alone": None, "enhancer evaluate": None}
        if args.before:
            runs["evaluate (--before)"] = []
            envs["evaluate (--before)"] = dict(os.environ, PYTHONPATH=str(Path(args.before).resolve()))
        for k in range(args.rounds):
            for name in runs:
                runs[name].append(timed(vmaf_cmd if name == "libvmaf alone" else eval_cmd, Path(tmp), envs[name]))
                print(f"round {k + 1}: {name}: {runs[name][-1][0]:.2f} s wall, {runs[name][-1][1]:.2f} s CPU",
                      file=sys.stderr, flush=True)
    wall = {n: statistics.median(t[0] for t in r) for n, r in runs.items()}
    cpu = {n: statistics.median(t[1] for t in r) for n, r in runs.items()}
    print(f"{args.frames} frames of {args.size} from {Path(args.source).name}, {os.cpu_count()} CPUs, "
          f"median of {args.rounds} round(s)")
    print(f"{'':24}{'wall s':>10}{'CPU s':>10}{'x libvmaf (wall)':>18}{'x libvmaf (CPU)':>17}")
    base_w, base_c = wall["libvmaf alone"], cpu["libvmaf alone"]
    for n in runs:
        print(f"{n:24}{wall[n]:>10.2f}{cpu[n]:>10.2f}{wall[n] / base_w:>18.1f}{cpu[n] / base_c:>17.1f}")


if __name__ == "__main__":
    main()
