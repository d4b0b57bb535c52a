"""The trainer: :func:`train`, built from small steps you can read in one sitting.

Single process (CPU or one GPU)::

    enhancer train --config configs/general-x2.toml [--resume] [--max-minutes 60]

Several GPUs on one machine (DDP, one process per GPU; rank 0 logs and saves)::

    torchrun --nproc_per_node 4 -m enhancer train --config configs/general-x2.toml

Stage 1 trains the generator on pixel (Charbonnier) and temporal losses: the fidelity model.
Stage 2 starts from a stage-1 checkpoint and adds the perceptual loss (ImageNet features) and the
adversarial loss from a 3D clip discriminator conditioned on the low-quality clip, with feature
matching, and optionally a per-frame image discriminator beside it (MoCoGAN's two
discriminators). Checkpoints hold everything needed to continue exactly (models, EMA,
optimisers, step, RNG state, config); they are written every ``ckpt_every`` steps, at least
every ``ckpt_minutes``, on SIGTERM/Ctrl-C and at the time limit, and ``--resume`` continues the
run as if it had never stopped. Each step's batch is drawn from a generator seeded by (seed,
rank, step), so a batch does not depend on what ran before it, and batches are made on a
background thread while the model trains on the previous one.
"""
from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import queue
import signal
import threading
import time
import zipfile
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from enhancer.train import losses
from enhancer.data.dataset import ClipDataset
from enhancer.errors import EnhancerError
from enhancer.restore.device import select_device
from enhancer.models import (ALIGNED, CONFIGS, FUSION_CONFIGS, ST3D_CONFIGS, Discriminator, DiscriminatorConfig,
                             FrameDiscriminator, FusionConfig, FusionGenerator, Generator, GeneratorConfig, ST3DConfig,
                             ST3DGenerator)
from enhancer.models.blocks import channels_last
from enhancer.progress import bar
from enhancer.train import checkpoint as ckpt
from enhancer.train.config import TrainConfig
from enhancer.restore.weights import arch_of

log = logging.getLogger(__name__)


class TrainingError(EnhancerError):
    """A training run cannot start or continue: bad set, config or checkpoint."""


def build_generator(cfg: TrainConfig) -> nn.Module:
    """The generator a config names: ``small``/``base`` (spatio-temporal, unaligned), ``fusion-*``
    (aligned fusion) or ``st3d-*`` (3D convolutions over aligned stacks), with ``model_overrides``
    applied."""
    if cfg.model in ST3D_CONFIGS:
        base = ST3D_CONFIGS[cfg.model].to_dict()
        base.update(cfg.model_overrides)
        base["scale"] = cfg.scale
        return ST3DGenerator(ST3DConfig(**base))
    if cfg.model in FUSION_CONFIGS:
        base = FUSION_CONFIGS[cfg.model].to_dict()
        base.update(cfg.model_overrides)
        base["scale"] = cfg.scale
        return FusionGenerator(FusionConfig(**base))
    if cfg.model not in CONFIGS:
        raise TrainingError(f"unknown model {cfg.model!r}; one of {', '.join([*CONFIGS, *FUSION_CONFIGS, *ST3D_CONFIGS])}")
    base = CONFIGS[cfg.model].to_dict()
    base.update(cfg.model_overrides)
    base["scale"] = cfg.scale
    return Generator(GeneratorConfig(**base))


def load_initial(g: nn.Module, path: str) -> list[str]:
    """Start ``g`` from the generator (EMA) of a checkpoint or from shipped .safetensors weights.
    Tensors whose shape differs (another scale's output layer) keep their fresh initialisation;
    their names are returned."""
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        source = load_file(path, device="cpu")
    else:
        source = ckpt.load(path)["ema"]
    own = g.state_dict()
    kept = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
    if not kept:
        raise TrainingError("no tensor matches this model", path=path, hint="init_from must be the same architecture")
    g.load_state_dict(kept, strict=False)
    return sorted(set(own) - set(kept))


