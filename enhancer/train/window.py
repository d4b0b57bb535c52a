"""Training in short windows on a rented GPU machine that has no network.

Such a machine takes one command of a few minutes at a time and a small upload (64 MiB on this
project's lender): the code, the wheels its Python lacks, the training media and the last
checkpoint. So training there runs in windows:

1. Here (any machine): ``pack`` writes a folder (default ``.gpu/``, git-ignored) holding
   the training media compacted for the upload (stills re-encoded as JPEG at most 1280 pixels
   wide, video clips cut to their first ``--video-seconds`` (40) and re-encoded as x264 at most 540 lines high), a
   rotating part of them when they do not all fit in ``--budget``; the wheels named with
   ``--wheel`` (imageio-ffmpeg for a machine without ffmpeg); and each config's last checkpoint
   (``checkpoints/NAME.pt``; ``--no-checkpoints`` for runs that start from weights in the repo).
2. There: ``run`` installs the wheels, prepares one training set per kind the configs need
   (scale and damage) from the packed media with every core (``enhancer prepare --workers N``,
   seeded by the window so each window sees new crops and damage), and trains every config at
   once on the one GPU (the cores split between their batch threads), each from its checkpoint
   for what is left of ``--minutes``. Each run fits its schedule to that time (``fit_minutes``:
   the step rate is measured, then ``steps`` set so the learning-rate decay finishes in time)
   and writes a checkpoint into ``OUT/NAME/`` at least every two minutes (``ckpt_minutes``),
   so the next window resumes from it even if this one is cut off; ``--export`` adds
   ``OUT/NAME.safetensors``, the EMA weights in the shipped format.

    python -m enhancer.train.window pack configs/general-x2.toml --window 3 \\
        --wheel wheels/imageio_ffmpeg-0.6.0-py3-none-manylinux2014_x86_64.whl
    # on the GPU machine, from the repository root:
    python3 -m enhancer.train.window run configs/general-x2.toml --window 3 --minutes 7 --out $OUT
    # back here: the new checkpoint is $OUT/general-x2/last.pt; copy it to the run folder and repeat
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

SIZES = {1: 128, 2: 192, 4: 256}  # the clean crops prepared per scale
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


def pack(sources: list[str], out: Path, *, window: int = 0, budget_mib: float = 20,
         checkpoints: dict[str, str] | None = None, wheels: list[str] = (), exclude: list[str] = (),
         video_seconds: float = 40) -> dict:
    """Write the upload for one window into ``out``; returns a summary."""
    from enhancer.io import ffmpeg as ff

    ff.configure()
    images, videos = _gather(sources, list(HELD_OUT) + list(exclude))
    if out.exists():
        shutil.rmtree(out)
    (out / "sources").mkdir(parents=True)
    (out / "wheels").mkdir()
    (out / "checkpoints").mkdir()
    for w in wheels:
        shutil.copy2(w, out / "wheels")
    for name, path in (checkpoints or {}).items():  # each config's last checkpoint, by the config's name
        if path and Path(path).is_file():
            shutil.copy2(path, out / "checkpoints" / f"{name}.pt")
    fixed = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    # compact everything once (cached beside the pack), then take as many parts as fit
    cache = out.parent / (out.name + "-cache")
    cache.mkdir(exist_ok=True)
    compact: list[Path] = []
    for src in images + videos:
        still = src.suffix.lower() in IMAGE_EXT
        key = str(src) if still or video_seconds == 40 else f"{src}@{video_seconds:g}s"
        dst = cache / (hashlib.sha1(key.encode()).hexdigest()[:12] + "_" + src.stem)
        done = dst.with_suffix(".jpg" if still else ".mp4")
        if not done.exists():
            if still:
                _compact_still(src, dst)
            else:
                _compact_video(src, dst, video_seconds)
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


def _preset(scale: int) -> str:
    return os.environ.get("ENHANCER_PRESET") or {1: "archive", 2: "web", 4: "web"}[scale]


def run(configs: list[str], *, window: int, minutes: float, out: Path, pack_dir: Path,
        sequences: list[int] = (1280,), workers: int | None = None, overrides: list[str] = (),
        export: bool = False) -> int:
    """Prepare one set per kind of data the configs need (scale and damage preset) from the pack,
    then train every config at once on the one GPU, each from its checkpoint, for what is left of
    ``minutes``, with a schedule fitted to that time; returns the worst exit status."""
    from enhancer.train.config import TrainConfig

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
    cfgs = [TrainConfig.from_toml(c, overrides) for c in configs]
    kinds = list(dict.fromkeys((c.scale, _preset(c.scale)) for c in cfgs))
    counts = {k: (list(sequences) + [sequences[-1]] * len(kinds))[i] for i, k in enumerate(kinds)}
    cores = workers or os.cpu_count() or 1
    scratch = Path(tempfile.mkdtemp(prefix="enhancer-window-"))  # this window's own (two never share a set)
    try:
        sets, preparing = {}, []
        for i, (scale, preset) in enumerate(kinds):  # every set at once, the cores shared
            sets[(scale, preset)] = data = scratch / f"x{scale}-{preset}.npz"
            preparing.append(subprocess.Popen(
                [sys.executable, "-m", "enhancer", "prepare", str(pack_dir / "sources"), "-o", str(data),
                 "--sequences", str(counts[(scale, preset)]), "--frames", "8", "--size", str(SIZES[scale]),
                 "--scale", str(scale), "--versions", "2", "--preset", preset, "--seed", str(1000 + window + 97 * i),
                 "--video-ratio", "0.5", "--no-compress", "--workers", str(max(1, cores // len(kinds))), "-q"],
                env=env))
        if any(p.wait() for p in preparing):
            print("window: preparing a training set failed", file=sys.stderr, flush=True)
            return 1
        print(f"window: {len(kinds)} set(s) prepared in {time.monotonic() - t0:.0f} s", flush=True)
        left = minutes - (time.monotonic() - t0) / 60
        threads = max(1, cores // len(cfgs) - 1)
        training = []
        for path, cfg in zip(configs, cfgs):
            run_dir = out / Path(path).stem
            run_dir.mkdir(parents=True, exist_ok=True)
            packed = pack_dir / "checkpoints" / f"{Path(path).stem}.pt"
            if packed.is_file() and not (run_dir / "last.pt").exists():
                shutil.copy2(packed, run_dir / "last.pt")
            argv = [sys.executable, "-m", "enhancer", "train", "--config", path, "--resume", "-q",
                    "--max-minutes", f"{max(0.3, left - 0.4):.2f}", "--set", f'run_dir="{run_dir}"',
                    "--set", f'data=["{sets[(cfg.scale, _preset(cfg.scale))]}"]',
                    "--set", f"loader_threads={threads}", "--set", f"fit_minutes={max(0.25, left - 0.6):.2f}",
                    *[a for o in overrides for a in ("--set", o)]]
            training.append((run_dir, subprocess.Popen(argv, env=env)))
        codes = [p.wait() for _, p in training]
        if export:
            from enhancer.train.export import export as export_weights

            for run_dir, _ in training:
                if (run_dir / "last.pt").is_file():
                    export_weights(run_dir / "last.pt", out / f"{run_dir.name}.safetensors")
        return max(codes)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m enhancer.train.window", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="write the upload for one window (here)")
    p.add_argument("configs", nargs="+", metavar="CONFIG")
    p.add_argument("--window", type=int, default=0)
    p.add_argument("--sources", nargs="*", default=None, help="media folders (default: the project's)")
    p.add_argument("--out", default=".gpu")
    p.add_argument("--budget", type=float, default=20, help="MiB of media per window")
    p.add_argument("--wheel", action="append", default=[])
    p.add_argument("--video-seconds", type=float, default=40, help="the first seconds of each video packed")
    p.add_argument("--no-checkpoints", action="store_true",
                   help="carry no checkpoint (runs that start from init_from weights already in the repo)")
    r = sub.add_parser("run", help="prepare and train for one window (on the GPU machine)")
    r.add_argument("configs", nargs="+", metavar="CONFIG", help="trained at once, sharing the GPU and the cores")
    r.add_argument("--window", type=int, default=0)
    r.add_argument("--minutes", type=float, default=7, help="the whole window: preparation and training")
    r.add_argument("--out", required=True)
    r.add_argument("--pack", default=".gpu")
    r.add_argument("--sequences", type=int, action="append", default=[],
                   help="sequences per set, one per kind of set in the order of the configs (default 1280)")
    r.add_argument("--set", dest="overrides", action="append", default=[])
    r.add_argument("--export", action="store_true", help="also write each run's EMA weights to OUT/NAME.safetensors")
    args = ap.parse_args(argv)
    if args.cmd == "pack":
        from enhancer.train.config import TrainConfig

        here = Path(__file__).resolve().parents[2]
        sources = args.sources or [str(here.parent / "shared" / "data"), str(here / "runs" / "media" / "train")]
        ckpts = {} if args.no_checkpoints else \
            {Path(c).stem: str(Path(TrainConfig.from_toml(c).run_dir) / "last.pt") for c in args.configs}
        summary = pack([s for s in sources if Path(s).exists()], Path(args.out), window=args.window,
                       budget_mib=args.budget, checkpoints=ckpts, wheels=args.wheel,
                       video_seconds=args.video_seconds)
        print(json.dumps(summary))
        return 0
    return run(args.configs, window=args.window, minutes=args.minutes, out=Path(args.out), pack_dir=Path(args.pack),
               sequences=args.sequences or [1280], overrides=args.overrides, export=args.export)


if __name__ == "__main__":
    sys.exit(main())
