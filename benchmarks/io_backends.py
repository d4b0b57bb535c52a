"""Decode and encode through two backends, measured on the same inputs (issue 14, "One media layer").

``ffmpeg``: enhancer's own path, an ffmpeg subprocess (:class:`enhancer.media.reader.FrameReader`,
raw RGB on a pipe with pts from ``showinfo``; :class:`enhancer.media.muxer.Encoder`, raw RGB in a
hand-made Matroska stream on stdin).  ``pyav``: PyAV (PyPI ``av``) in process.  PyAV variants:

- ``pyav``        decode with frame threads (thread_type AUTO), RGB by ``reformat`` with the reader's
                  matrix, range and sws flags (bicubic+accurate_rnd+full_chroma_int); encode libx264
                  with the muxer's preset/crf, YUV by ``reformat`` with the muxer's matrix/range/flags
- ``pyav-graph``  decode as ``pyav``, RGB through an ``av.filter.Graph`` holding the reader's own
                  ``scale=...,format=rgb24`` filter string (decode only)
- ``pyav-plain``  PyAV's defaults: slice threads only, ``to_ndarray(format="rgb24")`` (bilinear,
                  the frame's own colour tags: BT.601 where the source has none) (decode only)

Also a transcode (decode to RGB, encode again: enhancer's passthrough without the model): ffmpeg
FrameReader into Encoder; pyav the pyav-graph decode into the pyav encode, in one thread.

Used by ``io_throughput.py --backends ffmpeg,pyav``; importable without PyAV (``HAVE_AV``).
"""
from __future__ import annotations

import itertools
import statistics
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

try:
    import av
    import av.filter
    from av.video.reformatter import Interpolation

    HAVE_AV = True
    AV_ERROR = ""
except ImportError as e:  # the ffmpeg backend still runs
    av = None
    HAVE_AV = False
    AV_ERROR = str(e)

from enhancer.media import ffmpeg as ff
from enhancer.media.colour import Colour, source_colour
from enhancer.media.encode import EncodeOptions
from enhancer.media.muxer import Encoder
from enhancer.media.probe import probe
from enhancer.media.reader import FrameReader
from enhancer.media.videoinfo import VideoInfo

CRF, PRESET = 18, "medium"  # what io_throughput's passthrough (and enhancer's default h264) uses
_SWS_CS = {"bt709": "ITU709", "bt601": "ITU601", "fcc": "FCC", "smpte240m": "SMPTE240M", "bt2020": "BT2020"}
DECODERS = ("ffmpeg", "pyav", "pyav-graph", "pyav-plain")
ENCODERS = ("ffmpeg", "pyav")


def _flags():
    return Interpolation.BICUBIC | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT


def _range(colour: Colour) -> str:
    return "JPEG" if colour.range == "pc" else "MPEG"


def _reader_filter(colour: Colour) -> str:
    """The RGB conversion FrameReader puts in its ffmpeg graph (8-bit YUV sources)."""
    return (f"scale=in_color_matrix={colour.sws_matrix}:in_range={colour.range}"
            f":flags=bicubic+accurate_rnd+full_chroma_int,format=rgb24")


def _muxer_filter(colour: Colour) -> str:
    return (f"scale=out_color_matrix={colour.sws_matrix}:out_range={colour.range}"
            f":flags=bicubic+accurate_rnd+full_chroma_int,format=yuv420p")


# ---------------------------------------------------------------------------------------- decode
def decode_ffmpeg(path: str, keep: bool = False):
    """(frame count, [(pts, time_base)], [images] if keep), the way enhancer decodes (probe included)."""
    info = probe(path)
    times, images = [], []
    with FrameReader(info, deinterlace="off") as reader:
        for f in reader:
            times.append((f.pts, f.time_base))
            if keep:
                images.append(f.image)
    return len(times), times, images


def _graph(stream, filt: str):
    g = av.filter.Graph()
    src = g.add_buffer(template=stream)
    chain = [src] + [g.add(*(part.split("=", 1) if "=" in part else (part,))) for part in filt.split(",")]
    sink = g.add("buffersink")
    for a, b in zip(chain, chain[1:] + [sink]):
        a.link_to(b)
    g.configure()
    return g


