"""Runs a per-frame model of the field (:class:`~enhancer.restore.field.FrameModel`) over frames:
the device, precision, memory planning, tiling and out-of-memory recovery of
:class:`~enhancer.restore.neural.ModelRestorer`, with the frames of a chunk as one batch.

Each tile (or whole frame) is padded at its bottom and right edges, by reflection, to the sizes
the architecture needs (a multiple of a transformer's window, a minimum), and the padding is cut
from the output. Tiles overlap by :data:`OVERLAP` pixels; unlike this project's own generators,
whose receptive field is known, a field model's is not, so a tiled frame can differ slightly from
a whole one near the seams (as with Real-ESRGAN's own tiling): ``--tile 0`` runs whole frames,
and ``--tile auto`` tiles only where a whole frame does not fit the memory available, or never
where the architecture advises against it.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from enhancer.errors import ModelError, UsageError, option
from enhancer.restore.device import cpu_has_bf16, dtype_name, exact_fp32, select_device
from enhancer.restore.field import FrameModel
from enhancer.restore.neural import ModelRestorer
from enhancer.restore.restorer import MODEL_CHUNK

OVERLAP = 24  # input pixels each tile reads beyond its edges (Real-ESRGAN's video script reads 10)
# rough peak bytes per input pixel and frame, in feature values: a few 64-channel maps at the
# input's size (convolutional nets) or a transformer's embedding, MLP and window attention
FEATURES_PER_PIXEL = 1024


class FrameRestorer(ModelRestorer):
    """A :class:`~enhancer.restore.restorer.Restorer` for a per-frame model: margin 0, output frame
    ``i`` made from input frame ``i`` alone."""

    def __init__(self, frame_model: FrameModel, *, device: str = "auto", precision: str = "auto",
                 tile: int | str | None = "auto", chunk: int | None = None):
        fm = frame_model
        self.frame_model = fm
        if fm.kind == "onnx":
            # onnxruntime places the work itself (its session was made for this device): tensors
            # stay on the host, in the dtype the graph takes
            self.device = torch.device("cpu")
            self.where = select_device(device)
            if precision not in ("auto", *fm.precisions):
                raise UsageError(f"the ONNX model {fm.name} runs in {fm.precisions[0]}, not {precision}",
                                 hint=f"{option('precision')} auto or {fm.precisions[0]}")
            self.dtype = torch.float32
            self.precision = fm.precisions[0]
            self.autocast = False
        else:
            self.device = self.where = select_device(device)
            self.dtype = _precision(fm, precision, self.device)
            self.precision = dtype_name(self.dtype)
            exact_fp32(self.device, self.dtype)
            # bf16 on the CPU as enhancer's own models run it: fp32 weights under autocast
            self.autocast = self.device.type == "cpu" and self.dtype == torch.bfloat16
            fm.module.to(self.device, torch.float32 if self.autocast else self.dtype)
        self.fusion = False
        self.memory_format = torch.contiguous_format
        self.model = fm.module  # parameters counted by --executor ray; None for ONNX
        self.name = fm.name
        self.card = fm.card()
        self.weights_sha256 = fm.sha256
        self.scale = fm.scale
        self.margin = 0
        self.chunk = chunk or MODEL_CHUNK.get(self.where.type, MODEL_CHUNK["cpu"])
        self.chunk_request = chunk
        self.reserve = 0
        self.overlap = OVERLAP
        self.tile_request = tile
        whole = tile in (None, 0, "0") or (tile == "auto" and fm.tiling != "supported")
        self._tile = None if whole or tile == "auto" else (int(tile) + 1) // 2 * 2
        self._auto_done = tile != "auto" or whole
        self.oom_retries = 0

    def _bytes_per_pixel(self, frames_in: int) -> int:
        itemsize = torch.finfo(self.dtype).bits // 8
        s2 = self.scale ** 2
        return frames_in * ((FEATURES_PER_PIXEL + 64 * s2) * itemsize + 3 * s2 * 4 * 2)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (N, 3, h, w) padded at the bottom and right to the sizes the model takes."""
        fm = self.frame_model
        h, w = x.shape[-2:]
        th, tw = max(h, fm.minimum), max(w, fm.minimum)
        th, tw = -(-th // fm.multiple_of) * fm.multiple_of, -(-tw // fm.multiple_of) * fm.multiple_of
        if fm.square:
            th = tw = max(th, tw)
        if (th, tw) == (h, w):
            return x
        # reflection reaches at most one pixel less than the side; replication does the rest
        rh, rw = min(th - h, h - 1), min(tw - w, w - 1)
        x = F.pad(x, (0, rw, 0, rh), mode="reflect") if rh or rw else x
        return F.pad(x, (0, tw - w - rw, 0, th - h - rh), mode="replicate")

    def _run(self, x: torch.Tensor, peak: float | None = None) -> torch.Tensor:
        """The model on one tile of frames (N, 3, h, w), as :meth:`ModelRestorer._run`."""
        n, _, h, w = x.shape
        s = self.scale
        if self.device.type == "cuda":
            x = x.pin_memory()
        x = x.to(self.device, non_blocking=True)
        dtype = torch.float32 if self.autocast else self.dtype
        x = x.to(dtype).div_(peak) if not x.is_floating_point() else x.to(dtype)
        padded = self._pad(x)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
            y = self.frame_model.run(padded)
        want = (n, 3, padded.shape[-2] * s, padded.shape[-1] * s)
        if tuple(y.shape) != want:
            raise ModelError(f"model {self.name} turned {list(padded.shape)} into {list(y.shape)}, not {list(want)}",
                             hint="it is not a x{s} model of RGB frames")
        y = y[..., :h * s, :w * s].float()
        if not bool(torch.isfinite(y).all()):
            raise ModelError(f"model {self.name} produced NaN or infinite values; nothing was written",
                             hint=f"try {option('precision')} fp32, or another model")
        y = y.clamp_(0, 1)
        if peak is None:
            return y.cpu()
        y = y.mul_(peak).round_()
        return y.to(torch.uint8 if peak == 255 else torch.int32).cpu()

    @torch.inference_mode()
    def restore(self, images: np.ndarray) -> np.ndarray:
        """(T, H, W, 3) uint8|uint16 -> (T, sH, sW, 3), same dtype."""
        peak = 65535.0 if images.dtype == np.uint16 else 255.0
        t, h, w, _ = images.shape
        if not self._auto_done:
            self._tile = self.auto_tile(h, w, t)
            self._auto_done = True
        x = torch.from_numpy(images if images.dtype == np.uint8 else images.astype(np.int32))
        y = self._forward_oom(x.permute(0, 3, 1, 2), peak)  # (T, 3, sH, sW)
        return y.permute(0, 2, 3, 1).numpy().astype(images.dtype, copy=False)

    def describe(self) -> dict:
        fm = self.frame_model
        return {"model": self.name, "kind": "field", "arch": fm.arch, "source": fm.kind, "scale": self.scale,
                "device": str(self.where), "precision": self.precision, "chunk": self.chunk,
                "tile": self._tile if self._auto_done else self.tile_request, "oom_retries": self.oom_retries}


def _precision(fm: FrameModel, precision: str, device: torch.device) -> torch.dtype:
    """The dtype to run a PyTorch field model in: the one asked for when the architecture takes
    it; with ``auto``, bf16 then fp16 on CUDA and bf16 on a CPU with bf16 arithmetic where the
    architecture takes them, else fp32."""
    names = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if precision == "auto":
        if device.type == "cuda":
            order = ["bf16"] if torch.cuda.is_bf16_supported() else []
            order += ["fp16"]
        else:
            order = ["bf16"] if cpu_has_bf16() else []
        return names[next((p for p in order if p in fm.precisions), "fp32")]
    if precision == "int8":
        raise UsageError(f"{fm.arch} ({fm.name}) has no int8 form: int8 is for enhancer's aligned-fusion models",
                         hint=f"it runs in {', '.join(fm.precisions)}")
    if precision not in names:
        raise UsageError(f"unknown precision {precision!r}", hint="use auto, fp32, bf16 or fp16")
    if device.type == "cpu" and precision == "fp16":
        raise UsageError("fp16 is not supported on the CPU", hint="use fp32 or bf16")
    if precision not in fm.precisions:
        raise UsageError(f"{fm.arch} ({fm.name}) does not run in {precision}",
                         hint=f"it runs in {', '.join(fm.precisions)}")
    return names[precision]
