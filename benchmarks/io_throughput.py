"""Streaming I/O benchmark: measured figures beside a baseline measured in the same run.

(a) Passthrough speed: enhancer's reader + muxer at scale 1 with the identity step, against a
    plain ``ffmpeg -i in -c:v libx264 -crf 18 -preset veryfast out`` with the same settings, on a
    720p clip, in interleaved rounds (``--preset``, ``--rounds``; ``--before PATH`` also times
    another checkout). Prints frames/s, wall and CPU seconds and the ratios (target >= 0.8).
(b) Memory: peak RSS of the enhancer process (and of its whole process tree, ffmpeg included)
    enhancing a 10 s and a 120 s clip, and their ratio (target <= 1.1: memory does not grow with
    length).
(c) Backends (issue 14): decode to RGB and encode RGB to H.264 through enhancer's ffmpeg
    subprocess path and through PyAV in process, interleaved, medians of --repeats runs, on the
    720p clip of (a) and the 320x180 clip of (b); then whether their frames, times and pixels
    agree (see io_backends.py). The pyav backend is skipped, with a note, where ``av`` does not
    import.

    python benchmarks/io_throughput.py [--input CLIP_720p] [--seconds 10]
        [--backends ffmpeg,pyav] [--repeats 3] [--sizes 1280x720,320x180] [--no-check]
        [--skip-passthrough] [--skip-memory]
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from enhancer.media import ffmpeg as ff


def make_clip(path: Path, size: str, seconds: float, rate: int = 30) -> None:
    """Synthetic but codec-realistic footage: moving pattern plus temporal noise, with audio."""
    ff.run([ff.tools().ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
            f"testsrc2=size={size}:rate={rate}:duration={seconds}", "-f", "lavfi", "-i",
            f"sine=frequency=440:duration={seconds}", "-vf", "noise=alls=6:allf=t", "-c:v", "libx264", "-crf", "20",
            "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path)])


def _children(pid: int) -> list[int]:
    """Child pids: from /proc/PID/task/PID/children where the kernel has it, else by scanning
    every process's parent."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except FileNotFoundError:
        pass
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        kids.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return kids


def _tree_rss_kb(pid: int) -> int:
    """RSS of a process and all its descendants, from /proc (Linux)."""
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        todo += _children(p)
    return total


def run_measured(argv: list[str]) -> tuple[float, int, int]:
    """(seconds, own peak RSS in MiB, peak process-tree RSS in MiB) of a command."""
    code = ("import resource, runpy, sys; sys.argv = ['enhancer'] + sys.argv[1:];\n"
            "try:\n    runpy.run_module('enhancer', run_name='__main__')\n"
            "except SystemExit as e:\n    rc = e.code\n"
            "print('MAXRSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    peak = [0]

    def poll() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss_kb(proc.pid))
            time.sleep(0.2)

    t = threading.Thread(target=poll, daemon=True)
    t.start()
    _, err = proc.communicate()
    secs = time.perf_counter() - t0
    t.join()
    own = next((int(line.split()[1]) for line in err.splitlines() if line.startswith("MAXRSS")), 0)
    if proc.returncode not in (0, None):
        raise SystemExit(f"enhancer failed: {err[-2000:]}")
    return secs, own // 1024, peak[0] // 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", help="a 720p clip (default: generated, --seconds long)")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-passthrough", action="store_true")
    ap.add_argument("--preset", default="veryfast", help="(a): x264 preset of both encodes")
    ap.add_argument("--rounds", type=int, default=3, help="(a): interleaved rounds (median reported)")
    ap.add_argument("--before", metavar="PATH", help="(a): also time the enhancer of another checkout (on PYTHONPATH)")
    ap.add_argument("--backends", default="",
                    help="(c): comma-separated backends to compare, of ffmpeg,pyav (default: none, (c) not run)")
    ap.add_argument("--repeats", type=int, default=3, help="(c): interleaved runs per backend (median reported)")
    ap.add_argument("--sizes", default="1280x720,320x180",
                    help="(c): clip sizes (1280x720 is the clip of (a), or --input)")
    ap.add_argument("--no-check", action="store_true", help="(c): timings only, no agreement checks")
    args = ap.parse_args()
    tools = ff.configure()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if unknown := set(backends) - {"ffmpeg", "pyav"}:
        raise SystemExit(f"unknown backend(s): {', '.join(sorted(unknown))} (ffmpeg, pyav)")
    if "pyav" in backends:
        import io_backends

        if not io_backends.HAVE_AV:
            print(f"note: pyav backend skipped: PyAV does not import ({io_backends.AV_ERROR}); pip install av")
            backends.remove("pyav")
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        src = Path(args.input) if args.input else tmpd / "in720.mp4"
        if not args.input:
            make_clip(src, "1280x720", args.seconds)
        if backends:
            import io_backends

            clips = []
            for size in args.sizes.split(","):
                if size == "1280x720":
                    clips.append((Path(args.input).name if args.input else size, src))
                else:
                    clip = tmpd / f"in{size}.mp4"
                    make_clip(clip, size, args.seconds)
                    clips.append((size, clip))
            io_backends.run(clips, tmpd, backends, args.repeats, check=not args.no_check)
        if not args.skip_passthrough:
            passthrough(tools, src, tmpd, args.preset, args.rounds, args.before)
        if not args.skip_memory:
            memory(tmpd)


