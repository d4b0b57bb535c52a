"""Training checkpoint -> shipped safetensors weights with their card."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from enhancer.restore import weights
from enhancer.errors import EnhancerError, OutputError, UsageError
from enhancer.train import checkpoint as ckpt


def _check_out(out: Path) -> None:
    """Refuse, before any work, a weights name that enhance would not load or that names a folder."""
    if out.is_dir():
        raise UsageError("is a folder", path=str(out), hint="give the weights file's name, e.g. NAME.safetensors")
    if out.suffix.lower() != ".safetensors":
        raise UsageError("the weights file must end in .safetensors", path=str(out))


def _ema_model(state: dict, checkpoint: str | Path) -> tuple[str, nn.Module]:
    """The checkpoint's architecture name and its EMA generator; a checkpoint whose model cannot
    be built from what it holds is a :class:`~enhancer.train.checkpoint.CheckpointError`."""
    arch = state.get("arch", "stgan-generator")
    if arch not in weights.ARCHITECTURES:
        raise ckpt.CheckpointError(f"unknown architecture {arch!r}", path=str(checkpoint),
                                   hint="this checkpoint needs a newer enhancer")
    cls, cfg_cls = weights.ARCHITECTURES[arch]
    try:
        model = cls(cfg_cls(**state["model_config"]))
        model.load_state_dict(state["ema"])
    except (TypeError, ValueError, RuntimeError) as e:  # a config or tensors this model does not take
        raise ckpt.CheckpointError(f"its generator does not match its model config ({type(e).__name__})",
                                   path=str(checkpoint)) from None
    return arch, model


def export(checkpoint: str | Path, out: str | Path, *, name: str | None = None, damage: str = "",
           metrics: dict | None = None, notes: str = "", task: str | None = None, calibrate: bool = True,
           log=lambda msg: None) -> Path:
    """Write the EMA generator of ``checkpoint`` to ``out`` with a model card. ``task`` defaults
    to archive for scale 1 and web otherwise; the variant is texture for a stage-2 run. An
    aligned-fusion model is calibrated for int8 on its run's training sets where they can still be
    read (``log`` says so where they cannot: ``enhancer calibrate`` does it later)."""
    out = Path(out)
    _check_out(out)
    state = ckpt.load(checkpoint)
    arch, model = _ema_model(state, checkpoint)
    ranges = _int8_ranges(model, state["config"].get("data"), log) if calibrate else {}
    return _write(state, arch, model, out, name=name, damage=damage, metrics=metrics, notes=notes, task=task,
                  int8_ranges=ranges)


def _int8_ranges(model: nn.Module, data, log) -> dict:
    """The int8 ranges of an aligned-fusion ``model`` on its training sets ``data``; {} for other
    architectures and for sets that are gone."""
    from enhancer.models.fusion import FusionGenerator
    from enhancer.restore import int8

    if not isinstance(model, FusionGenerator):
        return {}
    sets = [data] if isinstance(data, str) else list(data or [])
    try:
        return int8.calibrate(model, int8.set_stacks(sets, model.config.radius))
    except EnhancerError as e:  # the sets are gone, damaged or not sets
        log(f"warning: not calibrated for int8: {e}; `enhancer calibrate` does it later")
        return {}


def export_state(state: dict, out: str | Path, *, half: bool = False) -> Path:
    """Write a training run's live state (as a checkpoint holds it) to ``out``: the trainer's
    best-so-far weights, fp16 with ``half`` (small enough to commit; ``init_from`` continues from
    it on another machine)."""
    arch, model = _ema_model(state, out)
    return _write(state, arch, model, Path(out), dtype=torch.float16 if half else torch.float32)


def _write(state: dict, arch: str, model: nn.Module, out: Path, *, name: str | None = None, damage: str = "",
           metrics: dict | None = None, notes: str = "", task: str | None = None,
           dtype: torch.dtype = torch.float32, int8_ranges: dict | None = None) -> Path:
    cfg, scale = state["config"], model.config.scale
    recipe = {k: cfg.get(k) for k in ("model", "stage", "steps", "batch", "frames_out", "crop", "lr_g", "lr_d",
                                      "w_pixel", "w_temporal", "w_perceptual", "w_adv", "adv_loss",
                                      "frame_discriminator", "perceptual_net", "ema", "seed", "init_from")}
    recipe["trained_steps"] = int(state["step"])
    recipe["data"] = cfg.get("data")
    card = weights.ModelCard(name=name or out.stem, arch=arch, config=state["model_config"],
                             scale=scale, damage=damage, recipe=recipe,
                             metrics=metrics or {k: v for k, v in state.get("metrics", {}).items()
                                                 if k.startswith("val_")},
                             notes=notes,
                             task=task or ("archive" if scale == 1 else "web"),
                             variant="texture" if cfg.get("stage") == 2 else "fidelity",
                             int8=int8_ranges or {})
    try:
        weights.save(model, out, card, dtype)
    except OSError as e:
        raise OutputError(f"cannot write the weights ({e.strerror or e})", path=str(out)) from None
    return out