def decode_pyav(path: str, variant: str = "pyav", colour: Colour | None = None, keep: bool = False):
    """Same result shape as :func:`decode_ffmpeg`; ``colour`` is the reader's (source_colour)."""
    with av.open(path) as c:
        s = c.streams.video[0]
        if variant != "pyav-plain":
            s.thread_type = "AUTO"
        times, images = [], []
        if variant == "pyav-graph":
            g = _graph(s, _reader_filter(colour))
        kw = {}
        if variant == "pyav":
            kw = dict(src_colorspace=_SWS_CS.get(colour.sws_matrix, "ITU709"), src_color_range=_range(colour),
                      interpolation=_flags())
        for frame in c.decode(s):
            times.append((frame.pts, frame.time_base))
            if variant == "pyav-graph":
                g.push(frame)
                img = g.pull().to_ndarray()
            else:
                img = frame.to_ndarray(format="rgb24", **kw)
            if keep:
                images.append(img)
        if variant == "pyav-graph":
            g.push(None)
    return len(times), times, images


def decode(backend: str, path: str, colour: Colour, keep: bool = False):
    return decode_ffmpeg(path, keep) if backend == "ffmpeg" else decode_pyav(path, backend, colour, keep)


# ---------------------------------------------------------------------------------------- encode
def encode_ffmpeg(out: Path, info: VideoInfo, colour: Colour, frames) -> int:
    """Enhancer's encoder, picture only (a part, as every output's picture is made), libx264 crf/preset as above."""
    with Encoder(str(out), info, EncodeOptions(codec="h264", crf=CRF, preset=PRESET, audio="none"), colour) as m:
        for img, pts, tb in frames:
            m.write(img, pts, tb)
    return m.frames


def encode_pyav(out: Path, info: VideoInfo, colour: Colour, frames) -> int:
    """libx264 in process; each frame keeps its pts and time base (the source's clock).
    ``frames``: any iterable of (image, pts, time_base)."""
    it = iter(frames)
    first = next(it)
    img0, pts0, tb = first
    h, w = img0.shape[:2]
    with av.open(str(out), "w") as c:
        s = c.add_stream("libx264", rate=info.fps or None)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.time_base = tb
        cc = s.codec_context
        cc.time_base = tb
        cc.thread_type = "AUTO"  # PyAV's default (SLICE) would make x264 use sliced threads
        cc.options = {"crf": str(CRF), "preset": PRESET}
        cc.color_range = 2 if colour.range == "pc" else 1
        cc.colorspace = {"bt709": 1, "smpte170m": 6, "bt470bg": 5, "bt2020nc": 9}.get(colour.space, 2)
        kw = dict(format="yuv420p", dst_colorspace=_SWS_CS.get(colour.sws_matrix, "ITU709"),
                  dst_color_range=_range(colour), interpolation=_flags())
        n = 0
        for img, pts, ftb in itertools.chain([first], it):
            vf = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(**kw)
            vf.pts, vf.time_base = pts, ftb
            c.mux(s.encode(vf))
            n += 1
        c.mux(s.encode(None))
    return n


def encode(backend: str, out: Path, info: VideoInfo, colour: Colour, frames) -> int:
    return (encode_ffmpeg if backend == "ffmpeg" else encode_pyav)(out, info, colour, frames)


# ------------------------------------------------------------------------------------- transcode
def transcode(backend: str, path: str, out: Path) -> int:
    """Decode to RGB and encode again, frame by frame (enhancer's passthrough without the model):
    ffmpeg: FrameReader into Encoder (two subprocesses); pyav: the pyav-graph decode into the pyav
    encode, in this process and thread."""
    info = probe(path)
    colour = source_colour(info)
    if backend == "ffmpeg":
        with FrameReader(info, deinterlace="off") as reader:
            return encode_ffmpeg(out, info, colour, ((f.image, f.pts, f.time_base) for f in reader))

    def frames():
        with av.open(path) as c:
            s = c.streams.video[0]
            s.thread_type = "AUTO"
            g = _graph(s, _reader_filter(colour))
            for frame in c.decode(s):
                g.push(frame)
                yield g.pull().to_ndarray(), frame.pts, frame.time_base

    return encode_pyav(out, info, colour, frames())


# ------------------------------------------------------------------------------------- agreement
def _diff(a: list[np.ndarray], b: list[np.ndarray]) -> tuple[int, float, float]:
    """(max abs diff, mean abs diff, share of samples that differ) over paired frames."""
    mx, tot, ndiff, n = 0, 0.0, 0, 0
    for x, y in zip(a, b):
        d = np.abs(x.astype(np.int16) - y.astype(np.int16))
        mx = max(mx, int(d.max()))
        tot += float(d.sum())
        ndiff += int(np.count_nonzero(d))
        n += d.size
    return mx, tot / max(n, 1), ndiff / max(n, 1)


