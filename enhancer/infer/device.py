"""The one place that picks a device and a precision, and measures free memory."""
from __future__ import annotations

import torch

from enhancer.errors import EnhancerError
from enhancer.infer.hostmem import host_available

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


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
            raise EnhancerError("CUDA was asked for but no CUDA GPU is available", hint="use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise EnhancerError(f"no GPU {dev.index}: this machine has {torch.cuda.device_count()}")
    elif dev.type != "cpu":
        raise EnhancerError(f"unsupported device {name!r}", hint="use auto, cpu, cuda or cuda:N")
    return dev


def select_dtype(precision: str, device: torch.device) -> torch.dtype:
    """``auto``: fp32 on the CPU; bf16 on CUDA where supported, else fp16."""
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if precision not in _DTYPES:
        raise EnhancerError(f"unknown precision {precision!r}", hint="use auto, fp32, bf16 or fp16")
    if device.type == "cpu" and precision == "fp16":
        raise EnhancerError("fp16 is not supported on the CPU", hint="use fp32 or bf16")
    return _DTYPES[precision]


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
