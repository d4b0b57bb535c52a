"""Model speed benchmark: measured figures beside baselines measured in the same run.

For the ``fusion-s`` (aligned fusion, the default model's size), ``small`` and ``base`` (spatio-
temporal) generators at 320x180 -> 640x360 (x2) it prints frames/s of
  * the model alone (one chunk of output frames per pass from float frames already in memory,
    context frames included in the cost; for fusion-s the flow alignment included, and the
    network alone beside it),
  * the restore round trip (8-bit frames in, 8-bit frames out: what the engine calls),
  * the whole ``enhance`` path (decode, model, encode with libx264 crf 18 preset medium),
beside
  (a) ffmpeg's own lanczos upscale + the same encode, on the same clip, and
  (b) SRVGGNetCompact, Real-ESRGAN's compact video network in its realesr-animevideov3
      configuration (16 convs of 64 channels, PReLU, pixel shuffle; x2 here), reimplemented with
      random weights, for timing only; it sees 1 frame where ours sees 5.
Weights are random too (speed does not depend on them). On CUDA (``--device cuda``) the same
table is printed with the precision and the GPU named.

    python benchmarks/model_speed.py [--device cpu|cuda] [--frames 48] [--configs fusion-s,small,base]
        [--scales 2]   # e.g. --configs fusion-s --scales 1,2,4: the shipped models' three jobs

``--scales`` times every method at each scale (x1: restoration at the input's size, where
lanczos is the encode alone and SRVGGNetCompact's pixel shuffle is of factor 1).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from enhancer.pipeline.engine import EnhanceOptions
from enhancer.pipeline.enhance import enhance_video
from enhancer.restore.neural import ModelRestorer
from enhancer.media import ffmpeg as ff
from enhancer.media.encode import EncodeOptions
from enhancer.media.probe import probe
import numpy as np

from enhancer.models.align import align_stacks
from enhancer.models.fusion import FUSION_CONFIGS, FusionConfig, FusionGenerator, fusion_complexity
from enhancer.models.generator import CONFIGS, Generator, GeneratorConfig, complexity


class SRVGGNetCompact(nn.Module):
    """Real-ESRGAN's compact net (num_feat=64, num_conv=16, PReLU), reimplemented for timing."""

    def __init__(self, num_feat: int = 64, num_conv: int = 16, upscale: int = 2):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, num_feat, 3, 1, 1), nn.PReLU(num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.PReLU(num_feat)]
        layers += [nn.Conv2d(num_feat, 3 * upscale * upscale, 3, 1, 1), nn.PixelShuffle(upscale)]
        self.body = nn.Sequential(*layers)
        self.upscale = upscale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + nn.functional.interpolate(x, scale_factor=self.upscale, mode="nearest")


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--frames", type=int, default=48, help="frames in the clip for the whole-path timing")
    ap.add_argument("--chunk", type=int, default=8)
    ap.add_argument("--configs", default="fusion-s,small,base")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--scales", default="2", help="comma-separated output scales (1, 2, 4)")
    args = ap.parse_args()
    for scale in (int(x) for x in args.scales.split(",")):
        _run(args, scale)


