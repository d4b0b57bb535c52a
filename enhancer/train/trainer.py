"""The trainer, one straight function: :func:`train`.

Single process (CPU or one GPU)::

    enhancer train --config configs/general-x2.toml [--resume] [--max-minutes 60]

Several GPUs on one machine (DDP, one process per GPU; rank 0 logs and saves)::

    torchrun --nproc_per_node 4 -m enhancer train --config configs/general-x2.toml

Stage 1 trains the generator on pixel (Charbonnier) and temporal losses: the fidelity model.
Stage 2 starts from a stage-1 checkpoint and adds the perceptual loss (ImageNet features) and the
adversarial loss from a 3D clip discriminator conditioned on the low-quality clip, with feature
matching. Checkpoints hold everything needed to continue exactly (models, EMA, optimisers, step,
RNG states, config); they are written every ``ckpt_every`` steps, on SIGTERM/Ctrl-C and at the
time limit, and ``--resume`` continues the run as if it had never stopped.
"""
from __future__ import annotations

import copy
import json
import math
import os
import signal
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from enhancer import losses
from enhancer.data.dataset import ClipDataset
from enhancer.models import Discriminator, Generator, GeneratorConfig
from enhancer.models.generator import CONFIGS
from enhancer.progress import bar
from enhancer.train import checkpoint as ckpt
from enhancer.train.config import TrainConfig


def _distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank); initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    if world > 1:
        return dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0"))
    return 0, 1, 0


def build_generator(cfg: TrainConfig) -> Generator:
    base = CONFIGS[cfg.model].to_dict()
    base.update(cfg.model_overrides)
    base["scale"] = cfg.scale
    return Generator(GeneratorConfig(**base))


def psnr_y(a: torch.Tensor, b: torch.Tensor, border: int = 0) -> float:
    """PSNR on BT.601 luma of (.., 3, H, W) tensors in [0, 1]."""
    w = torch.tensor([65.481, 128.553, 24.966], device=a.device).view(3, 1, 1) / 255
    ya, yb = (a.clamp(0, 1) * w).sum(-3), (b * w).sum(-3)
    if border:
        ya, yb = ya[..., border:-border, border:-border], yb[..., border:-border, border:-border]
    mse = (ya - yb).pow(2).mean().item()
    return 10 * math.log10(1 / mse) if mse > 0 else float("inf")


class _StopFlag:
    def __init__(self) -> None:
        self.stop = False
        self.why = ""

    def __call__(self, signum, frame) -> None:
        self.stop = True
        self.why = signal.Signals(signum).name


