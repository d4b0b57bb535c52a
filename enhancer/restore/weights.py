"""Shipped weights: safetensors plus a JSON card that rebuilds the model on its own.

The card (stored in the safetensors metadata under ``enhancer``) holds the architecture name and
config, the scale, what damage the model was trained for, the training recipe and the metrics
measured for it, and a format version. Loading never unpickles anything.

A model file is untrusted input. Before anything is built, every card field is checked: its type
(booleans are not numbers, numbers are finite), the architecture's config against that config
dataclass's fields, annotated types and ``LIMITS``, and every tensor's name, dtype and shape
against a model built from the config on the ``meta`` device (which allocates nothing). Then the
weights are loaded and checked to be finite. Any failure is one :class:`ModelError` line.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from enhancer.errors import ArgumentError, ConfigError, ModelError, option
from enhancer.media.temps import publish
from enhancer.models.fusion import FusionConfig, FusionGenerator
from enhancer.models.st3d import ST3DConfig, ST3DGenerator
from enhancer.models.generator import Generator, GeneratorConfig

FORMAT = "enhancer-weights"
# the jobs users bring, and the scale each is done at unless asked otherwise
TASKS = {"web": "upscale web and broadcast video", "archive": "restore film and tape at their own size",
         "clean": "upscale clean sources (masters, renders, high-bitrate files) without repairing damage"}
DEFAULT_SCALE = {"web": 2, "archive": 1, "clean": 4}
VERSION = 1
# name -> (nn.Module class built from a config, its config dataclass)
ARCHITECTURES = {"stgan-generator": (Generator, GeneratorConfig), "aligned-fusion": (FusionGenerator, FusionConfig),
                 "aligned-st3d": (ST3DGenerator, ST3DConfig)}


def arch_of(model) -> str:
    """The card name of a generator's architecture."""
    for name, (cls, _) in ARCHITECTURES.items():
        if type(model) is cls:
            return name
    raise ArgumentError(f"not a generator enhancer saves: {type(model).__name__}")
_FLOAT_DTYPES = {"F32", "F16", "BF16", "F64"}
_MAX_TEXT = 100_000  # characters in any one card string
log = logging.getLogger(__name__)
_WARNED: set[Path] = set()  # model files found unreadable (said once a process)


