"""Validation during training: PSNR-Y and the frame-difference error of the model and of bicubic
on the fixed validation sequences, as ``enhancer evaluate`` measures them, VMAF too in stage 2
(texture is what stage 2 is for, and PSNR falls as it comes), and a picture of one frame."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from enhancer.data.dataset import ClipDataset
from enhancer.models import ALIGNED
from enhancer.train.config import TrainConfig


@torch.no_grad()
def validate(model: nn.Module, data: ClipDataset, indices: np.ndarray, cfg: TrainConfig, device: torch.device,
             grid_path: Path | None = None) -> dict:
    """PSNR-Y of ``model`` and of bicubic on the fixed validation sequences: ``enhancer
    evaluate``'s figure (:func:`enhancer.quality.evaluate.psnr_y` of each 8-bit frame, the mean over all
    frames) on whole frames, a border of 2 * scale left out; the frame-difference error (``fde``:
    flicker against the truth, without a flow) of each; and in stage 2 VMAF of each (ffmpeg's
    libvmaf over all validation frames, one after another: a curve to follow)."""
    from enhancer.quality.evaluate import psnr_y
    from enhancer.models.align import align_stacks

    model.eval()
    fusion = isinstance(model, ALIGNED)
    r = model.temporal_radius
    frames_in = min(data.frames, cfg.frames_out + 2 * r)
    b = cfg.scale * 2
    to8 = lambda x: (x.clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1).numpy())  # noqa: E731
    ours, bic = [], []
    fde_ours, fde_bic = [], []
    frames_v: tuple[list, list, list] | None = ([], [], []) if cfg.stage == 2 else None  # truth, ours, bicubic
    for k, i in enumerate(indices):
        lq_np = np.asarray(data.damaged(i)[:frames_in])
        hr = np.asarray(data.clean(i)[r:frames_in - r])  # (T, H, W, 3) uint8
        if fusion:
            stacks = align_stacks(lq_np.astype(np.float32) / 255, r)
            x = torch.from_numpy(stacks).permute(0, 1, 4, 2, 3).flatten(1, 2)
            out = model(x.to(device)).float().cpu()  # (T, 3, sH, sW)
        else:
            x = torch.from_numpy(lq_np).permute(3, 0, 1, 2)[None].float().div(255)
            out = model(x.to(device)).float().cpu()[0].transpose(0, 1)
        centre = torch.from_numpy(lq_np[r:frames_in - r]).permute(0, 3, 1, 2).float().div(255)
        up = F.interpolate(centre, scale_factor=cfg.scale, mode="bicubic", align_corners=False) \
            if cfg.scale > 1 else centre
        o8, u8 = to8(out), to8(up)
        inner = (slice(b, -b), slice(b, -b))
        ours += [psnr_y(h[inner], o[inner]) for h, o in zip(hr, o8)]
        bic += [psnr_y(h[inner], u[inner]) for h, u in zip(hr, u8)]
        fde_ours.append(_fde(hr, o8))
        fde_bic.append(_fde(hr, u8))
        if frames_v is not None:
            for kept, frames in zip(frames_v, (hr, o8, u8)):
                kept.extend(frames)
        if k == 0 and grid_path is not None:
            import cv2

            t = len(o8) // 2
            lq_big = cv2.resize(lq_np[r + t], hr.shape[2:0:-1], interpolation=cv2.INTER_NEAREST)
            grid_path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(grid_path), np.concatenate([lq_big, o8[t], hr[t]], axis=1)[..., ::-1])
    model.train()
    scores = {"val_psnr_y": float(np.mean(ours)), "val_psnr_y_bicubic": float(np.mean(bic))}
    if not np.isnan(fde_ours).all():  # (one frame out per sequence: no flicker to measure)
        scores |= {"val_fde": float(np.nanmean(fde_ours)), "val_fde_bicubic": float(np.nanmean(fde_bic))}
    if frames_v is not None:
        from enhancer.media import ffmpeg as ff

        if ff.with_filter("libvmaf") is not None:  # (where no ffmpeg has it, validation goes without VMAF)
            scores["val_vmaf"], scores["val_vmaf_bicubic"] = _vmaf(*frames_v)
    return scores


def _fde(truth: np.ndarray, out: np.ndarray) -> float:
    """The mean frame-difference error of one sequence: |(out[t+1] - out[t]) - (truth[t+1] -
    truth[t])| on luma (``enhancer evaluate``'s ``fde``); NaN for a single frame."""
    from enhancer.quality.evaluate import luma

    if len(truth) < 2:
        return float("nan")
    diff = np.stack([luma(o) - luma(t) for t, o in zip(truth, out)])
    return float(np.abs(np.diff(diff, axis=0)).mean())


def _vmaf(truth: list, ours: list, bicubic: list) -> tuple[float, float]:
    """The mean VMAF of our frames and of bicubic's against the truth (each list packed losslessly
    as one clip: VMAF's motion feature then crosses the cuts between sequences, alike for both, so
    this is a curve to follow, not `evaluate`'s figure for any one clip)."""
    import tempfile

    import cv2

    from enhancer.quality.vmaf import vmaf

    with tempfile.TemporaryDirectory() as tmp:
        dirs = []
        for name, frames in (("truth", truth), ("ours", ours), ("bicubic", bicubic)):
            d = Path(tmp) / name
            d.mkdir()
            for j, f in enumerate(frames):
                cv2.imwrite(str(d / f"{j:05d}.png"), np.ascontiguousarray(f[..., ::-1]))
            dirs.append(str(d))
        return (float(np.mean(vmaf(dirs[0], dirs[1], threads=1))),
                float(np.mean(vmaf(dirs[0], dirs[2], threads=1))))
