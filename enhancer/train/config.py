"""Training configuration: a typed dataclass read from TOML; and :class:`TrainingError`, what a
run that cannot start or continue raises."""
from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from enhancer.errors import ConfigError, EnhancerError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class TrainingError(EnhancerError):
    """A training run cannot start or continue: bad set, config or checkpoint."""


@dataclass
class TrainConfig:
    data: str | list = "runs/data/web-x2.npz"  # a set made by `enhancer prepare`, or a list of such sets
    run_dir: str = "runs/general-x2"
    model: str = "small"  # small | base (unaligned 3D) | fusion-s | fusion-m (aligned fusion) | st3d-s | st3d-m | st3d-l
    model_overrides: dict = field(default_factory=dict)  # e.g. {channels = 48}
    scale: int = 2
    stage: int = 1  # 1: pixel loss only (fidelity); 2: + perceptual + adversarial
    init_from: str = ""  # a checkpoint (its EMA generator) or .safetensors weights that start this run
    # (stage 2 from stage 1; x4 from x2: tensors of another shape start fresh)
    steps: int = 2000
    batch: int = 8
    frames_out: int = 3  # output frames per sample (the input adds 2 * temporal radius)
    crop: int = 48  # low-resolution crop side
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas_g: tuple[float, float] = (0.9, 0.99)
    betas_d: tuple[float, float] = (0.5, 0.999)  # the GAN literature's Adam settings for D
    lr_min_ratio: float = 0.05  # cosine decay to lr * this
    warmup: int = 50
    w_pixel: float = 1.0
    w_perceptual: float = 0.1
    w_adv: float = 0.005
    w_feature_match: float = 0.05
    w_temporal: float = 0.5
    misalign: float = 0.0  # aligned fusion: disturb half the samples' neighbour flows by a smooth
    # random field of up to this many low-resolution pixels (RMS), so that the network learns to
    # check a warped neighbour against the centre frame before trusting it
    adv_loss: str = "nonsat"  # nonsat | hinge
    d_channels: int = 64  # the discriminators' first-layer channels (doubling per layer)
    frame_discriminator: bool = False  # stage 2: a per-frame image discriminator beside the clip one
    frame_weight: float = 1.0  # its adversarial and feature-matching weights, relative to the clip one's
    perceptual_net: str = "mobilenet_v2"  # mobilenet_v2 | lpips-alex
    allow_random_features: bool = False  # plumbing tests only
    ema: float = 0.999
    grad_clip: float = 1.0
    amp: str = "auto"  # auto (bf16 autocast on CUDA and on CPUs with bf16 arithmetic, AVX512-BF16
    # or AMX; fp32 on other CPUs, where bf16 is emulated and many times slower) | bf16 | off
    val_every: int = 200
    val_sequences: int = 8  # taken from the end of the set, never trained on (with val_data: the
    # first this many of that set)
    val_data: str = ""  # a set of its own for validation, prepared from media the training sets
    # exclude (other photos, other footage): a score that follows what the model does on media it
    # never saw, where sequences from the end of a training set share its photos and videos
    ckpt_every: int = 200
    ckpt_minutes: float = 2.0  # and at least this often
    log_every: int = 10
    seed: int = 0
    threads: int = 0  # torch CPU threads (0: torch's default)
    loader_threads: int = 0  # threads making batches (0: 1 on the CPU, up to 8 beside a GPU)
    fit_minutes: float = 0  # > 0: after measuring the step rate, set ``steps`` so that the
    # schedule ends within this many minutes of the run's start (a time-boxed GPU window)

    @classmethod
    def from_toml(cls, path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> "TrainConfig":
        """Read a config file; each override is ``key=value`` with a TOML value (a bare word
        that is not valid TOML is taken as a string)."""
        with open(path, "rb") as f:
            raw = tomllib.load(f)
        for item in overrides:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"override {item!r} is not KEY=VALUE")
            try:
                raw.update(tomllib.loads(f"{key.strip()} = {value.strip()}"))
            except tomllib.TOMLDecodeError:
                raw[key.strip()] = value.strip()
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ConfigError(f"unknown training options: {', '.join(sorted(unknown))}")
        import typing

        from enhancer.restore.weights import type_error

        hints = typing.get_type_hints(cls)
        for key, value in raw.items():  # a value of the wrong type would fail deep inside the run
            err = type_error(value, hints[key], key)
            if err:
                raise ConfigError(err)
        raw = dict(raw)
        for key in ("betas_g", "betas_d"):
            if key in raw:
                raw[key] = tuple(raw[key])
        cfg = cls(**raw)
        if cfg.stage not in (1, 2):
            raise ConfigError("stage must be 1 or 2")
        if cfg.stage == 2 and cfg.frames_out < 4:
            raise ConfigError("stage 2 needs frames_out >= 4 (the clip discriminator halves time twice)")
        if cfg.amp not in ("auto", "bf16", "off"):
            raise ConfigError("amp must be auto, bf16 or off")
        if cfg.adv_loss not in ("nonsat", "hinge"):
            raise ConfigError("adv_loss must be nonsat or hinge")
        return cfg

    def to_dict(self) -> dict:
        d = asdict(self)
        d["betas_g"], d["betas_d"] = list(self.betas_g), list(self.betas_d)
        return d
