"""Training losses: pixel, perceptual, adversarial, feature matching, temporal.

Clips are (N, 3, T, H, W) in [0, 1].
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from enhancer.quality.features import PerceptualDistance


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """A smooth L1: sqrt((x - y)^2 + eps^2), averaged."""
    return torch.sqrt((pred - target).pow(2) + eps * eps).mean()


def frames_of(clip: torch.Tensor) -> torch.Tensor:
    """(N, 3, T, H, W) -> (N*T, 3, H, W)."""
    n, c, t, h, w = clip.shape
    return clip.transpose(1, 2).reshape(n * t, c, h, w)


def perceptual_loss(dist: PerceptualDistance, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return dist(frames_of(pred).clamp(0, 1), frames_of(target)).mean()


def temporal_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between the frame-to-frame changes of the output and of the truth (flicker penalty)."""
    if pred.shape[2] < 2:
        return pred.new_zeros(())
    return (torch.diff(pred, dim=2) - torch.diff(target, dim=2)).abs().mean()


def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str = "nonsat") -> torch.Tensor:
    """Discriminator loss. ``nonsat``: the original GAN's log loss, -log D(x) - log(1 - D(G(z)));
    ``hinge``: max(0, 1 - D(x)) + max(0, 1 + D(G(z)))."""
    if kind == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_adv_loss(fake_logits: torch.Tensor, kind: str = "nonsat") -> torch.Tensor:
    """Generator adversarial loss. ``nonsat``: -log D(G(z)) (the non-saturating form);
    ``hinge``: -D(G(z))."""
    if kind == "hinge":
        return -fake_logits.mean()
    return F.softplus(-fake_logits).mean()


def feature_matching(real_feats: list[torch.Tensor], fake_feats: list[torch.Tensor]) -> torch.Tensor:
    """L1 between the discriminator's intermediate features on real and generated clips."""
    return sum((f - r.detach()).abs().mean() for r, f in zip(real_feats, fake_feats)) / max(1, len(real_feats))
