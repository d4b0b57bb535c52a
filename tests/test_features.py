"""The MobileNetV2 weights shipped inside the package: found on a fresh install, faithful to
torchvision's original file, and rebuilt from it exactly."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from conftest import ROOT, SHARED, needs_shared
from enhancer.quality import feature_weights
from enhancer.quality import features
from enhancer.errors import EnhancerError
from enhancer.quality.evaluate import frames

ORIGINAL = SHARED / "weights" / feature_weights.SOURCE_FILE
needs_original = needs_shared("weights", feature_weights.SOURCE_FILE)


@pytest.fixture
def fresh_install(monkeypatch, tmp_path):
    """No override and an empty torchvision cache: what a fresh install sees."""
    monkeypatch.delenv("ENHANCER_MOBILENET_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))


def _sample_pairs() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Frames of the sample clips against blurred, noisy and re-scaled copies of themselves."""
    import cv2

    rng = np.random.default_rng(0)
    pairs = []
    for clip in ("bikes.mp4", "traffic.mp4", "onepiece.mp4"):
        for k, img in enumerate(frames(str(ROOT / "samples" / clip))):
            if k == 6:
                break
            if k % 3:
                continue
            h, w = img.shape[:2]
            small = cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
            for other in (cv2.GaussianBlur(img, (5, 5), 2), cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC),
                          np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)):
                pairs.append(tuple(torch.from_numpy(x).permute(2, 0, 1)[None].float() / 255 for x in (img, other)))
    return pairs


def test_fresh_install_uses_the_shipped_copy(fresh_install):
    dist = features.PerceptualDistance("mobilenet_v2")
    assert dist.features.source == feature_weights.SHIPPED
    assert "IMAGENET1K_V1" in dist.name and "shipped" in dist.name and "RANDOM" not in dist.name
    assert feature_weights.SHIPPED.stat().st_size < 1_200_000
    a = torch.rand(1, 3, 48, 64)
    assert float(dist(a, a)[0]) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(EnhancerError, match="needs all 19 blocks"):  # fid asks for the whole network
        dist.features.embed(a)


@needs_original
def test_shipped_distances_equal_the_originals(fresh_install, monkeypatch):
    shipped = features.PerceptualDistance("mobilenet_v2")
    monkeypatch.setenv("ENHANCER_MOBILENET_WEIGHTS", str(ORIGINAL))
    original = features.PerceptualDistance("mobilenet_v2")
    assert original.features.source == ORIGINAL and len(original.features.body) == 19
    worst = 0.0
    with torch.inference_mode():
        for a, b in _sample_pairs():
            d_orig, d_ship = float(original(a, b)[0]), float(shipped(a, b)[0])
            assert 0.05 < d_orig < 2
            worst = max(worst, abs(d_orig - d_ship))
    assert worst < 1e-3  # float16 storage: measured 1.5e-4 at most on these frames


@needs_original
def test_shipped_file_is_rebuilt_exactly(tmp_path):
    assert hashlib.sha256(ORIGINAL.read_bytes()).hexdigest() == feature_weights.SOURCE_SHA256
    from safetensors import safe_open

    again = feature_weights.write(ORIGINAL, tmp_path / "again.safetensors")
    with safe_open(str(again), "pt") as a, safe_open(str(feature_weights.SHIPPED), "pt") as b:
        assert a.metadata() == b.metadata() and "BSD-3-Clause" in b.metadata()["licence"]
        assert sorted(a.keys()) == sorted(b.keys())
        for key in a.keys():
            assert torch.equal(a.get_tensor(key), b.get_tensor(key)), key
    kept = feature_weights.read()
    assert sorted({k.split(".")[1] for k in kept}, key=int) == [str(i) for i in range(14)]
    original = torch.load(ORIGINAL, map_location="cpu", weights_only=True)
    for key, value in kept.items():
        assert torch.equal(value, original[key].half().float()), key


def test_override_that_is_missing_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("ENHANCER_MOBILENET_WEIGHTS", str(tmp_path / "nope.pth"))
    with pytest.raises(EnhancerError, match="nope.pth") as err:
        features.PerceptualDistance("mobilenet_v2")
    assert "\n" not in str(err.value)
