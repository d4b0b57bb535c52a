"""Turn a ``--model`` value into a ready :class:`~enhancer.restore.restorer.Restorer`."""
from __future__ import annotations

from enhancer.errors import UsageError, option
from enhancer.restore.restorer import CLASSICAL, ClassicalUpscaler, Restorer


DEFAULT_MODEL = "general-x2"


def choose_model(model: str | None, task: str | None = None, scale: int | None = None) -> tuple[str, str | None]:
    """The model to load, and a note for the user (or None): the one named (checked against
    ``task``), else the installed model for ``task`` and ``scale``, else lanczos when no model is
    installed at all."""
    if model in CLASSICAL:  # no PyTorch to import (about 0.5 GB and a second) for a classical method
        return model, None
    from enhancer.restore import weights

    if model is None:
        if not weights.available():
            return "lanczos", f"no model is installed (not even {DEFAULT_MODEL}); using lanczos"
        return weights.pick(task, scale), None
    if task is not None:
        from enhancer.restore.field import is_field_file

        path = weights.resolve(model)
        if is_field_file(path):  # the field's models carry no task: its scale is checked as it loads
            return model, None
        card = weights.read_card(path)
        if weights.task_of(card) != task:
            fit = [n for n, _, c in weights.catalogue() if weights.task_of(c) == task]
            raise UsageError(f"model {card.name} is for {option('task')} {weights.task_of(card)}, not {task}",
                             hint=f"{task} models: {', '.join(fit) or 'none installed'}; or omit {option('task')}")
    return model, None


def parse_tile(tile: int | str | None) -> int | str:
    """A --tile setting: ``auto``, 0 (whole frames) or a tile size in pixels (None: whole frames)."""
    if tile is None:
        return 0
    if isinstance(tile, str):
        text = tile.strip().lower()
        if text == "auto":
            return "auto"
        if not text.isdigit():
            raise UsageError(f"tile must be a number of pixels, 0 or auto, not {tile!r}")
        return int(text)
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < 0:
        raise UsageError(f"tile must be a number of pixels, 0 or auto, not {tile!r}")
    return tile


def parse_temporal(temporal: int | str | None) -> int | None:
    """A --temporal setting: ``auto`` (None: the stage for the field's per-frame models, at
    :data:`~enhancer.restore.temporal.DEFAULT_RADIUS`), ``on`` (that radius, whatever the model),
    ``off`` or 0, or a radius in frames (the expert form)."""
    from enhancer.restore.restorer import TEMPORAL_MAX_RADIUS as MAX_RADIUS
    from enhancer.restore.restorer import TEMPORAL_RADIUS as DEFAULT_RADIUS

    if temporal is None:
        return None
    text = str(temporal).strip().lower() if not isinstance(temporal, bool) else ""
    if text == "auto":
        return None
    if text == "on":
        return DEFAULT_RADIUS
    if text == "off":
        return 0
    if not text.isdigit() or int(text) > MAX_RADIUS:
        raise UsageError(f"temporal must be auto, on, off or a radius of 0 to {MAX_RADIUS} frames, not {temporal!r}")
    return int(text)


def _with_temporal(restorer: Restorer, temporal: int | None, per_frame_default: bool) -> Restorer:
    """``restorer`` with the temporal-consistency stage where ``temporal`` asks for it (None:
    where ``per_frame_default``, the field's models)."""
    from enhancer.restore.restorer import TEMPORAL_RADIUS

    radius = (TEMPORAL_RADIUS if per_frame_default else 0) if temporal is None else temporal
    if not radius:
        return restorer  # without importing the stage (its flow imports PyTorch)
    from enhancer.restore.temporal import TemporalConsistency

    if restorer.margin:
        raise UsageError(f"{restorer.name} is a spatio-temporal model (it reads {restorer.margin} frames on each "
                         "side already): the temporal stage is for per-frame models", hint=f"omit {option('temporal')}")
    return TemporalConsistency(restorer, radius)


def load_restorer(model: str, scale: int | None = None, *, device: str = "auto", precision: str = "auto",
                  tile: int | str | None = "auto", chunk: int | None = None,
                  temporal: int | str | None = "auto") -> Restorer:
    """``lanczos`` / ``bicubic`` / ``bilinear`` / ``nearest``: classical, at ``scale`` (default 2).
    Anything else: a shipped model name (``enhancer models``), a .safetensors path, or a file of
    the field's models (.pth, .pt, .ckpt, .safetensors without an enhancer card, .onnx: see
    :mod:`enhancer.restore.field`). ``tile`` as :func:`parse_tile` reads it; ``temporal`` as
    :func:`parse_temporal` does: by default the field's per-frame models get the
    temporal-consistency stage (:mod:`enhancer.restore.temporal`) and nothing else does."""
    tile = parse_tile(tile)
    temporal = parse_temporal(temporal)
    if model in CLASSICAL:
        if device not in ("auto", "cpu"):  # classical methods run on the CPU, but a wrong --device is still wrong
            from enhancer.restore.device import select_device

            select_device(device)
        # a scale it cannot do: ArgumentError, a UsageError
        return _with_temporal(ClassicalUpscaler(model, scale or 2), temporal, per_frame_default=False)
    from enhancer.restore import weights
    from enhancer.restore.field import is_field_file
    from enhancer.restore.neural import ModelRestorer

    path = weights.resolve(model)
    if is_field_file(path):
        return _with_temporal(_field_restorer(path, scale, device=device, precision=precision, tile=tile,
                                              chunk=chunk), temporal, per_frame_default=True)
    loaded = weights.load_model(path)
    generator, card = loaded.model, loaded.card
    if scale is not None and scale != generator.scale:
        fit = [n for n, _, c in weights.catalogue() if c.scale == scale]
        raise UsageError(f"model {card.name} works at x{generator.scale}, not x{scale}",
                         hint=(f"x{scale} models: {', '.join(fit)}" if fit else
                               f"no x{scale} model is installed; classical: {', '.join(CLASSICAL)}")
                         + f"; or {option('scale')} {generator.scale} for {card.name}")
    restorer = ModelRestorer(generator, name=card.name, device=device, precision=precision, tile=tile, chunk=chunk,
                             card=card.__dict__)
    # what the pixels depend on, beyond the restorer's own settings: see enhancer.pipeline.recipe
    restorer.weights_sha256 = loaded.sha256
    return _with_temporal(restorer, temporal, per_frame_default=False)


def _field_restorer(path, scale: int | None, *, device: str, precision: str, tile, chunk) -> Restorer:
    """A restorer for a file of the field's models, checked against ``scale``."""
    from enhancer.restore import field
    from enhancer.restore.device import select_device
    from enhancer.restore.frames import FrameRestorer

    fm = field.load(path, device=select_device(device))
    if scale is not None and scale != fm.scale:
        raise UsageError(f"model {fm.name} ({fm.arch}) works at x{fm.scale}, not x{scale}",
                         hint=f"{option('scale')} {fm.scale}, or omit {option('scale')}")
    return FrameRestorer(fm, device=device, precision=precision, tile=tile, chunk=chunk)
