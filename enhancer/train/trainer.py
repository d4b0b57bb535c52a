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

import copy
import json
import math
import os
import queue
import signal
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from enhancer import losses
from enhancer.data.dataset import ClipDataset
from enhancer.errors import EnhancerError
from enhancer.models import (CONFIGS, FUSION_CONFIGS, Discriminator, DiscriminatorConfig, FrameDiscriminator,
                             FusionConfig, FusionGenerator, Generator, GeneratorConfig)
from enhancer.progress import bar
from enhancer.train import checkpoint as ckpt
from enhancer.train.config import TrainConfig


class TrainingError(EnhancerError):
    """A training run cannot start or continue: bad set, config or checkpoint."""


def _distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank); initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    if world > 1:
        return dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0"))
    return 0, 1, 0


def build_generator(cfg: TrainConfig) -> nn.Module:
    """The generator a config names: ``small``/``base`` (spatio-temporal) or ``fusion-*``
    (aligned fusion), with ``model_overrides`` applied."""
    if cfg.model in FUSION_CONFIGS:
        base = FUSION_CONFIGS[cfg.model].to_dict()
        base.update(cfg.model_overrides)
        base["scale"] = cfg.scale
        return FusionGenerator(FusionConfig(**base))
    if cfg.model not in CONFIGS:
        raise TrainingError(f"unknown model {cfg.model!r}; one of {', '.join([*CONFIGS, *FUSION_CONFIGS])}")
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
        return isinstance(self.g, FusionGenerator)

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
    if isinstance(g, FusionGenerator):  # NHWC: measured 1.9x faster for a training step on this CPU
        g = g.to(memory_format=torch.channels_last)
    if cfg.init_from:
        fresh = load_initial(g, cfg.init_from)
        if fresh:
            print(f"init_from {cfg.init_from}: {len(fresh)} tensors start fresh ({', '.join(fresh[:4])}...)",
                  flush=True)
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
            from enhancer.features import perceptual

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

    def make(self, step: int):
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, self.rank, step])
        if self.fusion:
            return self.data.aligned_batch(rng, cfg.batch, self.radius, cfg.frames_out, cfg.crop, indices=self.indices)
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
    """PSNR-Y (as ``enhancer evaluate`` computes it, on 8-bit frames) of ``model`` and of bicubic
    on the fixed validation sequences, whole frames, a border of 2 * scale left out."""
    from enhancer.evaluate import luma, psnr
    from enhancer.models.align import align_stacks

    model.eval()
    fusion = isinstance(model, FusionGenerator)
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
        crop = (slice(None), slice(b, -b), slice(b, -b))
        ours.append(psnr(luma(o8)[crop], luma(hr)[crop]))
        bic.append(psnr(luma(u8)[crop], luma(hr)[crop]))
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


def _load_data(cfg: TrainConfig) -> tuple[ClipDataset, np.ndarray, np.ndarray]:
    try:
        data = ClipDataset(cfg.data)
    except (OSError, ValueError, KeyError) as e:
        raise TrainingError(f"cannot read the training set ({e})", path=cfg.data,
                            hint="make one with `enhancer prepare`") from None
    if len(data) <= cfg.val_sequences:
        raise TrainingError(f"the training set has {len(data)} sequences; need more than val_sequences",
                            path=cfg.data)
    if data.scale != cfg.scale:
        raise TrainingError(f"the training set is x{data.scale}, the config asks for x{cfg.scale}", path=cfg.data)
    return data, np.arange(0, len(data) - cfg.val_sequences), np.arange(len(data) - cfg.val_sequences, len(data))


def _resume(m: _Models, cfg: TrainConfig, run: Path) -> int:
    """Load the run's last checkpoint; returns its step."""
    state = ckpt.load(run / "last.pt")
    now, then, defaults = cfg.to_dict(), state["config"], TrainConfig().to_dict()
    # an option added to enhancer after the checkpoint was written counts as unchanged at its default
    changed = sorted(k for k in now if then.get(k, defaults[k]) != now[k])
    if changed:
        # what may change between runs: length, logging, where the run and its data live (a
        # window on a GPU machine prepares a new set each time, and more media can join a run)
        if set(changed) - {"steps", "threads", "loader_threads", "fit_minutes", "val_every", "ckpt_every",
                           "ckpt_minutes", "log_every", "run_dir", "data"}:
            raise TrainingError(f"--resume with a different config ({', '.join(changed)} changed)", path=str(run))
    m.load(state)
    torch.set_rng_state(state["torch_rng"])
    return int(state["step"])


