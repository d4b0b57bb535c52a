"""Training in short windows on a rented GPU machine that has no network.

Such a machine takes one command of a few minutes at a time and a small upload (64 MiB on this
project's lender): the code, the wheels its Python lacks, the training media and the last
checkpoint. So training there runs in windows:

1. Here (any machine): ``pack`` writes a folder (default ``.gpu/``, git-ignored) holding
   the training media compacted for the upload (stills re-encoded as JPEG at most 1280 pixels
   wide, video clips cut to at most 40 s and re-encoded as x264 at most 540 lines high), a
   rotating part of them when they do not all fit in ``--budget``; the wheels named with
   ``--wheel`` (imageio-ffmpeg for a machine without ffmpeg); and the run's last checkpoint.
2. There: ``run`` installs the wheels, prepares a training set from the packed media with every
   core (``enhancer prepare --workers N``, seeded by the window so each window sees new
   crops and damage), and trains from the checkpoint for ``--minutes``, writing a checkpoint
   into ``--out`` at least every two minutes (``ckpt_minutes``), so the next window resumes
   from it even if this one is cut off.

    python -m enhancer.train.window pack configs/general-x2.toml --window 3 \\
        --wheel wheels/imageio_ffmpeg-0.6.0-py3-none-manylinux2014_x86_64.whl
    # on the GPU machine, from the repository root:
    python3 -m enhancer.train.window run configs/general-x2.toml --window 3 --minutes 7 --out $OUT
    # back here: the new checkpoint is $OUT/run/last.pt; copy it to the run folder and repeat
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from enhancer.data.dataset import IMAGE_EXT, _gather

HELD_OUT = ["bikes.mp4", "car-detection.mp4", "Set14", "life_by_Aitzol_Berasategi.jpg", "Path.jpg",
            "EveningGlow.jpg", "DarkestHour.jpg"]


def _share(items: list[Path], window: int, parts: int) -> list[Path]:
    """The items of part ``window % parts``: every ``parts``-th in an order stable across runs
    (a hash of their names), so each part gets its fair count and none is empty while there are
    as many items as parts (a hash remainder alone left some parts empty)."""
    if parts <= 1:
        return items
    ordered = sorted(items, key=lambda p: hashlib.sha1(p.name.encode()).hexdigest())
    return sorted(ordered[window % parts::parts])


def _compact_still(src: Path, dst: Path) -> None:
    import cv2

    img = cv2.imread(str(src), cv2.IMREAD_COLOR)
    if img is None:
        return
    h, w = img.shape[:2]
    f = min(1.0, 1280 / max(h, w))
    if f < 1:
        img = cv2.resize(img, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(dst.with_suffix(".jpg")), img, [cv2.IMWRITE_JPEG_QUALITY, 92])


def _compact_video(src: Path, dst: Path, seconds: float = 40) -> None:
    from enhancer.io import ffmpeg as ff

    ff.run([ff.tools().ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", ff.file_arg(str(src)),
            "-t", str(seconds), "-map", "0:v:0", "-vf", "scale=-2:'min(540,ih)':flags=area",
            "-c:v", "libx264", "-crf", "16", "-preset", "medium", "-pix_fmt", "yuv420p",
            ff.file_arg(str(dst.with_suffix(".mp4")))], path=str(src), what="packing a video failed")


def pack(sources: list[str], out: Path, *, window: int = 0, budget_mib: float = 20, checkpoint: str | None = None,
         wheels: list[str] = (), exclude: list[str] = ()) -> dict:
    """Write the upload for one window into ``out``; returns a summary."""
    from enhancer.io import ffmpeg as ff

    ff.configure()
    images, videos = _gather(sources, list(HELD_OUT) + list(exclude))
    if out.exists():
        shutil.rmtree(out)
    (out / "sources").mkdir(parents=True)
    (out / "wheels").mkdir()
    for w in wheels:
        shutil.copy2(w, out / "wheels")
    if checkpoint and Path(checkpoint).is_file():
        shutil.copy2(checkpoint, out / "last.pt")
    fixed = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    # compact everything once (cached beside the pack), then take as many parts as fit
    cache = out.parent / (out.name + "-cache")
    cache.mkdir(exist_ok=True)
    compact: list[Path] = []
    for src in images + videos:
        dst = cache / (hashlib.sha1(str(src).encode()).hexdigest()[:12] + "_" + src.stem)
        done = dst.with_suffix(".jpg" if src.suffix.lower() in IMAGE_EXT else ".mp4")
        if not done.exists():
            (_compact_still if src.suffix.lower() in IMAGE_EXT else _compact_video)(src, dst)
        if done.exists():
            compact.append(done)
    total = sum(p.stat().st_size for p in compact)
    parts = max(1, -(-total // int(budget_mib * 2 ** 20)))
    chosen = _share(sorted(compact), window, parts)
    for p in chosen:
        shutil.copy2(p, out / "sources" / p.name)
    summary = {"window": window, "parts": parts, "files": len(chosen), "of": len(compact),
               "sources_mib": sum(p.stat().st_size for p in chosen) / 2 ** 20,
               "total_mib": (fixed + sum(p.stat().st_size for p in chosen)) / 2 ** 20}
    (out / "pack.json").write_text(json.dumps(summary, indent=1))
    return summary


def run(config: str, *, window: int, minutes: float, out: Path, pack_dir: Path, sequences: int = 1280,
        workers: int | None = None, overrides: list[str] = ()) -> int:
    """Prepare a set from the pack and train from its checkpoint for ``minutes``."""
    t0 = time.monotonic()
    env = dict(os.environ)
    wheels = sorted((pack_dir / "wheels").glob("*.whl"))
    if wheels:
        site = Path("/tmp/enhancer-site")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--upgrade", "--target", str(site), *map(str, wheels)], check=True)
        env["PYTHONPATH"] = os.pathsep.join([str(site), str(Path.cwd()), env.get("PYTHONPATH", "")])
    else:
        env["PYTHONPATH"] = os.pathsep.join([str(Path.cwd()), env.get("PYTHONPATH", "")])
    from enhancer.train.config import TrainConfig

    cfg = TrainConfig.from_toml(config, overrides)
    scratch = Path(tempfile.mkdtemp(prefix="enhancer-window-"))  # this window's own (two never share a set)
    data = scratch / "set.npz"
    try:
        run_dir = out / "run"
        run_dir.mkdir(parents=True, exist_ok=True)
        if (pack_dir / "last.pt").is_file() and not (run_dir / "last.pt").exists():
            shutil.copy2(pack_dir / "last.pt", run_dir / "last.pt")
        size = {1: 128, 2: 192, 4: 256}[cfg.scale]
        preset = {1: "archive", 2: "web", 4: "web"}[cfg.scale] if not os.environ.get("ENHANCER_PRESET") \
            else os.environ["ENHANCER_PRESET"]
        workers = workers or os.cpu_count() or 1
        subprocess.run([sys.executable, "-m", "enhancer", "prepare", str(pack_dir / "sources"), "-o", str(data),
                        "--sequences", str(sequences), "--frames", "8", "--size", str(size), "--scale", str(cfg.scale),
                        "--versions", "2", "--preset", preset, "--seed", str(1000 + window), "--video-ratio", "0.5",
                        "--no-compress", "--workers", str(workers), "-q"], check=True, env=env)
        left = minutes - (time.monotonic() - t0) / 60
        sets = [f'"{data}"']
        argv = [sys.executable, "-m", "enhancer", "train", "--config", config, "--resume", "-q",
                "--max-minutes", f"{max(0.5, left):.2f}", "--set", f'run_dir="{run_dir}"',
                "--set", f"data=[{', '.join(sets)}]",
                *[a for o in overrides for a in ("--set", o)]]
        return subprocess.run(argv, env=env).returncode
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m enhancer.train.window", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="write the upload for one window (here)")
    p.add_argument("config")
    p.add_argument("--window", type=int, default=0)
    p.add_argument("--sources", nargs="*", default=None, help="media folders (default: the project's)")
    p.add_argument("--out", default=".gpu")
    p.add_argument("--budget", type=float, default=20, help="MiB of media per window")
    p.add_argument("--wheel", action="append", default=[])
    r = sub.add_parser("run", help="prepare and train for one window (on the GPU machine)")
    r.add_argument("config")
    r.add_argument("--window", type=int, default=0)
    r.add_argument("--minutes", type=float, default=7)
    r.add_argument("--out", required=True)
    r.add_argument("--pack", default=".gpu")
    r.add_argument("--sequences", type=int, default=1280)
    r.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args(argv)
    if args.cmd == "pack":
        from enhancer.train.config import TrainConfig

        cfg = TrainConfig.from_toml(args.config)
        here = Path(__file__).resolve().parents[2]
        sources = args.sources or [str(here.parent / "shared" / "data"), str(here / "runs" / "media" / "train")]
        summary = pack([s for s in sources if Path(s).exists()], Path(args.out), window=args.window,
                       budget_mib=args.budget, checkpoint=str(Path(cfg.run_dir) / "last.pt"), wheels=args.wheel)
        print(json.dumps(summary))
        return 0
    return run(args.config, window=args.window, minutes=args.minutes, out=Path(args.out), pack_dir=Path(args.pack),
               sequences=args.sequences, overrides=args.overrides)


if __name__ == "__main__":
    sys.exit(main())
