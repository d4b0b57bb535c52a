"""Turn a ``--model`` value into a ready :class:`~enhancer.infer.restorer.Restorer`."""
from __future__ import annotations

from enhancer.errors import UsageError
from enhancer.infer.restorer import CLASSICAL, ClassicalUpscaler, Restorer


DEFAULT_MODEL = "general-x2"


def choose_model(model: str | None, task: str | None = None, scale: int | None = None) -> tuple[str, str | None]:
    """The model to load, and a note for the user (or None): the one named (checked against
    ``task``), else the installed model for ``task`` and ``scale``, else lanczos when no model is
    installed at all."""
    if model in CLASSICAL:  # no PyTorch to import (about 0.5 GB and a second) for a classical method
        return model, None
    from enhancer import weights

    if model is None:
        if not weights.available():
            return "lanczos", f"no model is installed (not even {DEFAULT_MODEL}); using lanczos"
        return weights.pick(task, scale), None
    if task is not None:
        card = weights.read_card(weights.resolve(model))
        if weights.task_of(card) != task:
            fit = [n for n, _, c in weights.catalogue() if weights.task_of(c) == task]
            raise UsageError(f"model {card.name} is for --task {weights.task_of(card)}, not {task}",
                             hint=f"{task} models: {', '.join(fit) or 'none installed'}; or omit --task")
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


def load_restorer(model: str, scale: int | None = None, *, device: str = "auto", precision: str = "auto",
                  tile: int | str | None = "auto", chunk: int | None = None) -> Restorer:
    """``lanczos`` / ``bicubic`` / ``bilinear`` / ``nearest``: classical, at ``scale`` (default 2).
    Anything else: a shipped model name (``enhancer models``) or a .safetensors path. ``tile`` as
    :func:`parse_tile` reads it."""
    tile = parse_tile(tile)
    if model in CLASSICAL:
        if device not in ("auto", "cpu"):  # classical methods run on the CPU, but a wrong --device is still wrong
            from enhancer.infer.device import select_device

            select_device(device)
        return ClassicalUpscaler(model, scale or 2)  # a scale it cannot do: ArgumentError, a UsageError
    from enhancer import weights
    from enhancer.infer.neural import ModelRestorer

    path = weights.resolve(model)
    loaded = weights.load_model(path)
    generator, card = loaded.model, loaded.card
    if scale is not None and scale != generator.scale:
        fit = [n for n, _, c in weights.catalogue() if c.scale == scale]
        raise UsageError(f"model {card.name} works at x{generator.scale}, not x{scale}",
                         hint=(f"x{scale} models: {', '.join(fit)}" if fit else
                               f"no x{scale} model is installed; classical: {', '.join(CLASSICAL)}")
                         + f"; or --scale {generator.scale} for {card.name}")
    restorer = ModelRestorer(generator, name=card.name, device=device, precision=precision, tile=tile, chunk=chunk,
                             card=card.__dict__)
    # what the pixels depend on, beyond the restorer's own settings: see enhancer.pipeline.recipe
    restorer.weights_sha256 = loaded.sha256
    return restorer
