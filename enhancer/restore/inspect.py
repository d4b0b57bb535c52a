"""What a model is and what ``enhance`` will do with it here (``enhancer models --inspect``): the
model is loaded exactly as ``enhance`` loads it with its default options, and the answer is read
from the restorer that load gives, so it cannot drift from what a run does."""
from __future__ import annotations

from pathlib import Path

from enhancer.errors import UsageError, option

# the frame size the tiling advice is given for: the common case of a 1080p source
ADVICE_SIZE = (1080, 1920)


def inspect_model(model: str, *, device: str = "auto", precision: str = "auto",
                  tile: int | str = "auto", temporal: int | str = "auto") -> list[tuple[str, str]]:
    """(item, value) pairs, one item a line for ``enhancer models --inspect``: what the file is
    (architecture, scale, parameters, channels, value range, precisions, size needs, SHA-256)
    and what ``enhance`` with these options does with it on this machine."""
    from enhancer.restore import weights
    from enhancer.restore.field import file_sha256
    from enhancer.restore.frames import FrameRestorer
    from enhancer.restore.loading import load_restorer
    from enhancer.restore.restorer import CLASSICAL
    from enhancer.restore.temporal import TemporalConsistency

    if model in CLASSICAL:
        raise UsageError(f"{model} is a classical method, not a model file: there is nothing to inspect",
                         hint="give a .pth, .pt, .ckpt, .safetensors or .onnx file, or an installed model's name")
    path = weights.resolve(model)  # a missing file or an unknown name: one ModelError line
    restorer = load_restorer(str(path), device=device, precision=precision, tile=tile, temporal=temporal)
    stage = restorer if isinstance(restorer, TemporalConsistency) else None
    inner = stage.inner if stage else restorer
    items: list[tuple[str, str]] = [("file", str(Path(path).resolve()))]
    if isinstance(inner, FrameRestorer):
        fm = inner.frame_model
        source = "onnxruntime" if fm.kind == "onnx" else "spandrel"
        items += [("architecture", f"{fm.arch} (read by {source}; a per-frame model)"),
                  ("scale", f"x{fm.scale}"),
                  ("parameters", f"{fm.parameters:,}" if fm.parameters is not None else _onnx_parameters(path)),
                  ("channels", "3 in, 3 out (RGB)"),
                  ("value range", "[0, 1] floats in and out (frames divided by 255, or 65535 for 16-bit sources)"),
                  ("precisions", ", ".join(fm.precisions))]
        needs = []
        if fm.multiple_of > 1:
            needs.append(f"height and width multiples of {fm.multiple_of}")
        if fm.minimum:
            needs.append(f"at least {fm.minimum} pixels")
        if fm.square:
            needs.append("square")
        items.append(("size needs", (", ".join(needs) + " (frames and tiles are padded to them, the padding "
                                     "cut from the output)") if needs else "none (any frame size)"))
        advice = {"supported": "tiles are fine", "discouraged": "spandrel advises against tiles (it is a "
                  "transformer that sees the whole frame)", "internal": "the model tiles itself"}
        items.append(("tiling advice", advice.get(fm.tiling, fm.tiling)))
    else:
        card = inner.card or {}
        frames = f"{2 * inner.margin + 1} frames in for each frame out" if inner.margin else "a per-frame model"
        items += [("architecture", f"{card.get('arch', '?')} (enhancer's own model {card.get('name', inner.name)}; "
                                   f"{frames})"),
                  ("scale", f"x{inner.scale}"),
                  ("parameters", f"{inner.parameter_count:,}"),
                  ("channels", "3 in, 3 out (RGB)"
                   + (f"; {card['config']['channels']} feature channels" if "channels" in card.get("config", {})
                      else "")),
                  ("value range", "[0, 1] floats in and out (frames divided by 255, or 65535 for 16-bit sources)"),
                  ("precisions", "fp32, bf16, fp16 (fp16 on CUDA only)"
                   + (", int8 (on x86 CPUs with VNNI or AVX2: calibrated on its card)" if card.get("int8") else "")),
                  ("size needs", "none (any frame size)"),
                  ("tiling advice", f"tiles are fine: they read {inner.overlap} pixels beyond their edges, so a "
                                    "tiled frame is the whole frame's")]
    items.append(("sha256", file_sha256(path)))
    where = getattr(inner, "where", inner.device)
    items.append(("enhance runs it", f"on {where} in {inner.precision if hasattr(inner, 'precision') else _dt(inner)}"
                                     f" ({_precision_reason(precision)})"))
    if stage:
        items.append(("temporal stage", f"on: each frame blended with {stage.radius} neighbours each side, warped "
                                        f"by the input's optical flow ({option('temporal')} off to leave it out)"))
    else:
        why = ("enhancer's own models see their neighbours already" if inner.margin
               else f"{option('temporal')} on to add it" if str(temporal).lower() == "auto" else "asked off")
        items.append(("temporal stage", f"off ({why})"))
    items.append(("tiling", _tiling(inner, stage)))
    return items


def _dt(restorer) -> str:
    return restorer.describe()["precision"]


def _precision_reason(precision: str) -> str:
    return f"{option('precision')} auto: the fastest this device and the architecture allow" if precision == "auto" \
        else f"{option('precision')} {precision}"


def _tiling(inner, stage) -> str:
    """What --tile auto (or the --tile given) does for a 1080p frame on this machine."""
    if inner.tile_request in (None, 0, "0"):
        return f"whole frames ({option('tile')} 0)"
    if inner.tile_request != "auto":
        return f"tiles of {inner._tile} pixels ({option('tile')} {inner.tile_request})"
    if inner._auto_done:  # auto left whole frames: the architecture advises against tiles
        return f"whole frames ({option('tile')} auto never tiles a model that advises against it)"
    h, w = ADVICE_SIZE
    frames_in = inner.chunk + 2 * inner.margin
    side = inner.auto_tile(h, w, frames_in)
    got = "whole frames fit the memory free now" if side is None else f"tiles of {side} pixels"
    return f"{option('tile')} auto: for {w}x{h} frames, {got} (decided again for each video's size)"


def _onnx_parameters(path) -> str:
    """The number of weights in an ONNX graph's initializers, where the onnx package is there."""
    try:
        import onnx
        import numpy as np
    except ImportError:
        return "not counted (pip install onnx to count an ONNX graph's weights)"
    graph = onnx.load(str(path), load_external_data=False).graph
    return f"{sum(int(np.prod(t.dims)) for t in graph.initializer):,}"
