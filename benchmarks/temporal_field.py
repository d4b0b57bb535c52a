"""Does ``--temporal on`` steady a per-frame model of the field? Warping error, tOF and PSNR-Y on
real footage held out of the model's training, with the stage off and on, lanczos beside them.

1. Trains a tiny per-frame x2 model of a published architecture (Real-ESRGAN's SRVGGNetCompact,
   as spandrel builds it: 32 features, 8 convolutions) on single images, for tests and
   benchmarks only (not shipped): patches of the photographs and SR image sets under ``--data``
   (BSD100, Urban100 and the photos; Set14 and the held-out photos of benchmarks/heldout.py
   left out), damaged as web-grade x2 (optional blur, a half-size bicubic, bilinear or area
   downscale, optional noise, JPEG at quality 20-70). L1 loss, Adam, cosine learning rate, an
   exponential moving average of the weights saved as ``params_ema`` in ``OUT/compact-x2.pth``
   (BasicSR's layout). Skipped where that file exists (``--retrain`` to redo it).
2. For each held-out item (a clip and a span of ``--frames`` frames; by default spans of the three
   real-footage clips of benchmarks/heldout.py): the span is written losslessly as the truth,
   degraded as flow_quality.py does it (``enhancer degrade --preset web --scale 2 --seed 1``),
   and restored by ``python -m enhancer enhance`` with the model, ``--temporal off`` and
   ``--temporal on``, and with lanczos (FFV1, RGB: lossless).
3. Scores each against the truth with ``enhancer.quality.evaluate``: PSNR-Y, tOF and the warping error
   (Lai et al. 2018, :mod:`enhancer.quality.warping`; ``truth`` is the truth's own, the floor), per item
   and averaged, and the warping error's cut by the stage.

    python benchmarks/temporal_field.py --data ../shared/data --heldout runs/heldout \\
        -o runs/temporal_field [--steps 3000] [--frames 24] [--items bikes@0,car-detection@0]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flow_quality import degraded_pair  # noqa: E402
from heldout import STILLS, _write  # noqa: E402

from enhancer.quality.evaluate import evaluate, frames as read_frames  # noqa: E402
from enhancer.media import ffmpeg as ff  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# real footage of benchmarks/heldout.py (bikes 150 frames at 25 fps, car-detection 75 at 12.5,
# people-walking 60 at 10), spans that do not overlap
ITEMS = ("bikes@0", "bikes@60", "bikes@120", "car-detection@0", "car-detection@48", "people-walking@0",
         "people-walking@36")
METRICS = ("psnr_y", "tof", "warp")
HR, SCALE = 80, 2  # training patch side (clean), and the model's scale


# ---- 1. the tiny per-frame model ---------------------------------------------------------------
def training_files(data: Path) -> list[Path]:
    """The training images: BSD100, Urban100 and the photos, without Set14 and the held-out photos."""
    held = {Path(rel).name for rel, *_ in STILLS.values()}
    files = sorted((data / "images" / "BSD100").glob("*.png")) + sorted((data / "images" / "Urban100").glob("*.png"))
    files += [p for p in sorted((data / "photos").rglob("*")) if p.suffix.lower() in (".jpg", ".png")
              and p.name not in held]
    return files


def _load(path: Path, longest: int = 1280) -> np.ndarray:
    """RGB uint8, area-downscaled so its longer side is at most ``longest`` (photos of 3000-6000
    pixels would otherwise hold little detail in a patch)."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if max(img.shape[:2]) > 2 * longest and path.suffix.lower() == ".jpg":
        img = cv2.imread(str(path), cv2.IMREAD_REDUCED_COLOR_2)
    s = longest / max(img.shape[:2])
    if s < 1:
        img = cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(img[..., ::-1])


def patches(images: list[np.ndarray], per_image: int, rng: np.random.Generator) -> np.ndarray:
    out = []
    for img in images:
        h, w = img.shape[:2]
        for _ in range(per_image):
            y, x = int(rng.integers(0, h - HR + 1)), int(rng.integers(0, w - HR + 1))
            out.append(img[y:y + HR, x:x + HR])
    return np.stack(out)


