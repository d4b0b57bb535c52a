"""Runs a generator over windows of frames: device, precision, spatial tiling, OOM recovery.

Two architectures run here. The spatio-temporal :class:`~enhancer.models.generator.Generator`
takes a window (1, 3, T + 2r, H, W) and consumes its temporal context. The aligned-fusion
:class:`~enhancer.models.fusion.FusionGenerator` takes one motion-aligned stack per output frame,
made from the window by :func:`~enhancer.models.align.align_stacks` on whole frames first.

Tiles are cut with an overlap of at least the generator's spatial receptive radius, at even
pixel positions, and only their centres are kept, so a tiled result equals the untiled one (up
to float rounding). Chunks over time need no such care: each output frame depends only on its
own window of neighbours, and the reader supplies the same context around each frame however
the video is chunked.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from enhancer.errors import EnhancerError, ModelError, UsageError, option
from enhancer.restore import int8
from enhancer.restore.device import dtype_name, exact_fp32, memory_budget, select_device, select_dtype
from enhancer.restore.restorer import MODEL_CHUNK
from enhancer.models.align import align_stacks
from enhancer.models import ALIGNED
from enhancer.models.blocks import channels_last
from enhancer.models.fusion import FusionGenerator
from enhancer.models.st3d import ST3DGenerator
from enhancer.models.generator import Generator

MIN_TILE = 32
AUTO_TILE_MIN = 256  # the chunk shrinks before automatic tiles get smaller than this
MIN_BUDGET = 256 << 20  # host bytes planned for however little is available
PROCESS_BASE = 512 << 20  # the interpreter, torch and the model, before any frame
# aligned stacks are made for this many output frames at a time at most (host memory)
STACK_BYTES = 256 << 20
# on the CPU, the activations of one model pass over stacks stay under this (one 720p stack of
# the default model needs about half of it), and a pass covers at most CPU_PASS_PIXELS of stacks:
# batching stacks gains a CPU nothing (one 720p stack a pass ran 10 % faster a frame than two, in
# bf16 and in int8; at 320x180, one or four made no difference)
CPU_PASS_BYTES = 768 << 20
CPU_PASS_PIXELS = 1 << 16


class ModelRestorer:
    """A :class:`~enhancer.restore.restorer.Restorer` backed by a :class:`Generator`."""

    def __init__(self, model: Generator | FusionGenerator, *, name: str = "model", device: str = "auto",
                 precision: str = "auto", tile: int | str | None = "auto", chunk: int | None = None,
                 card: dict | None = None):
        self.device = select_device(device)
        self.name = name
        self.card = card or {}
        ranges = int8_ranges(precision, model, self.card, self.device)
        self.int8 = ranges is not None
        self.dtype = torch.float32 if self.int8 else select_dtype(precision, self.device)
        exact_fp32(self.device, self.dtype)
        # bf16 on the CPU: fp32 weights under autocast, so the bicubic base and the residual's sum
        # stay fp32 (63 dB from fp32's output on real footage; bf16 weights and input: 55 dB)
        self.autocast = self.device.type == "cpu" and self.dtype == torch.bfloat16
        self.fusion = isinstance(model, ALIGNED)
        self.parameter_count = sum(p.numel() for p in model.parameters())
        # channels-last: measured 16% faster on this project's 2-core CPU, and the layout cuDNN
        # prefers (and the int8 model's)
        self.memory_format = torch.channels_last if self.fusion else torch.channels_last_3d
        if self.int8:
            self.model = int8.Int8Fusion(model.eval().float(), ranges)
            self.int8_sha256 = int8.recipe_key(ranges)
        else:
            self.model = channels_last(model.eval().to(self.device, torch.float32 if self.autocast else self.dtype))
        self.scale = model.scale
        self.margin = model.temporal_radius
        self.chunk = chunk or MODEL_CHUNK.get(self.device.type, MODEL_CHUNK["cpu"])
        self.chunk_request = chunk  # None: chunk_for() fits the chunk to the memory available
        self.reserve = 0  # host bytes others need meanwhile (the encoder): set by chunk_for()
        # even, so that tiles start on even pixels (the fusion model's half-resolution branch)
        self.overlap = (model.spatial_radius + 3) // 2 * 2
        self.tile_request = tile
        self._tile: int | None = None if tile in (None, 0, "0") else (None if tile == "auto" else
                                                                     (int(tile) + 1) // 2 * 2)
        self._auto_done = tile != "auto"
        self.oom_retries = 0

    # ---- sizing -------------------------------------------------------------------------
    def _bytes_per_pixel(self, frames_in: int) -> int:
        """Rough peak activation bytes per low-res pixel for one pass (measured shape of the net:
        a few C-channel feature maps over every input frame, plus the upscaled output)."""
        cfg = self.model.config
        itemsize = torch.finfo(self.dtype).bits // 8
        if isinstance(self.model, ST3DGenerator):  # every frame of a stack has its own feature maps
            f = 2 * cfg.radius + 1
            per_frame = (f * (12 + 2 * cfg.channels + cfg.time_channels // 2) + cfg.low_channels // 2
                         + 2 * cfg.channels + 3 * cfg.scale ** 2)
            return frames_in * (per_frame * itemsize + 3 * cfg.scale ** 2 * 4)
        if self.fusion:  # frames_in stacks: the input, ~3 maps at full and ~2 at half resolution
            per_frame = 3 * (2 * cfg.radius + 1) + 3 * cfg.channels + cfg.low_channels // 2 + 3 * cfg.scale ** 2
            if self.int8:  # 8-bit maps; the float stack and its scaled copy, the float base and output
                return frames_in * (per_frame + 3 * (2 * cfg.radius + 1) * 8 + 3 * cfg.scale ** 2 * 8)
            return frames_in * (per_frame * itemsize + 3 * cfg.scale ** 2 * 4)
        feats = frames_in * cfg.channels * 4
        out = (frames_in - 2 * self.margin) * 3 * cfg.scale ** 2 * 3
        return (feats + out) * itemsize + frames_in * 3 * 4

    def _frame_bytes(self, height: int, width: int, chunk: int) -> int:
        """Host bytes of the whole-frame buffers around one pass of ``chunk`` output frames (8-bit
        source): decoded frames queued, windowed and stacked, the float input window, the float
        output, its integer copy and the frames queued for the encoder, with a quarter more for
        the allocator's slack (measured at 2160p, benchmarks/memory.py)."""
        r, s2 = self.margin, self.scale ** 2
        frame = height * width * 3
        frames_in = chunk + 2 * r
        decoded = (max(8, frames_in) + chunk + 3 * r + 1 + frames_in) * frame
        floats = (frames_in + chunk * s2) * frame * 4
        if self.fusion:  # two passes' aligned stacks (the next is aligned beside the model), each with its copy
            floats += 2 * 2 * (2 * r + 1) * frame * 4
        return (decoded + floats + (chunk + max(4, chunk) + 2) * frame * s2) * 5 // 4

    def _tile_bytes(self, side_h: int, side_w: int, frames_in: int) -> int:
        return (side_h + 2 * self.overlap) * (side_w + 2 * self.overlap) * self._bytes_per_pixel(frames_in)

    def _host_budget(self) -> int:
        return max(memory_budget(torch.device("cpu")) - self.reserve - PROCESS_BASE, MIN_BUDGET)

    def chunk_for(self, height: int, width: int, reserve: int = 0) -> int:
        """Output frames per pass for frames of this size: the one asked for, else the default
        halved until the whole-frame buffers and tiles of at least AUTO_TILE_MIN pixels (the
        whole frame with --tile 0) fit the host memory budget, less ``reserve`` bytes that
        others (the encoder) need meanwhile."""
        self.reserve = reserve
        if self.chunk_request:
            return self.chunk_request
        budget = self._host_budget()
        side_h, side_w = (height, width) if self._auto_done and self._tile is None else \
            (min(height, self._tile or AUTO_TILE_MIN), min(width, self._tile or AUTO_TILE_MIN))
        chunk = self.chunk
        while chunk > 1:
            need = self._frame_bytes(height, width, chunk)
            if self.device.type == "cpu":
                need += self._tile_bytes(side_h, side_w, chunk + 2 * self.margin)
            if need <= budget:
                break
            chunk //= 2
        return chunk

    def auto_tile(self, height: int, width: int, frames_in: int) -> int | None:
        """The largest square tile whose activations fit the memory budget (None: no tiling). On
        the CPU the whole-frame buffers share that budget, so the defaults never use more than
        about half the memory available (see :func:`~enhancer.restore.device.memory_budget`)."""
        budget = memory_budget(self.device) if self.device.type == "cuda" else self._host_budget()
        if self.device.type == "cpu":
            chunk = max(1, frames_in - 2 * self.margin)
            floor = self._tile_bytes(AUTO_TILE_MIN, AUTO_TILE_MIN, frames_in)  # however short memory is
            budget = max(budget - self._frame_bytes(height, width, chunk), floor)
        pixels = budget / self._bytes_per_pixel(frames_in)
        if pixels >= (height + 2 * self.overlap) * (width + 2 * self.overlap):
            return None
        side = int(math.sqrt(pixels)) - 2 * self.overlap
        return max(MIN_TILE, side // 8 * 8)

    # ---- running ------------------------------------------------------------------------
    @torch.inference_mode()
    def forward_float(self, lq: torch.Tensor, peak: float | None = None) -> torch.Tensor:
        """(1, 3, T + 2r, H, W) in [0, 1] (or integers up to ``peak``) on the CPU -> (1, 3, T, sH,
        sW) on the CPU: float32, or with ``peak`` integers rounded and clamped on the device."""
        _, _, t_in, h, w = lq.shape
        if not self._auto_done:
            self._tile = self.auto_tile(h, w, t_in)
            self._auto_done = True
        return self._forward_oom(lq, peak)

    def _run(self, x: torch.Tensor, peak: float | None = None) -> torch.Tensor:
        """The model on one tile. Integer input (uint8, or int32 holding 16-bit values) is sent
        as it is and normalised on the device; with ``peak`` the output is rounded, clamped and
        made integer there too, so only integers cross the bus (and fill host memory)."""
        if self.device.type == "cuda":
            x = x.pin_memory()
        x = x.to(self.device, non_blocking=True)
        dtype = torch.float32 if self.autocast else self.dtype
        x = x.to(dtype).div_(peak) if not x.is_floating_point() else x.to(dtype)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
            y = self.model(x.contiguous(memory_format=self.memory_format)).float()
        # NaN would come out as black frames reported done; a NaN or infinity anywhere makes the sum
        # one (a reduction: no full-size mask as isfinite().all() makes)
        if not bool(torch.isfinite(y.sum())):
            raise ModelError(f"model {self.name} produced NaN or infinite values; nothing was written",
                             hint=f"try {option('precision')} fp32, or another model")
        if peak is None:
            return y.cpu()
        y = y.mul_(peak).round_().clamp_(0, peak)
        return y.to(torch.uint8 if peak == 255 else torch.int32).cpu()

    def _tiled(self, lq: torch.Tensor, tile: int | None, peak: float | None = None) -> torch.Tensor:
        """The model over ``lq`` (any leading dims, (H, W) last) in tiles of ``tile`` pixels."""
        h, w = lq.shape[-2:]
        s, ov = self.scale, self.overlap
        if tile is None or (tile >= h and tile >= w):
            return self._run(lq, peak)
        out = None
        for y0 in range(0, h, tile):
            y1 = min(y0 + tile, h)
            for x0 in range(0, w, tile):
                x1 = min(x0 + tile, w)
                iy0, iy1, ix0, ix1 = max(0, y0 - ov), min(h, y1 + ov), max(0, x0 - ov), min(w, x1 + ov)
                res = self._run(lq[..., iy0:iy1, ix0:ix1], peak)
                if out is None:
                    out = torch.empty(*res.shape[:-2], h * s, w * s, dtype=res.dtype)
                out[..., y0 * s:y1 * s, x0 * s:x1 * s] = \
                    res[..., (y0 - iy0) * s:(y1 - iy0) * s, (x0 - ix0) * s:(x1 - ix0) * s]
        return out

    @torch.inference_mode()
    def forward_stacks(self, frames: np.ndarray, peak: float | None = None) -> torch.Tensor:
        """Fusion model: (T + 2r, H, W, 3) float32 in [0, 1] -> (T, 3, sH, sW) float32 (with
        ``peak``: integers, see :meth:`_run`), the aligned stacks made a few output frames at a
        time (host memory stays bounded)."""
        r = self.margin
        t_in, h, w, _ = frames.shape
        t = t_in - 2 * r
        if not self._auto_done:
            self._tile = self.auto_tile(h, w, min(t, self.chunk))
            self._auto_done = True
        per = max(1, min(t, STACK_BYTES // ((2 * r + 1) * h * w * 3 * 4)))
        if self.device.type == "cpu":  # a pass of several large stacks is no faster on a CPU, only larger
            side = None if self._tile is None else self._tile + 2 * self.overlap
            area = h * w if side is None else min(h, side) * min(w, side)
            per = max(1, min(per, CPU_PASS_BYTES // (self._bytes_per_pixel(1) * area), CPU_PASS_PIXELS // area))
        def stacked(c0: int) -> torch.Tensor:
            stacks = align_stacks(frames, r, centres=list(range(r + c0, r + min(t, c0 + per))))  # (b, 2r+1, H, W, 3)
            # (b, 3(2r+1), H, W) held channels-last, the layout the model runs in: one copy
            return torch.from_numpy(stacks).permute(0, 2, 3, 1, 4).reshape(len(stacks), h, w, -1).permute(0, 3, 1, 2)

        starts = list(range(0, t, per))
        if len(starts) == 1:
            return self._forward_oom(stacked(0), peak)
        # the next pass's alignment (OpenCV and NumPy, outside the GIL) runs beside this pass's model
        outs = []
        with ThreadPoolExecutor(1, thread_name_prefix="align") as pool:
            ahead = pool.submit(stacked, starts[0])
            for i in range(len(starts)):
                x = ahead.result()
                if i + 1 < len(starts):
                    ahead = pool.submit(stacked, starts[i + 1])
                outs.append(self._forward_oom(x, peak))
        return torch.cat(outs)

    def _forward_oom(self, x: torch.Tensor, peak: float | None = None) -> torch.Tensor:
        """The model on tiles, halving the tile on CUDA out-of-memory errors."""
        h, w = x.shape[-2:]
        while True:
            try:
                return self._tiled(x, self._tile, peak)
            except torch.cuda.OutOfMemoryError:
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                current = self._tile or max(h, w)
                if current <= MIN_TILE:
                    raise EnhancerError(f"out of GPU memory even with {MIN_TILE}-pixel tiles",
                                        hint=f"use {option('device')} cpu or a smaller {option('chunk')}") from None
                self._tile = max(MIN_TILE, current // 2 // 2 * 2)
                self.oom_retries += 1

    @torch.inference_mode()
    def restore(self, images: np.ndarray) -> np.ndarray:
        """(T + 2r, H, W, 3) uint8|uint16 -> (T, sH, sW, 3), same dtype."""
        peak = 65535.0 if images.dtype == np.uint16 else 255.0
        if self.fusion:
            x = images.astype(np.float32)
            x /= np.float32(peak)  # in place: one float copy of the window, not two
            y = self.forward_stacks(x, peak)  # (T, 3, sH, sW)
            y = y.permute(0, 2, 3, 1)
        else:
            x = torch.from_numpy(images if images.dtype == np.uint8 else images.astype(np.int32))
            y = self.forward_float(x.permute(3, 0, 1, 2).unsqueeze(0), peak)[0].permute(1, 2, 3, 0)  # (T, sH, sW, 3)
        return y.numpy().astype(images.dtype, copy=False)

    def describe(self) -> dict:
        d = {"model": self.name, "kind": "neural", "scale": self.scale, "device": str(self.device),
             "precision": "int8" if self.int8 else dtype_name(self.dtype), "chunk": self.chunk,
             "tile": self._tile if self._auto_done else self.tile_request, "oom_retries": self.oom_retries}
        if self.int8:  # the ranges decide the pixels too (enhancer.pipeline.recipe)
            d["int8"] = self.int8_sha256
        return d


def int8_ranges(precision: str, model, card: dict, device: torch.device) -> dict | None:
    """The card's int8 ranges where the model is to run in int8, else None. ``int8`` asked for
    and impossible here is a one-line error saying why; ``auto`` takes int8 where
    :data:`~enhancer.restore.int8.AUTO` says it is the default and everything it needs is there
    (an x86 CPU with VNNI or AVX2, an aligned-fusion fidelity model calibrated on its card)."""
    ranges = card.get("int8") or {}
    fits = isinstance(model, FusionGenerator)
    problem = int8.check_ranges(ranges, model) if fits and ranges else None
    if precision == "auto":  # the fidelity models were measured in int8; the texture variants were not
        ok = (int8.AUTO and device.type == "cpu" and fits and ranges and not problem and int8.available()
              and card.get("variant", "fidelity") != "texture"
              and (int8.weight_max() == 127 or card.get("name") in int8.AUTO_7BIT))
        return ranges if ok else None
    if precision != "int8":
        return None
    name = card.get("name") or "this model"
    if device.type != "cpu":
        raise UsageError("int8 runs on the CPU only", hint=f"{option('device')} cpu, or {option('precision')} auto")
    if not fits:
        raise UsageError(f"{name} has no int8 form: int8 is for enhancer's aligned-fusion models",
                         hint=f"{option('precision')} auto")
    if not ranges:
        raise UsageError(f"{name} was not calibrated for int8 (its card has no int8 ranges)",
                         hint="calibrate it on a training set with `enhancer calibrate`, or use "
                              f"{option('precision')} auto")
    if problem:
        raise ModelError(f"{name}: bad int8 ranges on its card: {problem}", hint=f"{option('precision')} auto")
    if not int8.available():
        raise UsageError("int8 needs an x86 CPU with AVX2 or VNNI and PyTorch with oneDNN",
                         hint=f"{option('precision')} auto")
    return ranges
