"""The parts of one training step: the generator on a batch, stage 2's discriminator updates,
the generator's loss terms and their weighted sum, and the EMA update."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from enhancer.train import losses
from enhancer.train.build import _Models
from enhancer.train.config import TrainConfig


def _generate(g: nn.Module, lq: torch.Tensor, fusion: bool) -> torch.Tensor:
    """The generator on a batch: clips (B, 3, T + 2r, h, w) or stacks (B, T, 3 (2r + 1), h, w)
    -> (B, 3, T, sh, sw)."""
    if not fusion:
        return g(lq)
    b, t = lq.shape[:2]
    out = g(lq.flatten(0, 1).contiguous(memory_format=torch.channels_last))  # (B*T, 3, sh, sw)
    return out.reshape(b, t, *out.shape[1:]).transpose(1, 2)


def _centre(lq: torch.Tensor, radius: int, frames_out: int, fusion: bool) -> torch.Tensor:
    """The low-quality centre frames of a batch, (B, 3, T, h, w)."""
    if fusion:
        return lq[:, :, 3 * radius:3 * radius + 3].transpose(1, 2)
    return lq[:, :, radius:radius + frames_out]


def _upscaled(centre: torch.Tensor, scale: int) -> torch.Tensor:
    """(B, 3, T, h, w) -> bicubic (B, 3, T, sh, sw): the discriminators' condition."""
    b, _, t, h, w = centre.shape
    up = losses.frames_of(centre)
    if scale > 1:
        up = F.interpolate(up, scale_factor=scale, mode="bicubic", align_corners=False)
    return up.reshape(b, t, 3, h * scale, w * scale).transpose(1, 2)



def _d_steps(m: _Models, d_nets, out: torch.Tensor, hr: torch.Tensor, cond: torch.Tensor, cfg: TrainConfig,
             amp) -> dict:
    """One update of each discriminator on real and (detached) generated clips."""
    terms = {}
    for name, net, opt in d_nets:
        with amp():
            if name == "d":
                real, _ = net(hr, cond)
                fake, _ = net(out.detach(), cond)
            else:
                real, _ = net(losses.frames_of(hr), losses.frames_of(cond))
                fake, _ = net(losses.frames_of(out.detach()), losses.frames_of(cond))
        loss = losses.d_loss(real.float(), fake.float(), cfg.adv_loss)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        terms[name] = loss.detach()
    return terms


def _g_terms(m: _Models, d_nets, out: torch.Tensor, hr: torch.Tensor, cond: torch.Tensor | None, cfg: TrainConfig,
             amp) -> dict:
    """The generator's loss terms (unweighted)."""
    terms = {"pixel": losses.charbonnier(out, hr), "temporal": losses.temporal_loss(out, hr)}
    for name, net, _ in d_nets:
        with amp():
            if name == "d":
                fake, fake_feats = net(out, cond)
                with torch.no_grad():
                    _, real_feats = net(hr, cond)
            else:
                fake, fake_feats = net(losses.frames_of(out), losses.frames_of(cond))
                with torch.no_grad():
                    _, real_feats = net(losses.frames_of(hr), losses.frames_of(cond))
        suffix = "" if name == "d" else "_frame"
        terms["adv" + suffix] = losses.g_adv_loss(fake.float(), cfg.adv_loss)
        terms["feature_match" + suffix] = losses.feature_matching([f.float() for f in real_feats],
                                                                  [f.float() for f in fake_feats])
    if m.perceptual is not None:
        terms["perceptual"] = losses.perceptual_loss(m.perceptual, out, hr)
    return terms


def _weighted(terms: dict, cfg: TrainConfig) -> torch.Tensor:
    weights = {"pixel": cfg.w_pixel, "temporal": cfg.w_temporal, "adv": cfg.w_adv,
               "feature_match": cfg.w_feature_match, "adv_frame": cfg.w_adv * cfg.frame_weight,
               "feature_match_frame": cfg.w_feature_match * cfg.frame_weight, "perceptual": cfg.w_perceptual}
    return sum(weights[k] * v for k, v in terms.items() if k in weights)


def _ema_update(m: _Models, cfg: TrainConfig, step: int) -> None:
    with torch.no_grad():
        decay = min(cfg.ema, (1 + step) / (10 + step))
        for pe, pg in zip(m.ema.parameters(), m.g.parameters()):
            pe.lerp_(pg.detach(), 1 - decay)
