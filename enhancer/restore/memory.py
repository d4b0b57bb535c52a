"""The host memory available to this process, without PyTorch (the classical path never imports it)."""
from __future__ import annotations

import os

MEMORY_ENV = "ENHANCER_MEMORY_AVAILABLE"  # host bytes to assume available (e.g. 8G): tests, benchmarks
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _env_bytes(text: str) -> int | None:
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = text[-1:] if text[-1:] in _UNITS else ""
    try:
        value = float(text[: len(text) - len(unit)] if unit else text)
    except ValueError:
        return None
    return int(value * _UNITS[unit]) if value > 0 else None


def _cgroup_room() -> int | None:
    """Bytes left under this process's cgroup memory limit (containers), where there is one."""
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit_file) as f:
                limit = f.read().strip()
            with open(usage_file) as f:
                usage = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 1 << 60:
            return max(0, int(limit) - usage)
    return None


def host_available() -> int:
    """Bytes of host memory available now: MemAvailable, within any cgroup limit;
    ``ENHANCER_MEMORY_AVAILABLE`` overrides it."""
    override = _env_bytes(os.environ.get(MEMORY_ENV, "")) if os.environ.get(MEMORY_ENV) else None
    if override:
        return override
    available = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except OSError:
        pass
    room = _cgroup_room()
    if room is not None:
        available = min(available, room) if available is not None else room
    return available if available is not None else 4 << 30  # unknown: assume a modest 4 GiB
