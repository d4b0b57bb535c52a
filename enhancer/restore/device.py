"""The one place that picks a device and a precision, and measures free memory."""
from __future__ import annotations

import functools
import logging
import os

import torch

from enhancer.errors import EnhancerError, option
from enhancer.restore.memory import host_available

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
log = logging.getLogger(__name__)


def select_device(name: str = "auto", *, local_rank: int | None = None) -> torch.device:
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``. With ``auto``,
    ``local_rank`` (a process's rank on its machine, as torchrun numbers them) picks that GPU."""
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device("cuda") if local_rank is None else torch.device("cuda", local_rank)
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise EnhancerError(f"unknown device {name!r}", hint="use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise EnhancerError("CUDA was asked for but no CUDA GPU is available", hint=f"use {option('device')} cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise EnhancerError(f"no GPU {dev.index}: this machine has {torch.cuda.device_count()}")
    elif dev.type != "cpu":
        raise EnhancerError(f"unsupported device {name!r}", hint="use auto, cpu, cuda or cuda:N")
    return dev


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags as Linux lists them (empty elsewhere: no cheap way to know there,
    and the precisions they choose are then never the wrong ones)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX): there bf16 convolutions
    run about twice as fast as fp32 (measured on this project's 2-core CPU); elsewhere PyTorch
    emulates them, slower than fp32. ``ENHANCER_CPU_BF16=0`` or ``1`` overrides the detection."""
    forced = os.environ.get("ENHANCER_CPU_BF16", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def select_dtype(precision: str, device: torch.device) -> torch.dtype:
    """``auto``: bf16 on CUDA where supported, else fp16; on the CPU bf16 where the CPU has
    bf16 arithmetic (:func:`cpu_has_bf16`; the model then runs under autocast with fp32 weights,
    63 dB from fp32's output on real footage), else fp32."""
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if cpu_has_bf16() else torch.float32
    if precision not in _DTYPES:
        raise EnhancerError(f"unknown precision {precision!r}", hint="use auto, fp32, bf16 or fp16")
    if device.type == "cpu" and precision == "fp16":
        raise EnhancerError("fp16 is not supported on the CPU", hint="use fp32 or bf16")
    if device.type == "cpu" and precision == "bf16" and not cpu_has_bf16():
        warn_emulated_bf16(f"{option('precision')} bf16", f"{option('precision')} auto picks what this CPU runs fastest")
    return _DTYPES[precision]


@functools.lru_cache(maxsize=None)
def warn_emulated_bf16(setting: str, fix: str) -> None:
    """Once per process and setting: bf16 asked for on a CPU that only emulates it (an st3d-s
    training step took 23x as long as in fp32 on an AVX2 CPU)."""
    log.warning(f"{setting} on a CPU without bf16 arithmetic (AVX512-BF16 or AMX) is emulated and many times "
                f"slower than fp32; {fix}")


def exact_fp32(device: torch.device, dtype: torch.dtype) -> None:
    """fp32 on CUDA means fp32: cuDNN and cuBLAS would otherwise round convolutions and matrix
    products to TF32 (measured 0.156 off the CPU's result on an H200). Both of PyTorch's switches
    are set, the old flags and the per-backend precision of PyTorch 2.9 and later."""
    if device.type != "cuda" or dtype != torch.float32:
        return
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    conv = getattr(getattr(torch.backends.cudnn, "conv", None), "fp32_precision", None)
    if conv is not None:
        torch.backends.cudnn.conv.fp32_precision = "ieee"
        torch.backends.cuda.matmul.fp32_precision = "ieee"


MEMORY_SHARE = 0.5  # of the memory available that the defaults plan to use
def free_memory(device: torch.device) -> int:
    """Bytes that a computation on ``device`` may reasonably use now: free GPU memory, or the
    host's available memory (MemAvailable, within any cgroup limit; ``ENHANCER_MEMORY_AVAILABLE``
    overrides it)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    return host_available()


def memory_budget(device: torch.device) -> int:
    """What the default tile and chunk sizes may plan to use on ``device``: about half of what
    is available, so the rest of the machine (and the encoder) keeps room."""
    return int(free_memory(device) * MEMORY_SHARE)


def dtype_name(dtype: torch.dtype) -> str:
    return {v: k for k, v in _DTYPES.items()}[dtype]