@dataclass
class _Models:
    g: nn.Module
    ema: nn.Module
    opt_g: torch.optim.Optimizer
    d: nn.Module | None = None  # clip discriminator (stage 2)
    opt_d: torch.optim.Optimizer | None = None
    df: nn.Module | None = None  # frame discriminator (stage 2, optional)
    opt_df: torch.optim.Optimizer | None = None
    perceptual: nn.Module | None = None

    @property
    def fusion(self) -> bool:
        return isinstance(self.g, ALIGNED)

    def state(self) -> dict:
        out = {"generator": self.g.state_dict(), "ema": self.ema.state_dict(), "opt_g": self.opt_g.state_dict()}
        for name in ("d", "df"):
            net, opt = getattr(self, name), getattr(self, f"opt_{name}")
            if net is not None:
                key = "discriminator" if name == "d" else "frame_discriminator"
                out[key], out[f"opt_{name}"] = net.state_dict(), opt.state_dict()
        return out

    def load(self, state: dict) -> None:
        self.g.load_state_dict(state["generator"])
        self.ema.load_state_dict(state["ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        for name in ("d", "df"):
            net, opt = getattr(self, name), getattr(self, f"opt_{name}")
            if net is not None:
                net.load_state_dict(state["discriminator" if name == "d" else "frame_discriminator"])
                opt.load_state_dict(state[f"opt_{name}"])


def _build(cfg: TrainConfig, device: torch.device) -> _Models:
    g = build_generator(cfg).to(device)
    if isinstance(g, ALIGNED):  # NHWC: measured 1.9x faster for a training step on this CPU
        g = channels_last(g)
    if cfg.init_from:
        fresh = load_initial(g, cfg.init_from)
        if fresh:
            log.info(f"init_from {cfg.init_from}: {len(fresh)} tensors start fresh ({', '.join(fresh[:4])}...)")
    ema = copy.deepcopy(g).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    m = _Models(g=g, ema=ema, opt_g=torch.optim.Adam(g.parameters(), lr=cfg.lr_g, betas=cfg.betas_g))
    if cfg.stage == 2:
        dcfg = DiscriminatorConfig(channels=cfg.d_channels)
        m.d = Discriminator(dcfg).to(device)
        m.opt_d = torch.optim.Adam(m.d.parameters(), lr=cfg.lr_d, betas=cfg.betas_d)
        if cfg.frame_discriminator:
            m.df = FrameDiscriminator(dcfg).to(device)
            m.opt_df = torch.optim.Adam(m.df.parameters(), lr=cfg.lr_d, betas=cfg.betas_d)
        if cfg.w_perceptual > 0:
            from enhancer.quality.features import perceptual

            m.perceptual = perceptual(cfg.perceptual_net, allow_random=cfg.allow_random_features).to(device)
    return m


# ---- data ------------------------------------------------------------------------------------
class _Batches:
    """Makes the batches of steps ``first``, ``first + 1``, ... on ``threads`` background threads
    (aligning stacks and cropping overlap with the model's step; DIS flow and the warps release
    the GIL, so beside a GPU several threads keep it fed). Thread j makes the steps congruent to j
    modulo ``threads`` and :meth:`get` takes them in step order; batch k is drawn with a generator
    seeded by (seed, rank, k) alone, so the batches do not depend on the thread count."""

    def __init__(self, data: ClipDataset, cfg: TrainConfig, indices: np.ndarray, radius: int, fusion: bool,
                 rank: int, first: int, threads: int = 1):
        self.data, self.cfg, self.indices, self.radius, self.fusion = data, cfg, indices, radius, fusion
        self.rank, self.first, self.next = rank, first, first
        n = max(1, threads)
        self.queues: list[queue.Queue] = [queue.Queue(maxsize=2) for _ in range(n)]
        self.threads = [threading.Thread(target=self._work, args=(j, first + j, n), name=f"batches-{j}", daemon=True)
                        for j in range(n)]
        self.done = threading.Event()

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def __enter__(self) -> "_Batches":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def make(self, step: int):
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, self.rank, step])
        if self.fusion:
            return self.data.aligned_batch(rng, cfg.batch, self.radius, cfg.frames_out, cfg.crop, indices=self.indices,
                                           misalign=cfg.misalign)
        return self.data.batch(rng, cfg.batch, cfg.frames_out + 2 * self.radius, cfg.frames_out, cfg.crop,
                               indices=self.indices)

    def _work(self, j: int, step: int, stride: int) -> None:
        q = self.queues[j]
        try:
            import cv2

            cv2.setNumThreads(1)  # one core per batch thread, the others for the model
        except BaseException as e:  # handed to the training loop, which raises it
            q.put(e)
            return
        while not self.done.is_set():
            try:
                item = self.make(step)
            except BaseException as e:  # handed to the training loop, which raises it
                item = e
            while not self.done.is_set():
                try:
                    q.put(item, timeout=0.2)
                    break
                except queue.Full:
                    continue
            step += stride

    def get(self):
        item = self.queues[(self.next - self.first) % len(self.queues)].get()
        self.next += 1
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        """Stop, and wait for the batches in the making: a thread still inside OpenCV when the
        interpreter exits aborted the process ("terminate called without an active exception")
        after a finished run."""
        self.done.set()
        for t in self.threads:
            if t.is_alive() and t is not threading.current_thread():
                t.join(timeout=60)