def _timed(argv: list[str], cwd: Path, env: dict | None = None) -> tuple[float, float]:
    """Wall and CPU seconds (user + system of the command and its children) of one command, run
    in ``cwd`` (not a checkout: ``python -m`` puts the current folder first on the import path)."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(argv)}\n{proc.stderr[-2000:]}")
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def passthrough(tools: ff.Tools, src: Path, tmpd: Path, preset: str = "veryfast", rounds: int = 3,
                before: str | None = None) -> None:
    """(a): enhancer at scale 1 against plain ffmpeg, same encoder settings, in interleaved rounds
    (medians; the machine may be shared: the ratio is what counts). ``before``: also the
    enhancer of another checkout (its folder on PYTHONPATH), in the same rounds."""
    from enhancer.media.probe import count_frames

    frames = count_frames(str(src))
    base = [tools.ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-i", str(src), "-map", "0:v:0",
            "-map", "0:a?", "-c:a", "copy", "-c:v", "libx264", "-crf", "18", "-preset", preset, "-pix_fmt",
            "yuv420p", str(tmpd / "base.mp4")]
    ours = [sys.executable, "-m", "enhancer", "enhance", str(src), "-o", str(tmpd / "ours.mp4"), "--model", "lanczos",
            "--scale", "1", "--crf", "18", "--preset", preset, "-q", "--overwrite"]
    runs: dict[str, list[tuple[float, float]]] = {"plain ffmpeg": [], "enhancer (scale 1)": []}
    if before:
        runs["enhancer, --before"] = []
    for _ in range(rounds):
        runs["plain ffmpeg"].append(_timed(base, tmpd))
        runs["enhancer (scale 1)"].append(_timed(ours, tmpd))
        if before:
            old = ours[:6] + [str(tmpd / "old.mp4")] + ours[7:]
            runs["enhancer, --before"].append(_timed(old, tmpd, env={**os.environ, "PYTHONPATH": before}))
    print(f"ffmpeg: {tools.ffmpeg}")
    print(f"cpu cores: {os.cpu_count()}, load average at the end {os.getloadavg()[0]:.2f}")
    print(f"(a) passthrough, {frames} frames of {src.name}, libx264 crf 18 preset {preset}, median of {rounds} "
          "interleaved round(s)")
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in runs.items()}
    wall0, cpu0 = med["plain ffmpeg"]
    for name, (wall, cpu) in med.items():
        print(f"    {name:22s} {frames / wall:7.1f} frames/s  ({wall:.2f} s, {cpu:.2f} s of CPU)  "
              f"ratio {wall0 / wall:.2f} (CPU {cpu0 / cpu:.2f})")
    print("    target: enhancer's ratio >= 0.80")


def memory(tmpd: Path) -> None:
    """(b): peak memory on a 10 s and a 120 s clip."""
    rows = []
    for secs in (10, 120):
        clip = tmpd / f"mem{secs}.mp4"
        make_clip(clip, "320x180", secs)
        t, own, tree = run_measured(["enhance", str(clip), "-o", str(tmpd / f"mem{secs}_out.mp4"), "--model",
                                     "lanczos", "--scale", "2", "--preset", "ultrafast", "-q"])
        rows.append((secs, t, own, tree))
    print("(b) peak memory, 320x180 -> 640x360 lanczos, x264 ultrafast")
    for secs, t, own, tree in rows:
        print(f"    {secs:4d} s clip: enhancer process {own:5d} MiB, with ffmpeg children {tree:5d} MiB ({t:.1f} s)")
    print(f"    ratio 120 s / 10 s: process {rows[1][2] / rows[0][2]:.2f}, tree {rows[1][3] / rows[0][3]:.2f}"
          "   (target <= 1.10)")


if __name__ == "__main__":
    main()
