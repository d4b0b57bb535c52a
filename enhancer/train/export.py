"""Training checkpoint -> shipped safetensors weights with their card."""
from __future__ import annotations

from pathlib import Path

from enhancer import weights
from enhancer.train import checkpoint as ckpt


def export(checkpoint: str | Path, out: str | Path, *, name: str | None = None, damage: str = "",
           metrics: dict | None = None, notes: str = "", task: str | None = None) -> Path:
    """Write the EMA generator of ``checkpoint`` to ``out`` with a model card. ``task`` defaults
    to archive for scale 1 and web otherwise; the variant is texture for a stage-2 run."""
    state = ckpt.load(checkpoint)
    arch = state.get("arch", "stgan-generator")
    cls, cfg_cls = weights.ARCHITECTURES[arch]
    model = cls(cfg_cls(**state["model_config"]))
    model.load_state_dict(state["ema"])
    cfg = state["config"]
    recipe = {k: cfg.get(k) for k in ("model", "stage", "steps", "batch", "frames_out", "crop", "lr_g", "lr_d",
                                      "w_pixel", "w_temporal", "w_perceptual", "w_adv", "adv_loss",
                                      "frame_discriminator", "perceptual_net", "ema", "seed", "init_from")}
    recipe["trained_steps"] = int(state["step"])
    recipe["data"] = cfg["data"]
    card = weights.ModelCard(name=name or Path(out).stem, arch=arch, config=state["model_config"],
                             scale=state["model_config"]["scale"], damage=damage, recipe=recipe,
                             metrics=metrics or {k: v for k, v in state.get("metrics", {}).items()
                                                 if k.startswith("val_")},
                             notes=notes,
                             task=task or ("archive" if state["model_config"]["scale"] == 1 else "web"),
                             variant="texture" if cfg.get("stage") == 2 else "fidelity")
    weights.save(model, out, card)
    return Path(out)