class _Fit:
    """A schedule fitted to a time box: the step rate is measured over ``span`` steps (after
    ``skip`` steps of start-up), then ``cfg.steps`` is set so that the run ends ``fit_minutes``
    after its start, less a margin for validation and checkpoints, and never past the config's
    own ``steps``; the rate is measured again over each tenth of the box that follows and the
    end moved to match (a GPU shared with another run slows down once that run gets going). The
    cosine schedule is a function of ``steps``, so a run cut short by a time limit would never
    finish its decay; this one does. Every rank takes rank 0's figures."""

    skip, span, margin = 20, 100, 0.92

    def __init__(self, cfg: TrainConfig, first: int, t_start: float):
        self.cfg, self.first, self.t_start = cfg, first, t_start
        self.ceiling = cfg.steps
        self.t_a: float | None = None
        self.step_a = first + self.skip
        self.next_at = first + self.skip + self.span  # the step of the next measurement
        self.rate = 0.0
        self.fits = 0

    def measure(self, step: int, world: int, device: torch.device) -> bool:
        if step == self.first + self.skip:
            self.t_a = time.monotonic()
        if step != self.next_at or self.t_a is None:
            return False
        now = time.monotonic()
        self.rate = (step - self.step_a) / max(1e-9, now - self.t_a)
        left = self.cfg.fit_minutes * 60 - (now - self.t_start)
        steps = min(self.ceiling, step + max(1, int(self.margin * left * self.rate)))
        # measure again after a tenth of the box (in steps at this rate), unless the end is near
        again = step + max(self.span, int(self.rate * self.cfg.fit_minutes * 6))
        plan = torch.tensor([max(step + 1, steps), again if again + (again - step) < steps else -1], device=device)
        if world > 1:  # every rank ends, and measures again, at rank 0's steps (collectives stay in step)
            dist.broadcast(plan, 0)
        self.cfg.steps, self.next_at = int(plan[0].item()), int(plan[1].item())
        self.t_a, self.step_a = now, step
        self.fits += 1
        return True


