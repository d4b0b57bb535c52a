"""What PyAV (PyPI ``av``) holds and tells, against what enhancer's ffmpeg path needs (issue 14).

Prints: the FFmpeg libraries the wheel bundles; which encoders and filters it has; for small
files made here with the system ffmpeg (chapters, an attachment, a forced subtitle, language and
title tags, a start time, a timecode, non-square pixels, a display matrix, interlaced coding,
colour tags) what PyAV gives directly and what needs a workaround; the probe's speed (ffprobe
through enhancer's probe, against PyAV); how each backend reacts to a truncated file; and 10-bit
decoding to 16-bit RGB.

    python benchmarks/pyav_facts.py [--repeats 7]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from enhancer.media import ffmpeg as ff

try:
    import av
    import av.filter
    import av.logging
except ImportError as e:
    raise SystemExit(f"PyAV does not import ({e}); pip install av")

# AVColorSpace / AVFieldOrder values (libavutil/pixfmt.h, libavcodec/defs.h): PyAV gives the numbers only
_SPC = {0: "rgb", 1: "bt709", 2: None, 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 9: "bt2020nc",
        10: "bt2020c"}
_FIELD = {0: "unknown", 1: "progressive", 2: "tt", 3: "bb", 4: "tb", 5: "bt"}


def sh(*argv: str) -> None:
    ff.run([ff.tools().ffmpeg, "-hide_banner", "-loglevel", "error", "-y", *argv])


def make_files(d: Path) -> dict[str, Path]:
    (d / "ch.txt").write_text(";FFMETADATA1\ntitle=Film\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=1000\ntitle=One\n"
                              "[CHAPTER]\nTIMEBASE=1/1000\nSTART=1000\nEND=2000\ntitle=Two\n")
    (d / "s.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n")
    (d / "f.ttf").write_bytes(b"\0" * 4096)
    src = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=2"]
    f = {k: d / k for k in ("tagged.mkv", "sar_tc.mp4", "rot.mp4", "inter.mkv", "ten.mkv", "cut.mkv")}
    sh(*src, "-f", "lavfi", "-i", "sine=duration=2", "-i", str(d / "s.srt"), "-i", str(d / "ch.txt"),
       "-map", "0:v", "-map", "1:a", "-map", "2:s", "-map_metadata", "3", "-map_chapters", "3",
       "-attach", str(d / "f.ttf"), "-metadata:s:t", "mimetype=application/x-truetype-font",
       "-c:v", "libx264", "-pix_fmt", "yuv420p", "-colorspace", "bt709", "-color_primaries", "bt709",
       "-color_trc", "bt709", "-color_range", "tv", "-c:a", "aac", "-c:s", "srt",
       "-metadata:s:v:0", "language=fra", "-metadata:s:v:0", "title=Main", "-metadata:s:a:0", "language=deu",
       "-disposition:s:0", "forced", "-timecode", "10:00:00:00", "-output_ts_offset", "5", str(f["tagged.mkv"]))
    sh(*src, "-vf", "setsar=4/3", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-colorspace", "smpte170m",
       "-color_primaries", "smpte170m", "-color_trc", "smpte170m", "-timecode", "01:00:00:00",
       "-output_ts_offset", "3", str(f["sar_tc.mp4"]))
    sh("-i", str(f["sar_tc.mp4"]), "-map", "0:v", "-c", "copy", "-metadata:s:v:0", "rotate=90", str(f["rot.mp4"]))
    sh(*src, "-vf", "setfield=tff", "-c:v", "libx264", "-flags", "+ildct+ilme", "-field_order", "tt",
       "-pix_fmt", "yuv420p", str(f["inter.mkv"]))
    sh(*src, "-c:v", "libx265", "-x265-params", "log-level=error", "-pix_fmt", "yuv420p10le", str(f["ten.mkv"]))
    data = f["tagged.mkv"].read_bytes()
    f["cut.mkv"].write_bytes(data[:len(data) * 6 // 10])
    return f


def pyav_facts(path: Path) -> dict:
    """The probe's facts from PyAV: what is direct, and (marked) what needs a workaround."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        cc = v.codec_context
        first = next(c.decode(v))  # workaround: the display matrix is only on decoded frames
        subs = c.streams.subtitles
        return {
            "start_time (s)": c.start_time / 1e6 if c.start_time is not None else None,
            "sar": str(v.sample_aspect_ratio),
            "rotation [frame]": first.rotation,
            "field_order [table]": _FIELD.get(v.field_order, v.field_order),
            "interlaced frame": first.interlaced_frame,
            "colour space [table]": _SPC.get(cc.colorspace, cc.colorspace),
            "range/primaries/trc [ints]": (cc.color_range, cc.color_primaries, cc.color_trc),
            "chapters": len(c.chapters()),
            "attachments": [(a.name, a.mimetype, len(a.data)) for a in c.streams.attachments],
            "sub disposition": [str(s.disposition) for s in subs],
            "video language/title": (v.language, v.metadata.get("title")),
            "timecode [tags]": v.metadata.get("timecode") or c.metadata.get("TIMECODE")
                               or next((s.metadata.get("timecode") for s in c.streams.data), None),
            "nb_frames": v.frames,
            "profile": cc.profile,
            "pix_fmt": cc.pix_fmt,
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    ff.configure()
    from enhancer.media.probe import probe
    from enhancer.media.reader import FrameReader

    print(f"PyAV {av.__version__}, FFmpeg {av.ffmpeg_version_info}: "
          + ", ".join(f"{k} {'.'.join(map(str, v))}" for k, v in av.library_versions.items()))
    root = Path(av.__file__).parent
    size = sum(p.stat().st_size for d in (root, root.parent / "av.libs") if d.exists() for p in d.rglob("*")
               if p.is_file())
    print(f"installed size (av/ + av.libs/): {size / 2 ** 20:.0f} MiB")
    encs = ["libx264", "libx265", "prores_ks", "ffv1", "dnxhd", "mpeg2video", "png", "tiff", "libvmaf"]
    have = []
    for e in encs:
        try:
            av.Codec(e, "w")
            have.append(f"{e} yes")
        except Exception:
            have.append(f"{e} NO")
    print("encoders: " + ", ".join(have))
    print("filters: " + ", ".join(f"{f} {'yes' if f in av.filter.filters_available else 'NO'}"
                                  for f in ("bwdif", "scale", "libvmaf", "psnr", "ssim", "zscale", "showinfo")))
    with tempfile.TemporaryDirectory() as tmp:
        files = make_files(Path(tmp))
        for name in ("tagged.mkv", "sar_tc.mp4", "rot.mp4", "inter.mkv"):
            p = files[name]
            info = probe(str(p))
            ours = {"start_time (s)": info.start_time, "sar": str(info.sar), "rotation [frame]": info.rotation,
                    "field_order [table]": info.field_order, "colour space [table]": info.color_space,
                    "chapters": info.chapters, "attachments": [(a.filename, a.mimetype) for a in info.attachments],
                    "video language/title": (info.video_tags.get("language"), info.video_tags.get("title")),
                    "timecode [tags]": info.timecode, "nb_frames": info.frame_count, "profile": info.profile}
            print(f"{name}:  PyAV  |  enhancer probe ({info.probed_with})")
            for k, val in pyav_facts(p).items():
                print(f"    {k:28s} {val!s:45s} | {ours.get(k, '-')}")
        # probe speed, interleaved
        p = str(files["tagged.mkv"])
        tp, ta = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            probe(p)
            tp.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            pyav_facts(Path(p))
            ta.append(time.perf_counter() - t0)
        print(f"probe of tagged.mkv, median of {args.repeats}: enhancer probe (ffprobe) "
              f"{statistics.median(tp) * 1e3:.1f} ms, PyAV open + streams + first frame {statistics.median(ta) * 1e3:.1f} ms")
        # a truncated file
        cut = str(files["cut.mkv"])
        with FrameReader(probe(cut), deinterlace="off") as r:
            n = sum(1 for _ in r)
        print(f"truncated mkv (60%): ffmpeg reader {n} frames, damage lines {r.damage}, stopped {r.stopped}")
        n, err, corrupt = 0, None, 0
        av.logging.set_level(av.logging.WARNING)  # PyAV passes on no libav log at all by default
        with av.logging.Capture() as logs, av.open(cut) as c:
            try:
                for fr in c.decode(video=0):
                    n += 1
                    corrupt += fr.is_corrupt
            except av.FFmpegError as e:
                err = f"{type(e).__name__}: {e}"
        av.logging.set_level(None)
        print(f"truncated mkv (60%): PyAV {n} frames, {corrupt} flagged corrupt, exception {err}, "
              f"log lines {[m for _, _, m in logs][:3]}")
        # 10-bit
        with av.open(str(files["ten.mkv"])) as c:
            fr = next(c.decode(video=0))
            a = fr.to_ndarray(format="rgb48le")
        print(f"10-bit HEVC: PyAV frame {fr.format.name} -> to_ndarray(rgb48le) {a.dtype} {a.shape}, max {a.max()}")


if __name__ == "__main__":
    sys.exit(main())
