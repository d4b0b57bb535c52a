"""The learning-rate schedule: warm-up, then cosine decay to ``lr_min_ratio``; with
``fit_minutes``, its end fitted to a time box by the measured step rate (:class:`_Fit`)."""
from __future__ import annotations

import math
import time

import torch
import torch.distributed as dist

from enhancer.train.config import TrainConfig


def _lr(cfg: TrainConfig, base: float, step: int, cycle: int = 0) -> float:
    """Warm-up then cosine decay from step ``cycle`` (0; a time-boxed window resuming a run starts
    a new cycle at its first step: a warm restart, not a jump back into a finished decay)."""
    step -= cycle
    if step < cfg.warmup:
        return base * (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(1, cfg.steps - cycle - cfg.warmup)
    return base * (cfg.lr_min_ratio + (1 - cfg.lr_min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


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