@dataclass
class ModelCard:
    name: str
    arch: str
    config: dict
    scale: int
    damage: str = ""  # what it was trained to repair
    recipe: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    notes: str = ""
    version: int = VERSION
    task: str = ""  # web (upscale web and broadcast video) | archive (restore film and tape); "" = web
    variant: str = "fidelity"  # fidelity (stage 1) | texture (stage 2, adversarial)
    # aligned-fusion only: each int8 feature map's [low, high] range, measured on training windows
    # (enhancer.restore.int8.calibrate); without it the model has no int8 precision
    int8: dict[str, list[float]] = field(default_factory=dict)

    def to_json(self) -> str:
        d = dict(self.__dict__)
        if not d["int8"]:  # a card without int8 ranges stays readable by enhancers from before them
            del d["int8"]
        return json.dumps({"format": FORMAT, **d}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelCard":
        """Parse and check a card; raises :class:`ModelError` with the reason for anything off
        (no file named: :func:`read_card` adds it)."""
        try:
            d = json.loads(text)
        except RecursionError:
            raise ModelError("card JSON is nested too deeply") from None
        except ValueError as e:
            raise ModelError(f"card is not JSON ({e})") from None
        if not isinstance(d, dict):
            raise ModelError(f"card is a JSON {_kind(d)}, not an object")
        if d.pop("format", None) != FORMAT:
            raise ModelError("not an enhancer weights card")
        version = d.get("version", VERSION)
        if not _is_int(version) or version < 1:
            raise ModelError(f"card version must be a positive integer, not {_show(version)}")
        if version > VERSION:
            raise ModelError(f"weights format version {version} is newer than this enhancer understands")
        check_fields(cls, d, "card")
        card = cls(**d)
        if card.scale not in (1, 2, 4):
            raise ModelError(f"card scale must be 1, 2 or 4, not {_show(card.scale)}")
        if not card.name.strip():
            raise ModelError("card name is empty")
        if card.task not in TASKS and card.task != "":
            raise ModelError(f"card task must be one of {', '.join(TASKS)}, not {_show(card.task)}")
        if card.variant not in ("fidelity", "texture"):
            raise ModelError(f"card variant must be fidelity or texture, not {_show(card.variant)}")
        return card


# ---- checking untrusted values against a dataclass ------------------------------------------
def _kind(value) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number" if isinstance(value, (int, float)) else type(value).__name__)


def _show(value) -> str:
    text = json.dumps(value) if isinstance(value, (int, float, str, bool, type(None))) else _kind(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def type_error(value, tp, where: str, depth: int = 0) -> str | None:
    """Why ``value`` (parsed from JSON) is not a ``tp``, or None when it is."""
    if depth > 20:
        return f"{where} is nested too deeply"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is typing.Any:
        return None
    if origin in (typing.Union, types.UnionType):
        errors = [type_error(value, a, where, depth + 1) for a in args]
        return None if any(e is None for e in errors) else next(e for e in errors if e)
    if tp is type(None):
        return None if value is None else f"{where} must be null, not {_show(value)}"
    if origin is typing.Literal:
        ok = any(value == a and type(value) is type(a) for a in args)
        return None if ok else f"{where} must be one of {', '.join(_show(a) for a in args)}, not {_show(value)}"
    if tp is bool:
        return None if isinstance(value, bool) else f"{where} must be true or false, not {_show(value)}"
    if tp is int:
        return None if _is_int(value) else f"{where} must be an integer, not {_show(value)}"
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{where} must be a number, not {_show(value)}"
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an integer beyond any float
            finite = False
        return None if finite else f"{where} must be finite, not {_show(value)}"
    if tp is str:
        if not isinstance(value, str):
            return f"{where} must be a string, not {_show(value)}"
        return None if len(value) <= _MAX_TEXT else f"{where} is too long ({len(value)} characters)"
    if tp in (list, tuple) or origin in (list, tuple):
        if not isinstance(value, list):
            return f"{where} must be an array, not {_show(value)}"
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                return f"{where} must have {len(args)} items, not {len(value)}"
            items = zip(value, args)
        else:
            items = ((v, args[0] if args else typing.Any) for v in value)
        for i, (v, a) in enumerate(items):
            err = type_error(v, a, f"{where}[{i}]", depth + 1)
            if err:
                return err
        return None
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            return f"{where} must be an object, not {_show(value)}"
        vt = args[1] if len(args) == 2 else None
        for k, v in value.items():
            err = type_error(v, vt, f"{where}.{k}", depth + 1) if vt is not None else _json_error(v, f"{where}.{k}",
                                                                                                   depth + 1)
            if err:
                return err
        return None
    return f"{where} has a type this enhancer cannot check ({tp})"


def _json_error(value, where: str, depth: int) -> str | None:
    """Free-form card data (recipe, metrics): any JSON, but finite and not absurdly deep."""
    if depth > 20:
        return f"{where} is nested too deeply"
    if isinstance(value, float) and not math.isfinite(value):
        return None  # a metric may honestly be NaN (not measured); it is only shown
    if isinstance(value, str) and len(value) > _MAX_TEXT:
        return f"{where} is too long"
    if isinstance(value, list):
        return next((e for e in (_json_error(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)) if e),
                    None)
    if isinstance(value, dict):
        return next((e for e in (_json_error(v, f"{where}.{k}", depth + 1) for k, v in value.items()) if e), None)
    return None


def _allowed(value, limit) -> bool:
    if isinstance(limit, tuple) and len(limit) == 2:  # inclusive (low, high), None for open
        low, high = limit
        return (low is None or value >= low) and (high is None or value <= high)
    return value in limit


def _describe_limit(limit) -> str:
    if isinstance(limit, range):
        return f"{limit.start}..{limit.stop - 1}" if limit.step == 1 else str(limit)
    if isinstance(limit, tuple) and len(limit) == 2:
        return f"{'' if limit[0] is None else limit[0]}..{'' if limit[1] is None else limit[1]}"
    return ", ".join(_show(v) for v in sorted(limit, key=str))


def check_fields(cls, raw: dict, where: str) -> None:
    """Check a JSON object against a dataclass: no unknown keys, every required key present, each
    value of its annotated type, and within ``cls.LIMITS`` where it declares one (a range, a set
    of values, or inclusive ``(low, high)`` bounds). Raises :class:`ModelError` naming the field."""
    if not isinstance(raw, dict):
        raise ModelError(f"{where} must be an object, not {_show(raw)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in raw if k not in fields]
    if unknown:
        raise ModelError(f"{where} has unknown field {', '.join(_show(k) for k in unknown[:5])}")
    missing = [n for n, f in fields.items() if n not in raw and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ModelError(f"{where} lacks {', '.join(missing)}")
    hints = typing.get_type_hints(cls)
    limits = getattr(cls, "LIMITS", {}) or {}
    for name, value in raw.items():
        err = type_error(value, hints.get(name, typing.Any), f"{where}.{name}")
        if err:
            raise ModelError(err)
        if name in limits and not _allowed(value, limits[name]):
            raise ModelError(f"{where}.{name} must be in {_describe_limit(limits[name])}, not {_show(value)}")


def build_config(cfg_cls, raw: dict, arch: str):
    """A config dataclass from a card's ``config``, checked field by field first."""
    check_fields(cfg_cls, raw, "config")
    try:
        return cfg_cls(**raw)
    except (ConfigError, TypeError) as e:  # the dataclass's own consistency checks
        raise ModelError(f"config is not a valid {arch} config: {e}") from None


# ---- files -----------------------------------------------------------------------------------
def save(model: torch.nn.Module, path: str | os.PathLike, card: ModelCard, dtype: torch.dtype = torch.float32) -> None:
    """Write ``model``'s weights (fp32 by default; fp16 halves a checkpoint that is committed) and
    ``card`` to a .safetensors file."""
    tensors = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    _write(tensors, Path(path), card)


def _write(tensors: dict[str, torch.Tensor], path: Path, card: ModelCard) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    save_file(tensors, str(tmp), metadata={"enhancer": card.to_json()})
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # a model file others may read (safetensors writes it 0600)
    publish(tmp, path)


def rewrite_card(path: str | os.PathLike, card: ModelCard, out: str | os.PathLike | None = None) -> None:
    """Write ``card`` over the card of the model file at ``path`` (or into a copy at ``out``),
    every tensor kept as it is, so the weights' content hash does not change."""
    from safetensors.torch import load_file

    _write(load_file(str(path), device="cpu"), Path(out or path), card)


def read_card(path: str | os.PathLike) -> ModelCard:
    """The checked card of a model file (the tensors are not read)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:  # safetensors raises its own error types for bad headers
        raise ModelError(f"not a readable .safetensors file ({e})", path=str(path)) from None
    if "enhancer" not in meta:
        raise ModelError("safetensors file has no enhancer model card", path=str(path),
                         hint="export training checkpoints with `enhancer export`")
    try:
        return ModelCard.from_json(meta["enhancer"])
    except (ModelError, TypeError) as e:
        raise ModelError(f"bad model card: {getattr(e, 'reason', e)}", path=str(path)) from None


def _check_tensors(path: str, model_cls, config) -> None:
    """Every tensor in the file has the name, a float dtype and the shape a model built from
    ``config`` expects, and nothing is missing or left over. Builds on the meta device, so a
    config that passed its limits still allocates nothing here."""
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in model_cls(config).state_dict().items()}
    with safe_open(path, framework="pt") as f:
        names = set(f.keys())
        missing = sorted(set(expected) - names)
        unexpected = sorted(names - set(expected))
        if missing or unexpected:
            raise ModelError(f"weights do not match the card's config (missing {len(missing)} tensors"
                             + (f", e.g. {missing[0]}" if missing else "") + f"; unexpected {len(unexpected)}"
                             + (f", e.g. {unexpected[0]}" if unexpected else "") + ")")
        for name, shape in expected.items():
            sl = f.get_slice(name)
            if sl.get_dtype() not in _FLOAT_DTYPES:
                raise ModelError(f"tensor {name} is {sl.get_dtype()}, not a float type")
            got = tuple(sl.get_shape())
            if got != shape:
                raise ModelError(f"tensor {name} has shape {list(got)}, the config needs {list(shape)}")


def content_hash(state: dict[str, torch.Tensor], card: ModelCard) -> str:
    """SHA-256 of what decides the pixels: architecture, config and every tensor's name, dtype,
    shape and bytes (not the card's name, notes or metrics)."""
    h = hashlib.sha256(json.dumps({"arch": card.arch, "config": card.config}, sort_keys=True).encode())
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"\0{name}\0{t.dtype}\0{list(t.shape)}\0".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


@dataclass
class LoadedModel:
    model: torch.nn.Module
    card: ModelCard
    sha256: str  # content_hash of the weights: part of every output's recipe


def load_model(path: str | os.PathLike) -> LoadedModel:
    """Check the file, rebuild the model from its card and load its weights (CPU, fp32)."""
    path = str(path)
    card = read_card(path)
    if card.arch not in ARCHITECTURES:
        raise ModelError(f"unknown architecture {card.arch!r}", path=path, hint="this file needs a newer enhancer")
    model_cls, cfg_cls = ARCHITECTURES[card.arch]
    try:
        config = build_config(cfg_cls, card.config, card.arch)
        if getattr(config, "scale", card.scale) != card.scale:
            raise ModelError(f"card scale {card.scale} differs from its config's scale {config.scale}")
        _check_tensors(path, model_cls, config)
    except ModelError as e:
        raise ModelError(f"bad model card: {e.reason}", path=path, hint="re-export the model, or use another") from None
    except Exception as e:  # safetensors' own errors on a damaged header or data
        raise ModelError(f"not a readable .safetensors file ({e})", path=path) from None
    from safetensors.torch import load_file

    try:
        state = load_file(path, device="cpu")
    except Exception as e:
        raise ModelError(f"cannot read the weights ({e})", path=path) from None
    check_finite(state, path)
    model = model_cls(config)
    model.load_state_dict(state, strict=True)
    return LoadedModel(model.eval(), card, content_hash(state, card))


def check_finite(state: dict[str, torch.Tensor], path: str) -> None:
    """Refuse weights holding NaN or infinity (they would turn every frame black)."""
    for name, t in state.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise ModelError(f"weights are not finite: tensor {name} holds {bad} NaN or infinite values",
                             path=path, hint="the file is damaged or came from a diverged training run")


def load(path: str | os.PathLike) -> tuple[torch.nn.Module, ModelCard]:
    """Rebuild the model from the card and load its weights, on the CPU in fp32."""
    loaded = load_model(path)
    return loaded.model, loaded.card


def weights_dirs() -> list[Path]:
    """Where named models are looked up: ``ENHANCER_WEIGHTS`` (os.pathsep-separated), the
    ``weights/`` folder of a source checkout, and ``<prefix>/share/enhancer/weights``."""
    dirs = [Path(p) for p in os.environ.get("ENHANCER_WEIGHTS", "").split(os.pathsep) if p]
    dirs.append(Path(__file__).resolve().parents[2] / "weights")
    dirs.append(Path(sys.prefix) / "share" / "enhancer" / "weights")
    return [d for d in dirs if d.is_dir()]


def _by_name() -> dict[str, list[Path]]:
    """Every model file by name, in the order the folders are looked in."""
    found: dict[str, list[Path]] = {}
    for d in weights_dirs():
        for p in sorted(d.glob("*.safetensors")):
            found.setdefault(p.stem, []).append(p)
    return found


def available() -> dict[str, Path]:
    """Shipped and user models by name (first found wins)."""
    return {name: paths[0] for name, paths in _by_name().items()}


def installed() -> tuple[list[tuple[str, Path, ModelCard]], list[tuple[Path, ModelError]]]:
    """(each name's first file whose card reads, as (name, path, card); the files that do not
    read, with why). A broken file in ENHANCER_WEIGHTS never hides the shipped model of the same
    name, nor lets another model become the default in its place."""
    good, broken = [], []
    for name, paths in _by_name().items():
        for path in paths:
            try:
                good.append((name, path, read_card(path)))
                break
            except ModelError as e:
                broken.append((path, e))
    return good, broken


def resolve(name_or_path: str) -> Path:
    """A model name (``general-x2``) or a path to a model file: .safetensors, or one of the
    field's (:mod:`enhancer.restore.field`)."""
    from enhancer.restore.field import SUFFIXES

    p = Path(name_or_path)
    if p.suffix.lower() in SUFFIXES or os.sep in name_or_path or (os.altsep and os.altsep in name_or_path):
        if not p.is_file():
            raise ModelError("no such weights file", path=name_or_path)
        return p
    models = available()
    if name_or_path not in models:
        from enhancer.restore.restorer import CLASSICAL

        names = ", ".join(sorted(models)) or "none installed"
        raise ModelError(f"unknown model {name_or_path!r}", hint=f"models: {names}; classical: {', '.join(CLASSICAL)}")
    readable = next((path for name, path, _ in catalogue() if name == name_or_path), None)
    return readable or models[name_or_path]  # none reads: loading the first says why


def task_of(card: ModelCard) -> str:
    return card.task or "web"


def catalogue() -> list[tuple[str, Path, ModelCard]]:
    """Installed models whose card reads, as (name, path, card); unreadable files are left out
    (``enhancer models`` reports them), and a name's next file stands in for one that does not
    read (:func:`installed`)."""
    good, broken = installed()
    for path, e in broken:
        if path not in _WARNED:  # once a process
            _WARNED.add(path)
            log.warning("%s; %s", e, "left out" if not any(p.stem == path.stem for _, p, _ in good) else
                        f"using {next(p for _, p, _ in good if p.stem == path.stem)} instead")
    return good


def pick(task: str | None, scale: int | None, variant: str = "fidelity") -> str:
    """The installed model for a task and scale (``task`` default web, ``scale`` default the
    task's own), the fidelity variant first. Raises a :class:`ModelError` naming the models that
    would fit when none does."""
    task = task or "web"
    if task not in TASKS:
        raise ModelError(f"unknown task {task!r}", hint=f"tasks: {', '.join(TASKS)}")
    scale = scale or DEFAULT_SCALE[task]
    models = catalogue()
    fits = [(n, c) for n, _, c in models if task_of(c) == task and c.scale == scale]
    fits.sort(key=lambda nc: (nc[1].variant != variant, nc[0]))
    if fits:
        return fits[0][0]
    same_task = [f"{n} (x{c.scale})" for n, _, c in models if task_of(c) == task]
    same_scale = [f"{n} ({task_of(c)})" for n, _, c in models if c.scale == scale]
    if same_task or same_scale:
        hint = "models that fit: " + ", ".join(same_task + [m for m in same_scale if m not in same_task])
    else:
        hint = "no model is installed for it; `enhancer models` lists what is"
    if task == "web" and scale == 1:
        hint += f"; restoring at the source's size is {option('task')} archive"
    raise ModelError(f"no installed model does {option('task')} {task} at {option('scale')} {scale}", hint=hint)
