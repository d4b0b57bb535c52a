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

This module holds the run itself (:class:`_Trainer`: the loop, logging, checkpoints, stopping);
its parts lie beside it: :mod:`~enhancer.train.build` (models, optimisers, resuming),
:mod:`~enhancer.train.batches` (the data), :mod:`~enhancer.train.step` (one step's losses and
updates), :mod:`~enhancer.train.schedule` (the learning rate, fitted to a time box) and
:mod:`~enhancer.train.validate`.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.distributed as dist

from enhancer.errors import EnhancerError, option
from enhancer.progress import bar
from enhancer.restore.device import select_device
from enhancer.restore.weights import arch_of
from enhancer.train import checkpoint as ckpt
from enhancer.train.batches import _Batches, _load_data, _loader_threads
from enhancer.train.build import _build, _resume
from enhancer.train.config import TrainConfig
from enhancer.train.schedule import _Fit, _lr
from enhancer.train.step import _centre, _d_steps, _ema_update, _g_terms, _generate, _upscaled, _weighted
from enhancer.train.validate import validate

log = logging.getLogger(__name__)


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



def _use_amp(amp: str, device: torch.device, warn: bool = True) -> bool:
    """Whether the run computes in bf16 autocast: ``auto`` on CUDA and on CPUs with bf16
    arithmetic; ``bf16`` always, with a warning on a CPU that only emulates it (measured on an
    AVX2 CPU, an st3d-s training step took 23x as long as in fp32)."""
    if amp == "off":
        return False
    if device.type != "cpu":
        return True
    from enhancer.restore.device import cpu_has_bf16, warn_emulated_bf16

    if amp == "auto":
        return cpu_has_bf16()
    if warn and not cpu_has_bf16():
        warn_emulated_bf16('amp = "bf16"', 'set amp = "auto" to use bf16 only where the CPU has it')
    return True


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
        self.use_amp = _use_amp(cfg.amp, self.device, warn=self.main)
        self.run_dir = Path(cfg.run_dir)
        torch.manual_seed(cfg.seed)
        self.data, self.train_idx, self.val_data, self.val_idx = _load_data(cfg)
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
            self.last.update(validate(self.m.ema, self.val_data, self.val_idx, cfg, self.device,
                                      self.run_dir / "val" / f"step{step:06d}.png"))
            self.last["step"] = step
            self._keep_best()
        if self.last.get("step") == step:
            with open(self.run_dir / "log.jsonl", "a") as f:
                f.write(json.dumps(self.last) + "\n")

    def _keep_best(self) -> None:
        """Write the EMA generator as ``best.safetensors`` (fp16) when validation PSNR-Y (stage 2:
        VMAF where ffmpeg can measure it, since texture costs PSNR) is the best this run has seen:
        the small file a milestone commits so another machine continues."""
        best_json, best_file = self.run_dir / "best.json", self.run_dir / "best.safetensors"
        key = "val_vmaf" if "val_vmaf" in self.last else "val_psnr_y"
        best = -1.0
        if best_file.exists():  # the file's own card is the record (best.json, written after it, may lag a kill)
            from enhancer.restore.weights import read_card

            try:
                best = float(read_card(best_file).metrics.get(key, -1.0))
            except EnhancerError:  # an unreadable file is replaced
                pass
        if self.last[key] <= best:
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
                        f"continue with {option('resume', True)}")
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