def _run(args, scale: int) -> None:
    tools = ff.configure()
    dev = torch.device(args.device)
    h, w = 180, 320
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "in.mp4"
        fps_clip = 30
        ff.run([tools.ffmpeg, "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                f"testsrc2=size={w}x{h}:rate={fps_clip}", "-vf", "noise=alls=8:allf=t", "-frames:v",
                str(args.frames), "-c:v", "libx264", "-crf", "23", "-pix_fmt", "yuv420p", str(clip)])
        info = probe(str(clip))
        enc = EncodeOptions(codec="h264", crf=18, preset="medium")

        # (a) ffmpeg lanczos + the same encode
        t0 = time.perf_counter()
        ff.run([tools.ffmpeg, "-loglevel", "error", "-y", "-i", str(clip), "-vf",
                f"scale={scale * w}:{scale * h}:flags=lanczos", "-c:v", "libx264", "-crf", "18", "-preset", "medium",
                str(Path(tmp) / "lanczos.mp4")])
        fps_lanczos = args.frames / (time.perf_counter() - t0)

        # (b) SRVGGNetCompact alone, same output frames per pass
        srvgg = SRVGGNetCompact(upscale=scale).eval().to(dev)
        x1 = torch.rand(args.chunk, 3, h, w, device=dev)
        with torch.inference_mode():
            t_srvgg = _time(lambda: srvgg(x1), args.repeats)
        fps_srvgg = args.chunk / t_srvgg

        print(f"device: {dev}" + (f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else
                                  f" ({torch.get_num_threads()} threads)"))
        print(f"input {w}x{h} -> {scale * w}x{scale * h} (x{scale}), chunk {args.chunk} output frames per pass")
        print(f"{'method':<38}{'params':>10}{'MACs/out px':>13}{'model fps':>11}{'restore fps':>13}"
              f"{'enhance fps':>13}{'vs SRVGG':>10}{'e2e/model':>11}")
        print(f"{'ffmpeg lanczos + x264':<38}{'-':>10}{'-':>13}{'-':>11}{'-':>13}{fps_lanczos:>13.2f}")
        sr_params = sum(p.numel() for p in srvgg.parameters())
        sr_macs = sum(m.in_channels * m.out_channels * 9 for m in srvgg.modules()
                      if isinstance(m, nn.Conv2d)) / (scale * scale)
        print(f"{'SRVGGNetCompact (1 frame in)':<38}{sr_params:>10d}{sr_macs:>13.0f}{fps_srvgg:>11.2f}{'-':>13}"
              f"{'-':>13}{1.0:>10.2f}")
        rng = np.random.default_rng(0)
        for name in args.configs.split(","):
            torch.manual_seed(0)
            if name in FUSION_CONFIGS:
                cfg = FusionConfig(**{**FUSION_CONFIGS[name].to_dict(), "scale": scale})
                cx, model = fusion_complexity(cfg), FusionGenerator(cfg)
            else:
                cfg = GeneratorConfig(**{**CONFIGS[name].to_dict(), "scale": scale})
                cx, model = complexity(cfg, frames=args.chunk), Generator(cfg)
            restorer = ModelRestorer(model, name=name, device=args.device, precision=args.precision, tile=0,
                                     chunk=args.chunk)
            r = restorer.margin
            # a moving, textured window of 8-bit frames (alignment has real work to do)
            base = (rng.random((h + 64, w + 64 + 3 * (args.chunk + 2 * r), 3)) * 255).astype(np.uint8)
            frames8 = np.stack([base[:h, 3 * t:3 * t + w] for t in range(args.chunk + 2 * r)])
            frames = frames8.astype(np.float32) / 255
            if restorer.fusion:
                t_model = _time(lambda: restorer.forward_stacks(frames), args.repeats)
                stacks = align_stacks(frames, r)
                xs = torch.from_numpy(stacks).permute(0, 1, 4, 2, 3).flatten(1, 2)
                t_net = _time(lambda: restorer._forward_oom(xs), args.repeats)
            else:
                xin = torch.from_numpy(frames).permute(3, 0, 1, 2)[None]
                t_model = _time(lambda: restorer.forward_float(xin), args.repeats)
                t_net = None
            t_restore = _time(lambda: restorer.restore(frames8), args.repeats)
            fps_model, fps_restore = args.chunk / t_model, args.chunk / t_restore
            res = enhance_video(info, str(Path(tmp) / f"{name}.mp4"), restorer, enc, EnhanceOptions(progress=False))
            label = f"enhancer {name} (5 frames in, {restorer.describe()['precision']})"
            print(f"{label:<38}{cx['params']:>10d}{cx['macs_per_output_pixel']:>13.0f}{fps_model:>11.2f}"
                  f"{fps_restore:>13.2f}{res.fps:>13.2f}{fps_model / fps_srvgg:>10.2f}{res.fps / fps_model:>11.2f}")
            if t_net is not None:
                print(f"{'  of which the network alone':<38}{'':>10}{'':>13}{args.chunk / t_net:>11.2f}")


if __name__ == "__main__":
    main()
