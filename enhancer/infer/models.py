"""Turn a ``--model`` value into a ready :class:`~enhancer.infer.restorer.Restorer`."""
from __future__ import annotations

from enhancer.errors import EnhancerError
from enhancer.infer.restorer import CLASSICAL, ClassicalUpscaler, Restorer


def load_restorer(model: str, scale: int | None = None, *, device: str = "auto", precision: str = "auto",
                  tile: int | str | None = "auto", chunk: int | None = None) -> Restorer:
    """``lanczos`` / ``bicubic`` / ``bilinear`` / ``nearest``: classical, at ``scale`` (default 2).
    Anything else: a shipped model name (``enhancer models``) or a .safetensors path."""
    if model in CLASSICAL:
        return ClassicalUpscaler(model, scale or 2)
    from enhancer import weights
    from enhancer.infer.neural import ModelRestorer

    path = weights.resolve(model)
    loaded = weights.load_model(path)
    generator, card = loaded.model, loaded.card
    if scale is not None and scale != generator.scale:
        fit = [n for n, _, c in weights.catalogue() if c.scale == scale]
        raise EnhancerError(f"model {card.name} works at x{generator.scale}, not x{scale}",
                            hint=(f"x{scale} models: {', '.join(fit)}" if fit else
                                  f"no x{scale} model is installed; classical: {', '.join(CLASSICAL)}")
                            + f"; or omit --scale to use {card.name} at x{generator.scale}")
    restorer = ModelRestorer(generator, name=card.name, device=device, precision=precision, tile=tile, chunk=chunk,
                             card=card.__dict__)
    # what the pixels depend on, beyond the restorer's own settings: see enhancer.pipeline.recipe
    restorer.weights_sha256 = loaded.sha256
    return restorer