def _lr(cfg: TrainConfig, base: float, step: int) -> float:
    if step < cfg.warmup:
        return base * (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return base * (cfg.lr_min_ratio + (1 - cfg.lr_min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


@torch.no_grad()
def validate(model: Generator, data: ClipDataset, indices: np.ndarray, cfg: TrainConfig, device: torch.device,
             grid_path: Path | None = None) -> dict:
    """PSNR-Y of ``model`` and of bicubic on the fixed validation sequences (whole frames)."""
    model.eval()
    r = model.temporal_radius
    frames_in = min(data.frames, cfg.frames_out + 2 * r)
    ours, bic = [], []
    for k, i in enumerate(indices):
        lq = torch.from_numpy(np.asarray(data.lq[i, 0, :frames_in])).permute(3, 0, 1, 2)[None].float().div(255)
        hr = torch.from_numpy(np.asarray(data.hr[i, r:frames_in - r])).permute(3, 0, 1, 2)[None].float().div(255)
        out = model(lq.to(device)).float().cpu()
        centre = losses.frames_of(lq[:, :, r:frames_in - r])
        up = F.interpolate(centre, scale_factor=cfg.scale, mode="bicubic", align_corners=False)
        ours.append(psnr_y(losses.frames_of(out), losses.frames_of(hr), border=cfg.scale * 2))
        bic.append(psnr_y(up, losses.frames_of(hr), border=cfg.scale * 2))
        if k == 0 and grid_path is not None:
            t = out.shape[2] // 2
            lq_big = F.interpolate(centre[t:t + 1], scale_factor=cfg.scale, mode="nearest")
            row = torch.cat([lq_big[0], out[0, :, t].clamp(0, 1), hr[0, :, t]], dim=2)
            img = (row.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
            import cv2

            grid_path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(grid_path), img[..., ::-1])
    model.train()
    return {"val_psnr_y": float(np.mean(ours)), "val_psnr_y_bicubic": float(np.mean(bic))}


def train(cfg: TrainConfig, *, resume: bool = False, max_minutes: float | None = None,
          progress: bool = True) -> dict:
    """Run (or continue) a training run; returns the last logged numbers."""
    rank, world, local = _distributed()
    main = rank == 0
    device = torch.device(f"cuda:{local}" if torch.cuda.is_available() else "cpu")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    use_amp = cfg.amp == "bf16" or (cfg.amp == "auto" and device.type == "cuda")
    run = Path(cfg.run_dir)
    torch.manual_seed(cfg.seed)

    data = ClipDataset(cfg.data)
    if len(data) <= cfg.val_sequences:
        raise ValueError(f"the training set has {len(data)} sequences; need more than val_sequences")
    train_idx = np.arange(0, len(data) - cfg.val_sequences)
    val_idx = np.arange(len(data) - cfg.val_sequences, len(data))
    if data.scale != cfg.scale:
        raise ValueError(f"the training set is x{data.scale}, the config asks for x{cfg.scale}")

    g = build_generator(cfg).to(device)
    d = Discriminator().to(device) if cfg.stage == 2 else None
    if cfg.init_from:
        g.load_state_dict(ckpt.load(cfg.init_from)["ema"])
    ema = copy.deepcopy(g).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    opt_g = torch.optim.Adam(g.parameters(), lr=cfg.lr_g, betas=cfg.betas_g)
    opt_d = torch.optim.Adam(d.parameters(), lr=cfg.lr_d, betas=cfg.betas_d) if d is not None else None
    perceptual = None
    if cfg.stage == 2 and cfg.w_perceptual > 0:
        from enhancer.features import perceptual as get_perceptual

        perceptual = get_perceptual(cfg.perceptual_net, allow_random=cfg.allow_random_features).to(device)
    rng = np.random.default_rng(cfg.seed + 1000 * rank)
    step = 0
    last_path = ckpt.latest(run)
    if resume and last_path is not None:
        state = ckpt.load(last_path)
        if state["config"] != cfg.to_dict():
            changed = sorted(k for k in cfg.to_dict() if state["config"].get(k) != cfg.to_dict()[k])
            if set(changed) - {"steps", "threads", "val_every", "ckpt_every", "log_every"}:
                raise ValueError(f"--resume with a different config ({', '.join(changed)} changed)")
        g.load_state_dict(state["generator"])
        ema.load_state_dict(state["ema"])
        opt_g.load_state_dict(state["opt_g"])
        if d is not None:
            d.load_state_dict(state["discriminator"])
            opt_d.load_state_dict(state["opt_d"])
        step = int(state["step"])
        torch.set_rng_state(state["torch_rng"])
        rng.bit_generator.state = json.loads(state["numpy_rng"][rank] if world > 1 else state["numpy_rng"][0])
    elif resume and main:
        print(f"no checkpoint in {run}; starting a new run", flush=True)

    g_train = torch.nn.parallel.DistributedDataParallel(g) if world > 1 else g
    d_train = torch.nn.parallel.DistributedDataParallel(d) if (world > 1 and d is not None) else d
    frames_in = cfg.frames_out + 2 * g.temporal_radius
    stopper = _StopFlag()
    old_handlers = {s: signal.signal(s, stopper) for s in (signal.SIGTERM, signal.SIGINT)} \
        if threading_main() else {}
    log_path = run / "log.jsonl"
    if main:
        run.mkdir(parents=True, exist_ok=True)
        (run / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
    t_start = time.monotonic()
    last: dict = {}

    def save(tag: str = "last") -> None:
        rngs = [json.dumps(rng.bit_generator.state)]
        if world > 1:
            gathered: list = [None] * world
            dist.all_gather_object(gathered, rngs[0])
            rngs = gathered
        if not main:
            return
        state = {"generator": g.state_dict(), "ema": ema.state_dict(), "opt_g": opt_g.state_dict(), "step": step,
                 "torch_rng": torch.get_rng_state(), "numpy_rng": rngs, "config": cfg.to_dict(),
                 "model_config": asdict(g.config), "metrics": last}
        if d is not None:
            state["discriminator"] = d.state_dict()
            state["opt_d"] = opt_d.state_dict()
        ckpt.save(run / f"{tag}.pt", state)

    try:
        with bar(total=cfg.steps, desc=f"train stage {cfg.stage}", unit="step", enabled=progress and main) as pb:
            pb.update(step)
            t_log = time.monotonic()
            while step < cfg.steps:
                for group in opt_g.param_groups:
                    group["lr"] = _lr(cfg, cfg.lr_g, step)
                if opt_d is not None:
                    for group in opt_d.param_groups:
                        group["lr"] = _lr(cfg, cfg.lr_d, step)
                lq, hr = data.batch(rng, cfg.batch, frames_in, cfg.frames_out, cfg.crop, indices=train_idx)
                lq, hr = lq.to(device, non_blocking=True), hr.to(device, non_blocking=True)
                r = g.temporal_radius
                cond = None
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                    out = g_train(lq)  # (B, 3, T, sH, sW)
                out = out.float()
                terms = {"pixel": losses.charbonnier(out, hr), "temporal": losses.temporal_loss(out, hr)}
                if d is not None:
                    centre = losses.frames_of(lq[:, :, r:r + cfg.frames_out])
                    cond = F.interpolate(centre, scale_factor=cfg.scale, mode="bicubic", align_corners=False)
                    cond = cond.reshape(lq.shape[0], cfg.frames_out, 3, *hr.shape[-2:]).transpose(1, 2)
                    # discriminator step
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                        real_logits, _ = d_train(hr, cond)
                        fake_logits, _ = d_train(out.detach(), cond)
                    loss_d = losses.d_loss(real_logits.float(), fake_logits.float(), cfg.adv_loss)
                    opt_d.zero_grad(set_to_none=True)
                    loss_d.backward()
                    opt_d.step()
                    terms["d"] = loss_d.detach()
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                        fake_logits, fake_feats = d_train(out, cond)
                        with torch.no_grad():
                            _, real_feats = d_train(hr, cond)
                    terms["adv"] = losses.g_adv_loss(fake_logits.float(), cfg.adv_loss)
                    terms["feature_match"] = losses.feature_matching([f.float() for f in real_feats],
                                                                     [f.float() for f in fake_feats])
                    if perceptual is not None:
                        terms["perceptual"] = losses.perceptual_loss(perceptual, out, hr)
                loss_g = cfg.w_pixel * terms["pixel"] + cfg.w_temporal * terms["temporal"]
                if d is not None:
                    loss_g = loss_g + cfg.w_adv * terms["adv"] + cfg.w_feature_match * terms["feature_match"]
                    if "perceptual" in terms:
                        loss_g = loss_g + cfg.w_perceptual * terms["perceptual"]
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(g.parameters(), cfg.grad_clip)
                opt_g.step()
                with torch.no_grad():
                    decay = min(cfg.ema, (1 + step) / (10 + step))
                    for pe, pg in zip(ema.parameters(), g.parameters()):
                        pe.lerp_(pg.detach(), 1 - decay)
                step += 1
                pb.update(1)
                if main and (step % cfg.log_every == 0 or step == cfg.steps):
                    now = time.monotonic()
                    last = {"step": step, "lr_g": opt_g.param_groups[0]["lr"], "loss_g": loss_g.item(),
                            **{k: float(v.detach()) for k, v in terms.items()},
                            "sec_per_step": (now - t_log) / cfg.log_every}
                    t_log = now
                    pb.set_postfix(loss=f"{float(loss_g):.4f}")
                if main and (step % cfg.val_every == 0 or step == cfg.steps):
                    last.update(validate(ema, data, val_idx, cfg, device, run / "val" / f"step{step:06d}.png"))
                    last["step"] = step
                if main and last.get("step") == step:
                    with open(log_path, "a") as f:
                        f.write(json.dumps(last) + "\n")
                if step % cfg.ckpt_every == 0 or step == cfg.steps:
                    save()
                over_time = max_minutes is not None and (time.monotonic() - t_start) > max_minutes * 60
                if world > 1:
                    flag = torch.tensor([int(stopper.stop or over_time)], device=device)
                    dist.all_reduce(flag)
                    stop_now = bool(flag.item())
                else:
                    stop_now = stopper.stop or over_time
                if stop_now:
                    save()
                    if main:
                        why = stopper.why or f"the {max_minutes}-minute limit"
                        print(f"stopped at step {step} ({why}); checkpoint {run / 'last.pt'}; "
                              "continue with --resume", flush=True)
                    break
    finally:
        for s, h in old_handlers.items():
            signal.signal(s, h)
    last.setdefault("step", step)
    return last


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