def degrade(hr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One clean patch (uint8 RGB) -> a web-grade x2 copy: optional blur, a half-size downscale,
    optional noise, JPEG."""
    x = hr.astype(np.float32)
    if rng.random() < 0.3:
        x = cv2.GaussianBlur(x, (0, 0), float(rng.uniform(0.3, 1.0)))
    how = [cv2.INTER_CUBIC, cv2.INTER_LINEAR, cv2.INTER_AREA][int(rng.integers(0, 3))]
    x = cv2.resize(x, (HR // SCALE, HR // SCALE), interpolation=how)
    if rng.random() < 0.3:
        x = x + rng.normal(0, rng.uniform(1, 6), x.shape).astype(np.float32)
    x = np.clip(x + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < 0.9:
        ok, buf = cv2.imencode(".jpg", x[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(20, 71))])
        x = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return x


def _tensor(batch: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float().div_(255)


def _psnr_y(a, b) -> float:
    """PSNR-Y of (N, 3, H, W) tensors in [0, 1], 4-pixel border left out."""
    w = a.new_tensor([65.481, 128.553, 24.966]).view(1, 3, 1, 1)
    ya, yb = (x.clamp(0, 1).mul(w).sum(1)[:, 4:-4, 4:-4] for x in (a, b))
    return float(10 * math.log10(255 ** 2 / float(((ya - yb) ** 2).mean())))


def train(args, out: Path) -> dict:
    import torch
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(0)
    # one thread: on this shared 2-core machine two busy-waiting OpenMP threads ran a step 8x slower
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    files = training_files(Path(args.data))
    val_files, train_files = files[::20], [f for i, f in enumerate(files) if i % 20]  # every 20th: validation
    images = [_load(f) for f in train_files]
    pool = patches(images, args.per_image, rng)
    val_hr = patches([_load(f) for f in val_files], 8, np.random.default_rng(1))
    vrng = np.random.default_rng(2)
    val_lr = np.stack([degrade(p, vrng) for p in val_hr])
    print(f"training: {len(train_files)} images ({len(pool)} patches of {HR}x{HR}), validation: {len(val_files)} "
          f"images ({len(val_hr)} patches); data ready in {time.perf_counter() - t0:.0f} s", flush=True)
    model = Compact(num_in_ch=3, num_out_ch=3, num_feat=32, num_conv=8, upscale=SCALE, act_type="prelu")
    ema = {k: v.detach().clone() for k, v in model.state_dict().items()}
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.99))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps, eta_min=args.lr / 20)
    vx, vy = _tensor(val_lr), _tensor(val_hr)
    bicubic = _psnr_y(torch.nn.functional.interpolate(vx, scale_factor=SCALE, mode="bicubic"), vy)
    t_train, losses, log = time.perf_counter(), [], []
    for step in range(1, args.steps + 1):
        pick = rng.integers(0, len(pool), args.batch)
        hr = pool[pick]
        flips = rng.integers(0, 8, args.batch)
        hr = np.stack([np.rot90(p[:, ::-1] if f & 4 else p, f & 3) for p, f in zip(hr, flips)])
        lr = np.stack([degrade(p, rng) for p in hr])
        model.train()
        loss = torch.nn.functional.l1_loss(model(_tensor(lr)), _tensor(hr))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        decay = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            for k, v in model.state_dict().items():
                ema[k].mul_(decay).add_(v.detach(), alpha=1 - decay)
        losses.append(float(loss.detach()))
        if step % args.log_every == 0 or step == args.steps:
            shadow = Compact(num_in_ch=3, num_out_ch=3, num_feat=32, num_conv=8, upscale=SCALE, act_type="prelu")
            shadow.load_state_dict(ema)
            with torch.no_grad():
                val = _psnr_y(shadow.eval()(vx), vy)
            row = {"step": step, "loss": float(np.mean(losses[-args.log_every:])), "val_psnr_y": val,
                   "bicubic_psnr_y": bicubic, "seconds": time.perf_counter() - t_train}
            log.append(row)
            print(f"step {step}: L1 {row['loss']:.4f}, validation PSNR-Y {val:.2f} dB (bicubic {bicubic:.2f}), "
                  f"{row['seconds']:.0f} s", flush=True)
    path = out / "compact-x2.pth"
    torch.save({"params_ema": {k: v.contiguous() for k, v in ema.items()}}, path)
    info = {"steps": args.steps, "batch": args.batch, "patch": HR, "train_seconds": time.perf_counter() - t_train,
            "data_seconds": t_train - t0, "images": len(train_files), "patches": len(pool),
            "parameters": sum(p.numel() for p in model.parameters()), "threads": torch.get_num_threads(),
            "log": log, "train_files": [str(f) for f in train_files]}
    (out / "training.json").write_text(json.dumps(info, indent=1))
    print(f"saved {path}: {args.steps} steps in {info['train_seconds']:.0f} s", flush=True)
    return info


# ---- 2. held-out footage, restored -------------------------------------------------------------
def enhance(low: Path, dst: Path, model: str, temporal: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "enhancer", "enhance", str(low), "-o", str(dst), "-m", model,
                    "--temporal", temporal, "--codec", "ffv1", "--pix-fmt", "gbrp", "--audio", "none",
                    "--device", "cpu", "--precision", "fp32", "--overwrite", "-q"], check=True, cwd=ROOT)
    return time.perf_counter() - t0


def measure_item(item: str, args, model: Path, work: Path) -> dict:
    clip, start = item.split("@")
    start, n = int(start), args.frames
    src = Path(args.heldout) / f"{clip}.mkv"
    name = f"{clip}-{start:03d}"
    folder = work / name
    (folder / "truth").mkdir(parents=True, exist_ok=True)
    span = [f for i, f in zip(range(start + n), read_frames(str(src))) if i >= start]
    if len(span) < n:
        raise SystemExit(f"{src} has fewer than {start + n} frames")
    truth = folder / "truth" / f"{name}.mkv"
    _write(np.stack(span), truth)
    degraded_pair(str(truth), n, str(folder))  # enhancer degrade --preset web --scale 2 --seed 1
    low = folder / f"{name}.mkv"
    runs = {"off": (str(model), "off"), "on": (str(model), "on"), "lanczos": ("lanczos", "off")}
    row: dict = {"item": name, "frames": n, "size": f"{span[0].shape[1]}x{span[0].shape[0]}", "methods": {}}
    for method, (m, temporal) in runs.items():
        dst = folder / f"{method}.mkv"
        secs = enhance(low, dst, m, temporal)
        s = evaluate(str(truth), str(dst), metrics=METRICS)
        row["methods"][method] = {k: s.mean(k) for k in METRICS} | {"seconds": secs}
    s = evaluate(str(truth), str(truth), metrics=("warp",))
    row["methods"]["truth"] = {"warp": s.mean("warp")}
    return row


def table(rows: list[dict]) -> str:
    lines = ["| item | method | PSNR-Y (dB) ↑ | tOF ↓ | warping error (1e-3) ↓ |", "|---|---|---|---|---|"]

    def cells(v: dict) -> str:
        f = {"psnr_y": "{:.2f}", "tof": "{:.3f}", "warp": "{:.4f}"}
        return " | ".join(f[k].format(v[k]) if v.get(k) is not None else "" for k in METRICS)

    for r in rows + [mean_row(rows)]:
        for method in ("lanczos", "off", "on", "truth"):
            label = {"off": "model, --temporal off", "on": "model, --temporal on", "lanczos": "lanczos",
                     "truth": "truth (floor)"}[method]
            lines.append(f"| {r['item']} | {label} | {cells(r['methods'][method])} |")
        off, on = r["methods"]["off"], r["methods"]["on"]
        lines.append(f"| {r['item']} | on vs off | {on['psnr_y'] - off['psnr_y']:+.2f} | "
                     f"{100 * (on['tof'] / off['tof'] - 1):+.1f}% | {100 * (on['warp'] / off['warp'] - 1):+.1f}% |")
    return "\n".join(lines)


def mean_row(rows: list[dict]) -> dict:
    methods = {}
    for m in ("lanczos", "off", "on", "truth"):
        keys = METRICS if m != "truth" else ("warp",)
        methods[m] = {k: float(np.mean([r["methods"][m][k] for r in rows])) for k in keys}
    return {"item": f"mean of {len(rows)}", "methods": methods}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--out", default="runs/temporal_field")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--heldout", default="runs/heldout")
    ap.add_argument("--items", default=",".join(ITEMS), help="clip@first_frame, comma-separated")
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--per-image", type=int, default=40, help="training patches cut from each image")
    ap.add_argument("--log-every", type=int, default=250)
    ap.add_argument("--threads", type=int, default=1, help="torch threads for the training")
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--train-only", action="store_true")
    args = ap.parse_args()
    ff.configure()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    args.heldout = str(Path(args.heldout).resolve())
    model = out / "compact-x2.pth"
    if args.retrain or not model.exists():
        train(args, out)
    if args.train_only:
        return
    rows, t0 = [], time.perf_counter()
    for item in args.items.split(","):
        rows.append(measure_item(item.strip(), args, model, out / "items"))
        print(f"{rows[-1]['item']}: done ({time.perf_counter() - t0:.0f} s)", flush=True)
    (out / "results.json").write_text(json.dumps({"rows": rows, "mean": mean_row(rows)}, indent=1))
    print(table(rows))
    m = mean_row(rows)["methods"]
    cut = 1 - m["on"]["warp"] / m["off"]["warp"]
    print(f"\n--temporal on: warping error {m['off']['warp']:.4f} -> {m['on']['warp']:.4f} ({100 * cut:.1f}% lower), "
          f"PSNR-Y {m['off']['psnr_y']:.2f} -> {m['on']['psnr_y']:.2f} dB, tOF {m['off']['tof']:.3f} -> "
          f"{m['on']['tof']:.3f}; {len(rows)} items of {args.frames} frames, {time.perf_counter() - t0:.0f} s")
    print("done when: a cut of at least 25% with PSNR-Y no lower:",
          "yes" if cut >= 0.25 and m["on"]["psnr_y"] >= m["off"]["psnr_y"] else "no")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    main()
