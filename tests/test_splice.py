"""--splice (issue 15): one segment of a master enhanced and put back frame-exactly; every frame
outside it decodes bit for bit as the source's does, and the sound is the source's own."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import MAKER, decode_frames, make_clip, packet_times, run_cli, stream_md5
from enhancer.errors import UsageError
from enhancer.pipeline.engine import EnhanceOptions
from enhancer.pipeline.enhance import enhance_video
from enhancer.restore.restorer import ClassicalUpscaler
from enhancer.media.encode import EncodeOptions
from enhancer.media.probe import probe


class Invert:
    """A scale-1 'model' whose frames cannot be mistaken for the source's (one frame of context
    on each side, as a temporal model has)."""

    name, scale, margin, chunk = "invert", 1, 1, 4

    def restore(self, images: np.ndarray) -> np.ndarray:
        top = 65535 if images.dtype == np.uint16 else 255
        return (top - images[1:-1]).astype(images.dtype)

    def describe(self) -> dict:
        return {"model": "invert", "kind": "test", "scale": 1, "precision": "fp32"}


def frame_md5s(path: Path) -> list[str]:
    """Each decoded frame's MD5, in presentation order (the source's own pixel format)."""
    out = subprocess.run([MAKER, "-hide_banner", "-loglevel", "error", "-i", str(path), "-map", "0:v:0",
                          "-fps_mode", "passthrough", "-f", "framemd5", "-"],
                         capture_output=True, text=True, check=True).stdout
    return [line.rsplit(",", 1)[1].strip() for line in out.splitlines() if line and not line.startswith("#")]


def packet_crcs(path: Path) -> list[str]:
    out = subprocess.run([MAKER, "-hide_banner", "-loglevel", "error", "-i", str(path), "-map", "0:v:0", "-c", "copy",
                          "-f", "framecrc", "-"], capture_output=True, text=True, check=True).stdout
    return [line.split(",")[5].strip() for line in out.splitlines() if line and not line.startswith("#")]


def source_times(path: Path) -> list[float]:
    """The video's frame times counted from the file's start time (the first timestamp of any
    stream, as ffmpeg's banner gives it), as --start counts."""
    banner = subprocess.run([MAKER, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    start = float(re.search(r"start: (-?[\d.]+)", banner).group(1))
    return [t - start for t in packet_times(path, copyts=True)]


def _splice(src: Path, dst: Path, restorer, start: float, duration: float | None, **opts):
    return enhance_video(probe(str(src)), str(dst), restorer, EncodeOptions(preset="ultrafast"),
                         EnhanceOptions(progress=False, start=start, duration=duration, splice=True, **opts))


def _check_spliced(src: Path, out: Path, first: int, count: int) -> None:
    """Frames [first, first + count) were enhanced, every other one is the source's exactly, at the
    source's times, and the audio packets are the source's."""
    a, b = frame_md5s(src), frame_md5s(out)
    assert len(a) == len(b)
    inside = range(first, first + count)
    assert [k for k in range(len(a)) if a[k] != b[k]] == list(inside)
    ta, tb = packet_times(src), packet_times(out)
    assert np.allclose(ta, tb, atol=1e-6)
    assert stream_md5(src, "a:0") == stream_md5(out, "a:0")


def test_prores_master_is_copied_around_the_segment(tmp_path):
    src = make_clip(tmp_path / "master.mov", size="128x72", seconds=2, vcodec="prores_ks", pix_fmt="yuv422p10le",
                    extra_out=["-profile:v", "lt", "-c:a", "pcm_s16le", "-timecode", "01:00:00:00"])
    res = _splice(src, tmp_path / "fixed.mov", Invert(), 0.6, 0.4)
    assert res.frames == 10
    assert any("copied from the source (ProRes LT)" in w for w in res.warnings), res.warnings
    _check_spliced(src, tmp_path / "fixed.mov", 15, 10)
    # the packets outside the segment are the source's own, byte for byte; the segment is ProRes LT too
    a, b = packet_crcs(src), packet_crcs(tmp_path / "fixed.mov")
    assert a[:15] == b[:15] and a[25:] == b[25:]
    info = probe(str(tmp_path / "fixed.mov"))
    assert (info.codec, info.profile, info.pix_fmt, info.timecode) == ("prores", "LT", "yuv422p10le", "01:00:00:00")


@pytest.mark.parametrize("ext,codec", [(".mp4", "h264"), (".mkv", "ffv1")])
def test_long_gop_source_is_reencoded_losslessly(tmp_path, ext, codec):
    # H.264 with B-frames, the picture starting 0.3 s after the sound: no cut at those frames could be copied
    clip = make_clip(tmp_path / "clip.mp4", size="96x64", seconds=2, extra_out=["-bf", "2", "-g", "12"])
    src = tmp_path / "long.mp4"
    subprocess.run([MAKER, "-loglevel", "error", "-i", str(clip), "-itsoffset", "0.3", "-i", str(clip), "-map", "1:v",
                    "-map", "0:a", "-c", "copy", str(src)], check=True)
    out = tmp_path / f"fixed{ext}"
    res = _splice(src, out, Invert(), 0.75, 0.5, part_seconds=1e-6)  # several parts between head and tail
    assert any("re-encoded losslessly" in w for w in res.warnings), res.warnings
    assert probe(str(out)).codec == codec
    first = next(k for k, t in enumerate(packet_times(src)) if t >= 0.75 - 1e-9)  # the segment's first frame
    assert first == 12 and res.frames in (12, 13)  # 0.5 s at 25 fps, as ffmpeg's -t rounds it
    _check_spliced(src, out, first, res.frames)


@pytest.mark.parametrize("name", ["cut.ts", "late.mp4"])
def test_the_segment_is_exactly_the_frames_in_its_span(tmp_path, name):
    """MPEG-TS seeks land on a later key frame, and ffmpeg's -t counts from the first frame found:
    the segment must still be the source's frames whose times lie in [start, start + duration)."""
    clip = make_clip(tmp_path / "clip.mp4", size="96x64", seconds=3, extra_out=["-bf", "2", "-g", "50"])
    src = tmp_path / name
    if name.endswith(".ts"):
        subprocess.run([MAKER, "-loglevel", "error", "-i", str(clip), "-c", "copy", str(src)], check=True)
    else:  # the picture begins 0.5 s after the sound
        subprocess.run([MAKER, "-loglevel", "error", "-i", str(clip), "-itsoffset", "0.5", "-i", str(clip), "-map",
                        "1:v", "-map", "0:a", "-c", "copy", str(src)], check=True)
    for start, duration in ((1.2, 0.2), (0.3, 0.35), (0.8, 0.03)):
        out = tmp_path / f"o{start}.mkv"
        res = _splice(src, out, Invert(), start, duration)
        times = source_times(src)  # counted from the file's start, as --start is
        span = [k for k, t in enumerate(times) if start - 1e-6 <= t < start + duration - 1e-6]
        a, b = frame_md5s(src), frame_md5s(out)
        assert res.frames == len(span) and [k for k in range(len(a)) if a[k] != b[k]] == span, (start, span)


def test_scale_2_upscales_the_rest_with_lanczos(tmp_path):
    src = make_clip(tmp_path / "web.mp4", size="96x64", seconds=1.6)
    out = tmp_path / "x2.mp4"
    res = _splice(src, out, ClassicalUpscaler("nearest", 2), 0.4, 0.4)
    assert res.frames == 10 and any("upscaled with lanczos" in w for w in res.warnings)
    info = probe(str(out))
    assert (info.width, info.height) == (192, 128)
    assert np.allclose(packet_times(src), packet_times(out), atol=1e-6)
    assert stream_md5(src, "a:0") == stream_md5(out, "a:0")
    got = decode_frames(out).astype(np.float64)
    ref = subprocess.run([MAKER, "-hide_banner", "-loglevel", "error", "-i", str(src), "-vf",
                          "scale=192:128:flags=lanczos", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    ref = np.frombuffer(ref, np.uint8).reshape(-1, 128, 192, 3).astype(np.float64)
    assert got.shape == ref.shape

    def psnr(x, y):
        return 10 * np.log10(255 ** 2 / max(np.mean((x - y) ** 2), 1e-9))

    outside = [psnr(got[k], ref[k]) for k in list(range(10)) + list(range(20, 40))]
    assert min(outside) > 30  # lanczos, through H.264 at CRF 18
    # the segment came from the (nearest-neighbour) model: blockier than lanczos
    assert max(psnr(got[k], ref[k]) for k in range(10, 20)) < min(outside)


@pytest.mark.slow
def test_splice_from_the_command_line(tmp_path):
    src = make_clip(tmp_path / "tape.mov", size="96x64", seconds=1.2, vcodec="prores_ks", pix_fmt="yuv422p10le",
                    extra_out=["-c:a", "pcm_s16le"])
    out = tmp_path / "tape-fixed.mov"
    r = run_cli("enhance", str(src), "-o", str(out), "--task", "archive", "--start", "0.4", "--duration", "0.4",
                "--splice", "-q")
    assert r.returncode == 0, r.stderr
    assert "splice: the picture outside the segment was copied" in r.stderr
    a, b = frame_md5s(src), frame_md5s(out)
    assert len(a) == len(b) == 30 and a[:10] == b[:10] and a[20:] == b[20:]
    assert sum(x != y for x, y in zip(a[10:20], b[10:20])) >= 8  # archive-x1 changed the segment
    r = run_cli("enhance", str(src), "-o", str(tmp_path / "d.mov"), "--task", "archive", "--start", "0.4",
                "--splice", "--dry-run")  # says what the splice would do, writes nothing
    assert r.returncode == 0 and "would enhance" in r.stderr and "would be copied from the source" in r.stderr
    r = run_cli("enhance", str(src), "-o", str(tmp_path / "d.mov"), "--task", "archive", "--start", "9",
                "--splice", "--dry-run")  # and fails a file as the real run would
    assert r.returncode == 1 and "would fail" in r.stderr and "past the end" in r.stderr
    assert not (tmp_path / "d.mov").exists()
    for extra, message in ((["--start", "0.4", "--preview", "1"], "--preview"),
                           ([], "give a --start after 0 and/or a --duration"),
                           (["--start", "5"], "past the end of the video (1.20 s)"),
                           (["--start", "0.4", "--codec", "prores"], "drop --codec prores"),
                           (["--start", "0.4", "--crf", "12"], "drop --crf 12"),
                           (["--start", "0.4", "--size", "200x100"], "drop --size"),
                           (["--start", "0.4", "--deinterlace", "on"], "--deinterlace on")):
        r = run_cli("enhance", str(src), "-o", str(tmp_path / "x.mov"), "--task", "archive", "--splice", *extra)
        assert r.returncode == (1 if "past" in message else 2) and message in r.stderr, (extra, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "x.mov").exists()


def test_splice_needs_a_segment_and_a_video_output(tmp_path):
    src = make_clip(tmp_path / "a.mp4", seconds=0.5, audio=False)
    with pytest.raises(UsageError, match="start"):
        _splice(src, tmp_path / "o.mp4", Invert(), None, None)
    with pytest.raises(UsageError, match="video file"):
        enhance_video(probe(str(src)), str(tmp_path / "frames"), Invert(), EncodeOptions(codec="png"),
                      EnhanceOptions(progress=False, start=0.1, splice=True))


def test_splice_from_python(tmp_path):
    import enhancer

    src = make_clip(tmp_path / "shot.mp4", size="96x64", seconds=1.2)
    result = enhancer.enhance(src, tmp_path / "fixed.mkv", task="archive", start=0.4, duration=0.4, splice=True)
    assert result.files[0].status == "done"
    a, b = frame_md5s(src), frame_md5s(tmp_path / "fixed.mkv")
    assert a[:10] == b[:10] and a[20:] == b[20:] and a[10:20] != b[10:20]
    with pytest.raises(enhancer.UsageError, match="drop codec='ffv1'"):
        enhancer.enhance(src, tmp_path / "x.mkv", task="archive", start=0.4, splice=True, codec="ffv1")


def test_an_interlaced_master_keeps_its_fields(tmp_path):
    """A tape transfer's ProRes: the segment is coded interlaced, top field first, as the copied rest is."""
    src = make_clip(tmp_path / "tape.mov", size="128x72", seconds=1.2, vcodec="prores_ks", pix_fmt="yuv422p10le",
                    extra_out=["-flags", "+ildct", "-field_order", "tt", "-c:a", "pcm_s16le"])
    order = probe(str(src)).field_order
    assert order not in ("progressive", "unknown")
    out = tmp_path / "fixed.mov"
    res = _splice(src, out, Invert(), 0.4, 0.4)
    _check_spliced(src, out, 10, res.frames)

    def fields(path):  # each frame's interlacing as the decoder reports it (showinfo's i:T, i:B or i:P)
        log = subprocess.run([MAKER, "-hide_banner", "-i", str(path), "-vf", "showinfo", "-f", "null", "-"],
                             capture_output=True, text=True).stderr
        return re.findall(r" i:([TBP]) ", log)

    assert fields(out) == fields(src) and len(fields(src)) == 30 and "P" not in fields(src)
    assert probe(str(out)).field_order == order
