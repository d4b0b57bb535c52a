"""What a training run trains: the generator a config names (started from earlier weights where
asked), its EMA copy, stage 2's discriminators and the perceptual network, the optimisers of all
of them, the state a checkpoint holds of them, and resuming a run from its checkpoint."""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from enhancer.errors import option
from enhancer.models import (ALIGNED, CONFIGS, FUSION_CONFIGS, ST3D_CONFIGS, Discriminator, DiscriminatorConfig,
                             FrameDiscriminator, FusionConfig, FusionGenerator, Generator, GeneratorConfig, ST3DConfig,
                             ST3DGenerator)
from enhancer.models.blocks import channels_last
from enhancer.train import checkpoint as ckpt
from enhancer.train.config import TrainConfig, TrainingError

log = logging.getLogger(__name__)


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


# what may change between runs: length, logging, where the run and its data live (a window on a
# GPU machine prepares a new set each time, and more media can join a run), and amp (the weights and
# optimisers are fp32 either way: a run moves between machines with and without bf16 arithmetic)
RESUMABLE_CHANGES = frozenset({"steps", "threads", "loader_threads", "fit_minutes", "val_every", "ckpt_every",
                               "ckpt_minutes", "log_every", "run_dir", "data", "amp"})


def _resume(m: _Models, cfg: TrainConfig, run: Path) -> int:
    """Load the run's last checkpoint; returns its step."""
    state = ckpt.load(run / "last.pt")
    now, then, defaults = cfg.to_dict(), state["config"], TrainConfig().to_dict()
    # an option added to enhancer after the checkpoint was written counts as unchanged at its default
    changed = sorted(k for k in now if then.get(k, defaults[k]) != now[k])
    if set(changed) - RESUMABLE_CHANGES:
        raise TrainingError(f"{option('resume', True)} with a different config ({', '.join(changed)} changed)", path=str(run))
    m.load(state)
    torch.set_rng_state(state["torch_rng"])
    return int(state["step"])