def _loader_threads(cfg: TrainConfig, device: torch.device, world: int) -> int:
    """Batch threads: the config's, else 1 on the CPU (the cores train the model) and, beside a
    GPU, up to 8 of this process's share of the cores."""
    if cfg.loader_threads > 0:
        return cfg.loader_threads
    if device.type != "cuda":
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 2)
    return max(1, min(8, cores // max(1, world) - 1))


def _generate(g: nn.Module, lq: torch.Tensor, fusion: bool) -> torch.Tensor:
    """The generator on a batch: clips (B, 3, T + 2r, h, w) or stacks (B, T, 3 (2r + 1), h, w)
    -> (B, 3, T, sh, sw)."""
    if not fusion:
        return g(lq)
    b, t = lq.shape[:2]
    out = g(lq.flatten(0, 1).contiguous(memory_format=torch.channels_last))  # (B*T, 3, sh, sw)
    return out.reshape(b, t, *out.shape[1:]).transpose(1, 2)


def _centre(lq: torch.Tensor, radius: int, frames_out: int, fusion: bool) -> torch.Tensor:
    """The low-quality centre frames of a batch, (B, 3, T, h, w)."""
    if fusion:
        return lq[:, :, 3 * radius:3 * radius + 3].transpose(1, 2)
    return lq[:, :, radius:radius + frames_out]


def _upscaled(centre: torch.Tensor, scale: int) -> torch.Tensor:
    """(B, 3, T, h, w) -> bicubic (B, 3, T, sh, sw): the discriminators' condition."""
    b, _, t, h, w = centre.shape
    up = losses.frames_of(centre)
    if scale > 1:
        up = F.interpolate(up, scale_factor=scale, mode="bicubic", align_corners=False)
    return up.reshape(b, t, 3, h * scale, w * scale).transpose(1, 2)


# ---- one step --------------------------------------------------------------------------------
def _lr(cfg: TrainConfig, base: float, step: int, cycle: int = 0) -> float:
    """Warm-up then cosine decay from step ``cycle`` (0; a time-boxed window resuming a run starts
    a new cycle at its first step: a warm restart, not a jump back into a finished decay)."""
    step -= cycle
    if step < cfg.warmup:
        return base * (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(1, cfg.steps - cycle - cfg.warmup)
    return base * (cfg.lr_min_ratio + (1 - cfg.lr_min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


def _d_steps(m: _Models, d_nets, out: torch.Tensor, hr: torch.Tensor, cond: torch.Tensor, cfg: TrainConfig,
             amp) -> dict:
    """One update of each discriminator on real and (detached) generated clips."""
    terms = {}
    for name, net, opt in d_nets:
        with amp():
            if name == "d":
                real, _ = net(hr, cond)
                fake, _ = net(out.detach(), cond)
            else:
                real, _ = net(losses.frames_of(hr), losses.frames_of(cond))
                fake, _ = net(losses.frames_of(out.detach()), losses.frames_of(cond))
        loss = losses.d_loss(real.float(), fake.float(), cfg.adv_loss)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        terms[name] = loss.detach()
    return terms


def _g_terms(m: _Models, d_nets, out: torch.Tensor, hr: torch.Tensor, cond: torch.Tensor | None, cfg: TrainConfig,
             amp) -> dict:
    """The generator's loss terms (unweighted)."""
    terms = {"pixel": losses.charbonnier(out, hr), "temporal": losses.temporal_loss(out, hr)}
    for name, net, _ in d_nets:
        with amp():
            if name == "d":
                fake, fake_feats = net(out, cond)
                with torch.no_grad():
                    _, real_feats = net(hr, cond)
            else:
                fake, fake_feats = net(losses.frames_of(out), losses.frames_of(cond))
                with torch.no_grad():
                    _, real_feats = net(losses.frames_of(hr), losses.frames_of(cond))
        suffix = "" if name == "d" else "_frame"
        terms["adv" + suffix] = losses.g_adv_loss(fake.float(), cfg.adv_loss)
        terms["feature_match" + suffix] = losses.feature_matching([f.float() for f in real_feats],
                                                                  [f.float() for f in fake_feats])
    if m.perceptual is not None:
        terms["perceptual"] = losses.perceptual_loss(m.perceptual, out, hr)
    return terms


def _weighted(terms: dict, cfg: TrainConfig) -> torch.Tensor:
    weights = {"pixel": cfg.w_pixel, "temporal": cfg.w_temporal, "adv": cfg.w_adv,
               "feature_match": cfg.w_feature_match, "adv_frame": cfg.w_adv * cfg.frame_weight,
               "feature_match_frame": cfg.w_feature_match * cfg.frame_weight, "perceptual": cfg.w_perceptual}
    return sum(weights[k] * v for k, v in terms.items() if k in weights)


def _ema_update(m: _Models, cfg: TrainConfig, step: int) -> None:
    with torch.no_grad():
        decay = min(cfg.ema, (1 + step) / (10 + step))
        for pe, pg in zip(m.ema.parameters(), m.g.parameters()):
            pe.lerp_(pg.detach(), 1 - decay)


# ---- validation ------------------------------------------------------------------------------
@torch.no_grad()
def validate(model: nn.Module, data: ClipDataset, indices: np.ndarray, cfg: TrainConfig, device: torch.device,
             grid_path: Path | None = None) -> dict:
    """PSNR-Y of ``model`` and of bicubic on the fixed validation sequences: ``enhancer
    evaluate``'s figure (:func:`enhancer.quality.evaluate.psnr_y` of each 8-bit frame, the mean over all
    frames) on whole frames, a border of 2 * scale left out."""
    from enhancer.quality.evaluate import psnr_y
    from enhancer.models.align import align_stacks

    model.eval()
    fusion = isinstance(model, ALIGNED)
    r = model.temporal_radius
    frames_in = min(data.frames, cfg.frames_out + 2 * r)
    b = cfg.scale * 2
    to8 = lambda x: (x.clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1).numpy())  # noqa: E731
    ours, bic = [], []
    for k, i in enumerate(indices):
        lq_np = np.asarray(data.damaged(i)[:frames_in])
        hr = np.asarray(data.clean(i)[r:frames_in - r])  # (T, H, W, 3) uint8
        if fusion:
            stacks = align_stacks(lq_np.astype(np.float32) / 255, r)
            x = torch.from_numpy(stacks).permute(0, 1, 4, 2, 3).flatten(1, 2)
            out = model(x.to(device)).float().cpu()  # (T, 3, sH, sW)
        else:
            x = torch.from_numpy(lq_np).permute(3, 0, 1, 2)[None].float().div(255)
            out = model(x.to(device)).float().cpu()[0].transpose(0, 1)
        centre = torch.from_numpy(lq_np[r:frames_in - r]).permute(0, 3, 1, 2).float().div(255)
        up = F.interpolate(centre, scale_factor=cfg.scale, mode="bicubic", align_corners=False) \
            if cfg.scale > 1 else centre
        o8, u8 = to8(out), to8(up)
        inner = (slice(b, -b), slice(b, -b))
        ours += [psnr_y(h[inner], o[inner]) for h, o in zip(hr, o8)]
        bic += [psnr_y(h[inner], u[inner]) for h, u in zip(hr, u8)]
        if k == 0 and grid_path is not None:
            import cv2

            t = len(o8) // 2
            lq_big = cv2.resize(lq_np[r + t], hr.shape[2:0:-1], interpolation=cv2.INTER_NEAREST)
            grid_path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(grid_path), np.concatenate([lq_big, o8[t], hr[t]], axis=1)[..., ::-1])
    model.train()
    return {"val_psnr_y": float(np.mean(ours)), "val_psnr_y_bicubic": float(np.mean(bic))}


# ---- the run ---------------------------------------------------------------------------------
class _StopFlag:
    def __init__(self) -> None:
        self.stop = False
        self.why = ""

    def __call__(self, signum, frame) -> None:
        self.stop = True
        self.why = signal.Signals(signum).name


@contextlib.contextmanager
def _stop_on_signals(flag: _StopFlag):
    """SIGTERM and Ctrl-C raise ``flag`` (the loop then saves and stops) while the run lasts; the
    handlers before it are put back after. Signals reach only the main thread: elsewhere, nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {s: signal.signal(s, flag) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def _distributed() -> tuple[int, int, torch.device]:
    """(rank, world size, this process's device). Under torchrun the device is the local rank's
    GPU, and the process group is initialised (NCCL between GPUs, gloo on CPUs)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0")) if world > 1 else 0
    device = select_device("auto", local_rank=local)
    if world == 1:
        return 0, 1, device
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), world, device


_PREPARE_HINT = "make one with `enhancer prepare`"


def _check_set(path: str | Path) -> None:
    """Refuse, before it is loaded, a file that is not a training set as `enhancer prepare`
    writes one: an .npz (zip) archive holding the arrays hr and lq."""
    p = Path(path)
    if not p.exists():
        raise TrainingError("no such training set", path=str(p), hint=_PREPARE_HINT)
    if p.is_dir():
        raise TrainingError("is a folder, not a training set", path=str(p), hint="give the .npz that `enhancer "
                            "prepare` wrote")
    try:
        with zipfile.ZipFile(p) as z:
            names = set(z.namelist())
    except (zipfile.BadZipFile, OSError):
        raise TrainingError("not a training set: not an .npz archive, or one cut short", path=str(p),
                            hint=_PREPARE_HINT) from None
    if not {"hr.npy", "lq.npy"} <= names:
        raise TrainingError("not a training set: an .npz without the arrays hr and lq", path=str(p),
                            hint=_PREPARE_HINT)


def _load_data(cfg: TrainConfig) -> tuple[ClipDataset, np.ndarray, np.ndarray]:
    paths = [cfg.data] if isinstance(cfg.data, (str, Path)) else list(cfg.data)
    for p in paths:
        _check_set(p)
    where = ", ".join(map(str, paths))
    try:
        data = ClipDataset(cfg.data)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:  # damaged inside its archive
        raise TrainingError(f"the training set is corrupt ({type(e).__name__}: {e})", path=where,
                            hint=_PREPARE_HINT) from None
    except (ValueError, KeyError) as e:
        raise TrainingError(f"cannot read the training set ({e})", path=where, hint=_PREPARE_HINT) from None
    if len(data) <= cfg.val_sequences:
        raise TrainingError(f"the training set has {len(data)} sequences; need more than val_sequences",
                            path=where)
    if data.scale != cfg.scale:
        raise TrainingError(f"the training set is x{data.scale}, the config asks for x{cfg.scale}", path=where)
    return data, np.arange(0, len(data) - cfg.val_sequences), np.arange(len(data) - cfg.val_sequences, len(data))


# what may change between runs: length, logging, where the run and its data live (a window on a
# GPU machine prepares a new set each time, and more media can join a run)
RESUMABLE_CHANGES = frozenset({"steps", "threads", "loader_threads", "fit_minutes", "val_every", "ckpt_every",
                               "ckpt_minutes", "log_every", "run_dir", "data"})


def _resume(m: _Models, cfg: TrainConfig, run: Path) -> int:
    """Load the run's last checkpoint; returns its step."""
    state = ckpt.load(run / "last.pt")
    now, then, defaults = cfg.to_dict(), state["config"], TrainConfig().to_dict()
    # an option added to enhancer after the checkpoint was written counts as unchanged at its default
    changed = sorted(k for k in now if then.get(k, defaults[k]) != now[k])
    if set(changed) - RESUMABLE_CHANGES:
        raise TrainingError(f"--resume with a different config ({', '.join(changed)} changed)", path=str(run))
    m.load(state)
    torch.set_rng_state(state["torch_rng"])
    return int(state["step"])


class _Trainer:
    """One process's part of a training run, in the order things happen:

    * :meth:`__init__` sets up: the process group and device, the data, the models and their
      optimisers (resumed from the run's checkpoint when asked);
    * :meth:`run` opens the run folder and loops, each step being :meth:`_step` (stage 2's
      discriminator updates, then the generator's update and its EMA), :meth:`_refit`
      (``fit_minutes``), :meth:`_log` (a row of the curve in log.jsonl, validation included)
      and :meth:`_checkpoint` (save when due, stop when asked or out of time).

    Rank 0 alone writes (log, validation images, checkpoints); every rank takes the same decisions
    to stop, save and end (collectives stay in step)."""

    def __init__(self, cfg: TrainConfig, *, resume: bool, max_minutes: float | None):
        self.cfg, self.max_minutes = cfg, max_minutes
        self.rank, self.world, self.device = _distributed()
        self.main = self.rank == 0
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.use_amp = cfg.amp == "bf16" or (cfg.amp == "auto" and self.device.type == "cuda")
        self.run_dir = Path(cfg.run_dir)
        torch.manual_seed(cfg.seed)
        self.data, self.train_idx, self.val_idx = _load_data(cfg)
        self.m = _build(cfg, self.device)
        self.step = 0
        if resume and ckpt.latest(self.run_dir) is not None:
            self.step = _resume(self.m, cfg, self.run_dir)
        elif resume and self.main:
            log.info(f"no checkpoint in {self.run_dir}; starting a new run")
        ddp = torch.nn.parallel.DistributedDataParallel if self.world > 1 else (lambda net: net)
        self.g_train = ddp(self.m.g)
        self.d_nets = [(name, ddp(net), opt) for name, net, opt in
                       (("d", self.m.d, self.m.opt_d), ("df", self.m.df, self.m.opt_df)) if net is not None]
        self.radius = self.m.g.temporal_radius
        self.threads = _loader_threads(cfg, self.device, self.world)
        self.stopper = _StopFlag()
        self.fit: _Fit | None = None  # fit_minutes: set when the clock starts
        self.cycle = 0  # the step the learning-rate schedule starts from
        self.last: dict = {}  # the latest logged numbers: log.jsonl's last row, the checkpoint's metrics
        self.t_start = self.t_saved = self.t_log = 0.0

    def _amp(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_amp)

    def run(self, progress: bool) -> dict:
        """Train up to ``cfg.steps`` (or until stopped); returns the last logged numbers."""
        cfg = self.cfg
        with _stop_on_signals(self.stopper):
            if self.main:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                (self.run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
            self.t_start = self.t_saved = time.monotonic()
            if cfg.fit_minutes > 0:
                self.fit = _Fit(cfg, self.step, self.t_start)
                self.cycle = self.step  # each time-boxed window is one warm restart of the schedule
            with _Batches(self.data, cfg, self.train_idx, self.radius, self.m.fusion, self.rank, self.step,
                          self.threads) as batches, \
                    bar(total=cfg.steps, desc=f"train stage {cfg.stage}", unit="step",
                        enabled=progress and self.main) as pb:
                pb.update(self.step)
                self.t_log = time.monotonic()
                while self.step < cfg.steps:
                    loss_g, terms = self._step(batches.get())
                    pb.update(1)
                    if self._refit():
                        pb.total = cfg.steps
                    self._log(loss_g, terms, pb)
                    if self._checkpoint():
                        break
        self.last.setdefault("step", self.step)
        return self.last

    def _set_lr(self) -> None:
        cfg, m = self.cfg, self.m
        for opt, base in ((m.opt_g, cfg.lr_g), (m.opt_d, cfg.lr_d), (m.opt_df, cfg.lr_d)):
            for group in (opt.param_groups if opt is not None else []):
                group["lr"] = _lr(cfg, base, self.step, self.cycle)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        """One step on ``batch`` (low-quality input, clean target): the learning rates, stage 2's
        discriminator updates, the generator's update and its EMA. Returns the generator's
        weighted loss and every term (the discriminators' losses as ``d`` and ``df``)."""
        cfg, m = self.cfg, self.m
        self._set_lr()
        lq, hr = (x.to(self.device, non_blocking=True) for x in batch)
        with self._amp():
            out = _generate(self.g_train, lq, m.fusion)  # (B, 3, T, sH, sW)
        out = out.float()
        cond = _upscaled(_centre(lq, self.radius, cfg.frames_out, m.fusion), cfg.scale) if self.d_nets else None
        d_terms = _d_steps(m, self.d_nets, out, hr, cond, cfg, self._amp) if self.d_nets else {}
        terms = _g_terms(m, self.d_nets, out, hr, cond, cfg, self._amp)
        loss_g = _weighted(terms, cfg)
        m.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(m.g.parameters(), cfg.grad_clip)
        m.opt_g.step()
        _ema_update(m, cfg, self.step)
        self.step += 1
        return loss_g, {**terms, **d_terms}

    def _refit(self) -> bool:
        """``fit_minutes``: measure the step rate when due and move the schedule's end; True when
        it moved."""
        fit = self.fit
        if fit is None or not fit.measure(self.step, self.world, self.device):
            return False
        if self.main and fit.fits == 1:
            log.info(f"fit_minutes {self.cfg.fit_minutes:g}: {fit.rate:.1f} steps/s ({self.threads} batch threads); "
                     f"the schedule now ends at step {self.cfg.steps}")
        return True

    def _log(self, loss_g: torch.Tensor, terms: dict, pb) -> None:
        """Rank 0: the losses every ``log_every`` steps, validation every ``val_every`` steps
        (both at the last step), appended to log.jsonl as one row per step that has either."""
        if not self.main:
            return
        cfg, step = self.cfg, self.step
        if step % cfg.log_every == 0 or step == cfg.steps:
            now = time.monotonic()
            self.last = {"step": step, "lr_g": self.m.opt_g.param_groups[0]["lr"], "loss_g": loss_g.item(),
                         **{k: float(v.detach()) for k, v in terms.items()},
                         "sec_per_step": (now - self.t_log) / cfg.log_every}
            self.t_log = now
            pb.set_postfix(loss=f"{self.last['loss_g']:.4f}")
        if step % cfg.val_every == 0 or step == cfg.steps:
            self.last.update(validate(self.m.ema, self.data, self.val_idx, cfg, self.device,
                                      self.run_dir / "val" / f"step{step:06d}.png"))
            self.last["step"] = step
            self._keep_best()
        if self.last.get("step") == step:
            with open(self.run_dir / "log.jsonl", "a") as f:
                f.write(json.dumps(self.last) + "\n")

    def _keep_best(self) -> None:
        """Write the EMA generator as ``best.safetensors`` (fp16) when validation PSNR-Y is the
        best this run has seen: the small file a milestone commits so another machine continues."""
        best_json, best_file = self.run_dir / "best.json", self.run_dir / "best.safetensors"
        best = -1.0
        if best_file.exists():  # the file's own card is the record (best.json, written after it, may lag a kill)
            from enhancer.restore.weights import read_card

            try:
                best = float(read_card(best_file).metrics.get("val_psnr_y", -1.0))
            except EnhancerError:  # an unreadable file is replaced
                pass
        if self.last["val_psnr_y"] <= best:
            return
        from enhancer.train.export import export_state

        state = {"ema": self.m.ema.state_dict(), "config": self.cfg.to_dict(), "step": self.step,
                 "model_config": asdict(self.m.g.config), "arch": arch_of(self.m.g),
                 "metrics": {k: v for k, v in self.last.items() if k.startswith("val_")}}
        export_state(state, self.run_dir / "best.safetensors", half=True)
        best_json.write_text(json.dumps({"step": self.step, **state["metrics"]}))

    def _checkpoint(self) -> bool:
        """Save when due (every ``ckpt_every`` steps, at least every ``ckpt_minutes``, at the last
        step) or when stopping (a signal, ``max_minutes``); every rank decides at the same step.
        True: stop now."""
        cfg = self.cfg
        now = time.monotonic()
        due = self.step % cfg.ckpt_every == 0 or self.step == cfg.steps or now - self.t_saved > cfg.ckpt_minutes * 60
        over_time = self.max_minutes is not None and now - self.t_start > self.max_minutes * 60
        flags = torch.tensor([int(self.stopper.stop or over_time), int(due)], device=self.device)
        if self.world > 1:
            dist.all_reduce(flags)  # every rank stops and saves at the same step
        stop, due = bool(flags[0].item()), bool(flags[1].item())
        if due or stop:
            self._save()
            self.t_saved = time.monotonic()
        if stop and self.main:
            why = self.stopper.why or f"the {self.max_minutes}-minute limit"
            # a warning (shown with -q too): the run did not finish, and this says how to go on
            log.warning(f"stopped at step {self.step} ({why}); checkpoint {self.run_dir / 'last.pt'}; "
                        "continue with --resume")
        return stop

    def _save(self) -> None:
        """Rank 0 writes last.pt: all that ``--resume`` needs to continue exactly."""
        if self.main:
            ckpt.save(self.run_dir / "last.pt",
                      {**self.m.state(), "step": self.step, "torch_rng": torch.get_rng_state(),
                       "config": self.cfg.to_dict(), "model_config": asdict(self.m.g.config),
                       "arch": arch_of(self.m.g), "metrics": self.last})


def train(cfg: TrainConfig, *, resume: bool = False, max_minutes: float | None = None,
          progress: bool = True) -> dict:
    """Run (or continue) a training run; returns the last logged numbers."""
    return _Trainer(cfg, resume=resume, max_minutes=max_minutes).run(progress)