def _seconds(times) -> list[Fraction]:
    return [Fraction(p) * tb for p, tb in times]


def _psnr(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    mse = statistics.fmean(float(np.mean((x.astype(np.float64) - y) ** 2)) for x, y in zip(a, b))
    return 10 * np.log10(255 ** 2 / mse) if mse else float("inf")


def _x264_version(path: Path) -> str:
    data = path.read_bytes()[:2_000_000]
    i = data.find(b"x264 - core ")
    return data[i + 7:i + 20].split(b" ")[1].decode() if i >= 0 else "?"


def check_decode(path: str, colour: Colour, variants: list[str]) -> list[str]:
    n0, t0, im0 = decode_ffmpeg(path, keep=True)
    lines = []
    for v in variants:
        n, t, im = decode_pyav(path, v, colour, keep=True)
        same_pts = _seconds(t) == _seconds(t0)
        mx, mean, share = _diff(im0, im)
        lines.append(f"      {v:11s} vs ffmpeg: frames {n} / {n0}, pts {'identical' if same_pts else 'DIFFER'}, "
                     f"RGB max |diff| {mx}, mean {mean:.3f}, {100 * share:.1f}% of samples differ")
    return lines


def check_yuv(colour: Colour, images: list[np.ndarray]) -> str:
    """The muxer's RGB->YUV conversion (ffmpeg CLI's scale filter) against PyAV's reformat with
    the same matrix, range and flags, on the same RGB frames."""
    h, w = images[0].shape[:2]
    proc = subprocess.run([ff.tools().ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt",
                           "rgb24", "-s", f"{w}x{h}", "-i", "pipe:0", "-vf", _muxer_filter(colour), "-f", "rawvideo",
                           "pipe:1"], input=b"".join(i.tobytes() for i in images), capture_output=True, check=True)
    size = w * h * 3 // 2
    ours = [np.frombuffer(proc.stdout[k * size:(k + 1) * size], np.uint8) for k in range(len(images))]
    kw = dict(format="yuv420p", dst_colorspace=_SWS_CS.get(colour.sws_matrix, "ITU709"),
              dst_color_range=_range(colour), interpolation=_flags())
    theirs = [np.concatenate([np.frombuffer(bytes(p), np.uint8).reshape(p.height, p.line_size)[:, :p.width].ravel()
                              for p in av.VideoFrame.from_ndarray(i, format="rgb24").reformat(**kw).planes])
              for i in images]
    mx, mean, share = _diff(ours, theirs)
    return (f"      RGB->YUV (muxer's scale filter vs PyAV reformat, same matrix/range/flags), {len(images)} frames: "
            f"max |diff| {mx}, mean {mean:.3f}, {100 * share:.1f}% of samples differ")


def check_encode(tmpd: Path, info: VideoInfo, colour: Colour, frames, tag: str) -> list[str]:
    """Encode the same frames (every 7th dropped: variable frame rate) with both backends into MKV
    and MP4; read both back with the ffmpeg backend; compare counts, times and pictures."""
    vfr = [f for k, f in enumerate(frames) if k % 7 != 3]
    src_t = [pts * tb for _, pts, tb in vfr]
    lines = []
    for ext in (".mkv", ".mp4"):
        outs = {}
        for b in ENCODERS:
            out = tmpd / f"agree_{tag}_{b}{ext}"
            encode(b, out, info, colour, vfr)
            n, t, im = decode_ffmpeg(str(out), keep=True)
            outs[b] = (n, t, im, out)
        (n0, t0, im0, o0), (n1, t1, im1, o1) = outs["ffmpeg"], outs["pyav"]
        s0, s1 = _seconds(t0), _seconds(t1)
        # times relative to the first frame (the muxer counts from the source's origin)
        r0, r1 = [x - s0[0] for x in s0], [x - s1[0] for x in s1]
        rs = [x - src_t[0] for x in src_t]
        err0 = max(abs(a - b) for a, b in zip(r0, rs)) if n0 == len(rs) else None
        err1 = max(abs(a - b) for a, b in zip(r1, rs)) if n1 == len(rs) else None
        mx, mean, _ = _diff(im0, im1)
        src_imgs = [f[0] for f in vfr]
        lines.append(f"      {ext} VFR ({len(vfr)} frames in): frames ffmpeg {n0} / pyav {n1}; max |time - source time| "
                     f"ffmpeg {float(err0) * 1e3 if err0 is not None else float('nan'):.3f} ms, pyav "
                     f"{float(err1) * 1e3 if err1 is not None else float('nan'):.3f} ms; times equal: {r0 == r1}; "
                     f"first pts {float(s0[0]):.4f} / {float(s1[0]):.4f} s")
        lines.append(f"           pictures ffmpeg vs pyav output: max |diff| {mx}, mean {mean:.3f}; PSNR vs source "
                     f"ffmpeg {_psnr(src_imgs, im0):.2f} dB, pyav {_psnr(src_imgs, im1):.2f} dB; "
                     f"size {o0.stat().st_size // 1024} / {o1.stat().st_size // 1024} KiB; "
                     f"x264 core {_x264_version(o0)} / {_x264_version(o1)}")
    return lines


# ------------------------------------------------------------------------------------------ runs
def run(clips: list[tuple[str, Path]], tmpd: Path, backends: list[str], repeats: int, check: bool = True,
        transcodes: bool = True) -> None:
    """Interleaved runs (the order rotates each repeat), medians of ``repeats``."""
    dec = [d for d in DECODERS if d.split("-")[0] in backends]
    enc = [e for e in ENCODERS if e in backends]
    print(f"(c) backends, median of {repeats} interleaved runs (order rotated each run); libx264 crf {CRF} "
          f"preset {PRESET}; ffmpeg {ff.tools().version_text}"
          + (f"; PyAV {av.__version__} (FFmpeg {av.ffmpeg_version_info})" if HAVE_AV else ""))
    for label, clip in clips:
        info = probe(str(clip))
        colour = source_colour(info)
        _, times, images = decode_ffmpeg(str(clip), keep=True)
        frames = [(im, p, tb) for im, (p, tb) in zip(images, times)]
        n = len(frames)
        res: dict[tuple[str, str], list[float]] = {}
        for r in range(repeats):
            print(f"  [{label}: run {r + 1} of {repeats}]", file=sys.stderr, flush=True)
            order_d = dec[r % len(dec):] + dec[:r % len(dec)]
            order_e = enc[r % len(enc):] + enc[:r % len(enc)]
            for b in order_d:
                t0 = time.perf_counter()
                got, _, _ = decode(b, str(clip), colour)
                res.setdefault(("decode", b), []).append(got / (time.perf_counter() - t0))
            for b in order_e:
                out = tmpd / f"enc_{b}.mkv"
                t0 = time.perf_counter()
                got = encode(b, out, info, colour, frames)
                res.setdefault(("encode", b), []).append(got / (time.perf_counter() - t0))
                out.unlink()
            if transcodes:
                for b in order_e:
                    out = tmpd / f"tr_{b}.mkv"
                    t0 = time.perf_counter()
                    got = transcode(b, str(clip), out)
                    res.setdefault(("transcode", b), []).append(got / (time.perf_counter() - t0))
                    out.unlink()
        print(f"    {label}: {n} frames {info.width}x{info.height} {info.codec} {info.pix_fmt}, colour {colour.space}/"
              f"{colour.range}{' (guessed)' if colour.guessed else ''}")
        for (what, b), v in res.items():
            base = res.get((what, "ffmpeg"))
            # each run measures every backend back to back: the ratio within a run cancels most of
            # the load that other processes put on the machine from one run to the next
            ratio = (f"   x{statistics.median(x / y for x, y in zip(v, base)):.2f} of ffmpeg (median of per-run ratios)"
                     if base and b != "ffmpeg" else "")
            print(f"      {what:9s} {b:11s} {statistics.median(v):7.1f} frames/s{ratio}   runs: "
                  + " ".join(f"{x:.1f}" for x in v))
        if check and HAVE_AV:
            print("    agreement:")
            for line in check_decode(str(clip), colour, [d for d in dec if d != "ffmpeg"]):
                print(line)
            print(check_yuv(colour, [f[0] for f in frames[:30]]))
            if "ffmpeg" in enc and "pyav" in enc:
                for line in check_encode(tmpd, info, colour, frames[:90], label.replace(" ", "")):
                    print(line)