def train(cfg: TrainConfig, *, resume: bool = False, max_minutes: float | None = None,
          progress: bool = True) -> dict:
    """Run (or continue) a training run; returns the last logged numbers."""
    rank, world, local = _distributed()
    main = rank == 0
    device = torch.device(f"cuda:{local}" if torch.cuda.is_available() else "cpu")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    use_amp = cfg.amp == "bf16" or (cfg.amp == "auto" and device.type == "cuda")

    def amp():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp)

    run = Path(cfg.run_dir)
    torch.manual_seed(cfg.seed)
    data, train_idx, val_idx = _load_data(cfg)
    m = _build(cfg, device)
    step = 0
    if resume and ckpt.latest(run) is not None:
        step = _resume(m, cfg, run)
    elif resume and main:
        print(f"no checkpoint in {run}; starting a new run", flush=True)
    g_train = torch.nn.parallel.DistributedDataParallel(m.g) if world > 1 else m.g
    d_nets = [(name, torch.nn.parallel.DistributedDataParallel(net) if world > 1 else net, opt)
              for name, net, opt in (("d", m.d, m.opt_d), ("df", m.df, m.opt_df)) if net is not None]
    radius = m.g.temporal_radius
    stopper = _StopFlag()
    old_handlers = {s: signal.signal(s, stopper) for s in (signal.SIGTERM, signal.SIGINT)} \
        if threading.current_thread() is threading.main_thread() else {}
    if main:
        run.mkdir(parents=True, exist_ok=True)
        (run / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
    t_start = time.monotonic()
    t_saved = t_start
    last: dict = {}

    def save() -> None:
        if main:
            ckpt.save(run / "last.pt", {**m.state(), "step": step, "torch_rng": torch.get_rng_state(),
                                        "config": cfg.to_dict(), "model_config": asdict(m.g.config),
                                        "arch": "aligned-fusion" if m.fusion else "stgan-generator",
                                        "metrics": last})

    threads = _loader_threads(cfg, device, world)
    batches = _Batches(data, cfg, train_idx, radius, m.fusion, rank, step, threads)
    batches.start()
    fit = _Fit(cfg, step, t_start) if cfg.fit_minutes > 0 else None
    cycle = step if fit is not None else 0  # each time-boxed window is one warm restart of the schedule
    try:
        with bar(total=cfg.steps, desc=f"train stage {cfg.stage}", unit="step", enabled=progress and main) as pb:
            pb.update(step)
            t_log = time.monotonic()
            while step < cfg.steps:
                for opt, base in ((m.opt_g, cfg.lr_g), (m.opt_d, cfg.lr_d), (m.opt_df, cfg.lr_d)):
                    for group in (opt.param_groups if opt is not None else []):
                        group["lr"] = _lr(cfg, base, step, cycle)
                lq, hr = batches.get()
                lq, hr = lq.to(device, non_blocking=True), hr.to(device, non_blocking=True)
                with amp():
                    out = _generate(g_train, lq, m.fusion)  # (B, 3, T, sH, sW)
                out = out.float()
                cond = _upscaled(_centre(lq, radius, cfg.frames_out, m.fusion), cfg.scale) if d_nets else None
                d_terms = _d_steps(m, d_nets, out, hr, cond, cfg, amp) if d_nets else {}
                terms = _g_terms(m, d_nets, out, hr, cond, cfg, amp)
                loss_g = _weighted(terms, cfg)
                m.opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(m.g.parameters(), cfg.grad_clip)
                m.opt_g.step()
                _ema_update(m, cfg, step)
                step += 1
                pb.update(1)
                if fit is not None and fit.measure(step, world, device):
                    pb.total = cfg.steps
                    if main and fit.fits == 1:
                        print(f"fit_minutes {cfg.fit_minutes:g}: {fit.rate:.1f} steps/s ({threads} batch threads); "
                              f"the schedule now ends at step {cfg.steps}", flush=True)
                if main and (step % cfg.log_every == 0 or step == cfg.steps):
                    now = time.monotonic()
                    last = {"step": step, "lr_g": m.opt_g.param_groups[0]["lr"], "loss_g": loss_g.item(),
                            **{k: float(v.detach()) for k, v in {**terms, **d_terms}.items()},
                            "sec_per_step": (now - t_log) / cfg.log_every}
                    t_log = now
                    pb.set_postfix(loss=f"{last['loss_g']:.4f}")
                if main and (step % cfg.val_every == 0 or step == cfg.steps):
                    last.update(validate(m.ema, data, val_idx, cfg, device, run / "val" / f"step{step:06d}.png"))
                    last["step"] = step
                if main and last.get("step") == step:
                    with open(run / "log.jsonl", "a") as f:
                        f.write(json.dumps(last) + "\n")
                due = step % cfg.ckpt_every == 0 or step == cfg.steps or \
                    (time.monotonic() - t_saved) > cfg.ckpt_minutes * 60
                over_time = max_minutes is not None and (time.monotonic() - t_start) > max_minutes * 60
                flags = torch.tensor([int(stopper.stop or over_time), int(due)], device=device)
                if world > 1:
                    dist.all_reduce(flags)  # every rank stops and saves at the same step
                stop_now, due = bool(flags[0].item()), bool(flags[1].item())
                if due or stop_now:
                    save()
                    t_saved = time.monotonic()
                if stop_now:
                    if main:
                        why = stopper.why or f"the {max_minutes}-minute limit"
                        print(f"stopped at step {step} ({why}); checkpoint {run / 'last.pt'}; "
                              "continue with --resume", flush=True)
                    break
    finally:
        batches.close()
        for s, h in old_handlers.items():
            signal.signal(s, h)
    last.setdefault("step", step)
    return last
