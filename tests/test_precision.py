"""Precision choices that hold on any machine: fp32 on CUDA is exact fp32 (no TF32), the CPU's
bf16 path is chosen only where the CPU has bf16 arithmetic, and it stays close to fp32."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from enhancer.restore import weights
from enhancer.restore import device as dev
from enhancer.restore.neural import ModelRestorer


@pytest.fixture
def tf32_flags():
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32,
             torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision)
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cuda.matmul.allow_tf32 = True
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved[:2]
    torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision = saved[2:]


def test_fp32_on_cuda_turns_tf32_off(tf32_flags):
    dev.exact_fp32(torch.device("cuda"), torch.float32)
    assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    assert torch.backends.cudnn.conv.fp32_precision == "ieee"
    assert torch.backends.cuda.matmul.fp32_precision == "ieee"


def test_other_precisions_leave_tf32_alone(tf32_flags):
    dev.exact_fp32(torch.device("cuda"), torch.bfloat16)
    dev.exact_fp32(torch.device("cpu"), torch.float32)
    assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32


def test_cpu_auto_precision_follows_the_cpu(monkeypatch):
    monkeypatch.setenv("ENHANCER_CPU_BF16", "1")
    assert dev.select_dtype("auto", torch.device("cpu")) == torch.bfloat16
    monkeypatch.setenv("ENHANCER_CPU_BF16", "0")
    assert dev.select_dtype("auto", torch.device("cpu")) == torch.float32
    monkeypatch.delenv("ENHANCER_CPU_BF16")
    flags = open("/proc/cpuinfo").read() if __import__("os").path.exists("/proc/cpuinfo") else ""
    assert dev.cpu_has_bf16() == ("avx512_bf16" in flags or "amx_bf16" in flags)


def test_bf16_asked_on_a_cpu_that_only_emulates_it_is_warned_of_once(monkeypatch, caplog):
    """An explicit bf16 on a CPU without bf16 arithmetic runs (the user asked) but says, once, that
    it is emulated and slow (23x fp32 for a training step on an AVX2 CPU)."""
    import logging

    dev.warn_emulated_bf16.cache_clear()
    for has in ("1", "0"):
        monkeypatch.setenv("ENHANCER_CPU_BF16", has)
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            assert dev.select_dtype("bf16", torch.device("cpu")) == torch.bfloat16
            assert dev.select_dtype("bf16", torch.device("cpu")) == torch.bfloat16
        warned = [r for r in caplog.records if "emulated" in r.getMessage()]
        assert len(warned) == (1 if has == "0" else 0)
    dev.warn_emulated_bf16.cache_clear()


def test_cpu_bf16_keeps_fp32_weights_and_stays_close_to_fp32():
    g, _ = weights.load(weights.resolve("general-x2"))
    rng = np.random.default_rng(0)
    base = (rng.random((20, 24, 3)) * 255).astype(np.uint8)
    import cv2

    big = cv2.resize(base, (96, 80), interpolation=cv2.INTER_CUBIC)
    frames = np.stack([np.roll(big, k, axis=1)[:64, :72] for k in range(7)])  # a pan, 3 output frames
    fp32 = ModelRestorer(g, device="cpu", precision="fp32", tile=0).restore(frames)
    r16 = ModelRestorer(g, device="cpu", precision="bf16", tile=0)
    assert r16.autocast and next(r16.model.parameters()).dtype == torch.float32
    bf16 = r16.restore(frames)
    mse = np.mean((fp32.astype(float) - bf16.astype(float)) ** 2)
    assert 10 * np.log10(255 ** 2 / max(mse, 1e-12)) >= 45
