"""Training in short windows on a rented GPU machine that has no network (operations tooling,
kept out of the package: it packs files with git and installs wheels).

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

    python tools/gpu_window.py pack configs/general-x2.toml --window 3 \\
        --wheel wheels/imageio_ffmpeg-0.6.0-py3-none-manylinux2014_x86_64.whl
    # on the GPU machine, from the repository root:
    python3 tools/gpu_window.py run configs/general-x2.toml --window 3 --minutes 7 --out $OUT
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's enhancer, installed or not
from enhancer.data.dataset import IMAGE_EXT, _gather  # noqa: E402

SIZES = {1: 128, 2: 192, 4: 256}  # the clean crops prepared per scale
HELD_OUT = ["bikes.mp4", "car-detection.mp4", "one-by-one-person-detection.mp4", "Set14", "life_by_Aitzol_Berasategi.jpg", "Path.jpg",
            "EveningGlow.jpg", "DarkestHour.jpg"]


def _share(items: list[Path], window: int, parts: int, sizes: dict[Path, int] | None = None) -> list[Path]:
    """The items of part ``window % parts``, the parts balanced by size (by count where no sizes
    are given): largest first, each to the lightest part so far, in an order stable across runs
    (ties by a hash of the names), so no part is empty while there are as many items as parts
    and none is much over the budget the part count was made from."""
    if parts <= 1:
        return items
    size = (lambda p: sizes[p]) if sizes else (lambda p: 1)  # noqa: E731
    ordered = sorted(items, key=lambda p: (-size(p), hashlib.sha1(p.name.encode()).hexdigest()))
    loads = [0] * parts
    chosen: list[Path] = []
    for item in ordered:
        k = min(range(parts), key=lambda j: (loads[j], j))
        loads[k] += size(item)
        if k == window % parts:
            chosen.append(item)
    return sorted(chosen)


def _compact_still(src: Path, dst: Path) -> None:
    import cv2

    img = cv2.imread(str(src), cv2.IMREAD_COLOR)
    if img is None:
        return
    h, w = img.shape[:2]
    f = min(1.0, 1280 / max(h, w))
    if f < 1:
        img = cv2.resize(img, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
    part = dst.with_name(dst.name + ".partial.jpg")
    cv2.imwrite(str(part), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
    os.replace(part, dst.with_suffix(".jpg"))


def _compact_video(src: Path, dst: Path, seconds: float = 40) -> None:
    from enhancer.media import ffmpeg as ff

    final = dst.with_suffix(".mp4")
    part = final.with_name(final.stem + ".partial.mp4")  # never a cut-short clip under the cached name
    ff.run([ff.tools().ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", ff.file_arg(str(src)),
            "-t", str(seconds), "-map", "0:v:0", "-vf", "scale=-2:'min(540,ih)':flags=area",
            "-c:v", "libx264", "-crf", "16", "-preset", "medium", "-pix_fmt", "yuv420p",
            ff.file_arg(str(part))], path=str(src), what="packing a video failed")
    os.replace(part, final)


class PackError(Exception):
    """The upload cannot be made as asked (one line for the user)."""


def pack(sources: list[str], out: Path, *, window: int = 0, budget_mib: float = 20,
         checkpoints: dict[str, str] | None = None, wheels: list[str] = (), exclude: list[str] = (),
         video_seconds: float = 40, max_mib: float | None = None, repo_bytes: int = 0) -> dict:
    """Write the upload for one window into ``out``; returns a summary. With ``max_mib``, an
    upload (``repo_bytes`` of the repository's own files, plus the pack) over it is refused."""
    from enhancer.errors import EnhancerError
    from enhancer.media import ffmpeg as ff

    for w in wheels:
        if not Path(w).is_file():
            raise PackError(f"{w}: no such wheel (pip download --no-deps --only-binary=:all: NAME==VERSION -d .)")
    if out.exists() and any(out.iterdir()) and not (out / "pack.json").exists():
        raise PackError(f"{out}: exists and is not a pack; give another --out")
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
            try:
                if still:
                    _compact_still(src, dst)
                else:
                    _compact_video(src, dst, video_seconds)
            except (EnhancerError, OSError) as e:  # one unreadable file is left out, not the pack
                print(f"pack: left out {src}: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
                      file=sys.stderr)
        if done.exists():
            compact.append(done)
    sizes = {p: p.stat().st_size for p in compact}
    total = sum(sizes.values())
    parts = max(1, -(-total // int(budget_mib * 2 ** 20)))
    chosen = _share(sorted(compact), window, parts, sizes)
    for p in chosen:
        shutil.copy2(p, out / "sources" / p.name)
    summary = {"window": window, "parts": parts, "files": len(chosen), "of": len(compact),
               "sources_mib": sum(sizes[p] for p in chosen) / 2 ** 20,
               "total_mib": (fixed + sum(sizes[p] for p in chosen)) / 2 ** 20,
               "upload_mib": (repo_bytes + fixed + sum(sizes[p] for p in chosen)) / 2 ** 20}
    (out / "pack.json").write_text(json.dumps(summary, indent=1))
    if max_mib is not None and summary["upload_mib"] > max_mib:
        raise PackError(f"{out}: the upload would be {summary['upload_mib']:.1f} MiB, over --max-mib {max_mib:g} "
                        f"(repository {repo_bytes / 2 ** 20:.1f}, wheels and checkpoints {fixed / 2 ** 20:.1f}, media "
                        f"{summary['sources_mib']:.1f}); lower --budget, or leave the checkpoints out (--no-checkpoints "
                        "and init_from the exported weights)")
    return summary


PREPARE_SHARE = 0.4  # of the window's minutes, at most, for preparing the sets


def _wait_all(procs: list[subprocess.Popen], deadline: float) -> bool:
    """Wait for every process; on the first failure or at the deadline, kill the rest. True when
    all of them succeeded."""
    while True:
        codes = [p.poll() for p in procs]
        if all(c == 0 for c in codes):
            return True
        if any(c not in (None, 0) for c in codes) or time.monotonic() > deadline:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            return False
        time.sleep(0.5)


def _finish(runs: list[tuple[Path, subprocess.Popen]], deadline: float) -> list[int]:
    """Exit statuses of the training runs; one still running at ``deadline`` gets SIGTERM (it
    writes its checkpoint), then, 60 s later, SIGKILL."""
    codes = []
    for _, p in runs:
        try:
            codes.append(p.wait(timeout=max(1.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            p.terminate()
            try:
                codes.append(p.wait(timeout=60))
            except subprocess.TimeoutExpired:
                p.kill()
                codes.append(p.wait())
    return codes


def _repo_bytes(root: Path) -> int:
    """What the repository's own files add to an upload (tracked and untracked-not-ignored)."""
    try:
        names = subprocess.run(["git", "-C", str(root), "ls-files", "-co", "--exclude-standard", "-z"],
                               capture_output=True, check=True).stdout.split(b"\0")
    except (OSError, subprocess.CalledProcessError):
        return 0
    total = 0
    for name in filter(None, names):
        try:
            total += (root / os.fsdecode(name)).stat().st_size
        except OSError:
            pass
    return total


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
        if not _wait_all(preparing, deadline=t0 + minutes * 60 * PREPARE_SHARE):
            print(f"window: preparing the training sets failed or took more than {PREPARE_SHARE:.0%} of the "
                  "window (fewer --sequences)", file=sys.stderr, flush=True)
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
        # the trainers stop themselves at --max-minutes; one stalled past it is stopped (SIGTERM: it
        # checkpoints), then killed
        codes = _finish(training, deadline=time.monotonic() + max(0.3, left - 0.4) * 60 + 90)
        if export:
            from enhancer.train.export import export as export_weights

            for (run_dir, _), code in zip(training, codes):
                if code == 0 and (run_dir / "last.pt").is_file():  # a failed run's checkpoint may be the old one
                    try:
                        export_weights(run_dir / "last.pt", out / f"{run_dir.name}.safetensors")
                    except Exception as e:  # noqa: BLE001 - the other runs' exports still happen
                        print(f"window: exporting {run_dir.name} failed: {e}", file=sys.stderr, flush=True)
                        codes.append(1)
        return max(codes)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python tools/gpu_window.py", description=__doc__,
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
    p.add_argument("--max-mib", type=float, default=64,
                   help="refuse an upload (the repository's files and the pack) larger than this (default 64)")
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

        here = Path(__file__).resolve().parents[1]
        sources = args.sources or [str(here.parent / "shared" / "data"), str(here / "runs" / "media" / "train")]
        ckpts = {} if args.no_checkpoints else \
            {Path(c).stem: str(Path(TrainConfig.from_toml(c).run_dir) / "last.pt") for c in args.configs}
        try:
            summary = pack([s for s in sources if Path(s).exists()], Path(args.out), window=args.window,
                           budget_mib=args.budget, checkpoints=ckpts, wheels=args.wheel,
                           video_seconds=args.video_seconds, max_mib=args.max_mib, repo_bytes=_repo_bytes(here))
        except PackError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(json.dumps(summary))
        return 0
    return run(args.configs, window=args.window, minutes=args.minutes, out=Path(args.out), pack_dir=Path(args.pack),
               sequences=args.sequences or [1280], overrides=args.overrides, export=args.export)


if __name__ == "__main__":
    sys.exit(main())
