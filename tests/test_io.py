"""Streaming I/O invariants: frames, timestamps, audio, subtitles, colour depth, rotation, scan."""
from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from conftest import decode_frames, make_clip, packet_times, stream_md5
from enhancer.errors import EnhancerError, InputError
from enhancer.pipeline.engine import EnhanceOptions
from enhancer.pipeline.enhance import enhance_video
from enhancer.restore.restorer import ClassicalUpscaler
from enhancer.media import ffmpeg as ff
from enhancer.media.encode import EncodeOptions
from enhancer.media.pixfmt import bit_depth_of, has_alpha
from enhancer.media.probe import count_frames, probe
from enhancer.media.reader import FrameReader

QUIET = EnhanceOptions(progress=False)


def enhance(src: Path, dst: Path, scale: int = 2, codec: str = "h264", opts: EnhanceOptions = QUIET, **enc):
    info = probe(str(src))
    return enhance_video(info, str(dst), ClassicalUpscaler("lanczos", scale), EncodeOptions(codec=codec, **enc), opts)


def test_frames_duration_and_audio_preserved(tmp_path):
    src = make_clip(tmp_path / "in.mp4", seconds=2, rate="30000/1001")
    dst = tmp_path / "out.mp4"
    res = enhance(src, dst)
    n_in, n_out = count_frames(str(src)), count_frames(str(dst))
    assert n_in == n_out == res.frames
    tin, tout = packet_times(src), packet_times(dst)
    assert len(tin) == len(tout)
    assert max(abs(a - b) for a, b in zip(tin, tout)) < 1e-4
    info_in, info_out = probe(str(src)), probe(str(dst))
    assert abs(info_in.duration - info_out.duration) <= 1 / 29.97 + 1e-3
    assert (info_out.width, info_out.height) == (192, 128)
    assert stream_md5(src, "a:0") == stream_md5(dst, "a:0")  # copied, not re-encoded
    assert info_out.audio[0].codec == "aac"


def test_variable_frame_rate_timestamps_survive(tmp_path):
    # frame n shown at (n + floor(n/3)) / 25 s: a gap every third frame
    src = make_clip(tmp_path / "vfr.mkv", seconds=2, vf="setpts='(N+floor(N/3))/25/TB'",
                    extra_out=["-fps_mode", "passthrough"], audio=False)
    for ext in (".mkv", ".mp4"):
        dst = tmp_path / f"out{ext}"
        enhance(src, dst)
        tin, tout = packet_times(src), packet_times(dst)
        assert len(tin) == len(tout) > 10
        deltas = np.diff(tout)
        assert deltas.max() > deltas.min() * 1.5, "output became constant frame rate"
        assert max(abs(a - b) for a, b in zip(tin, tout)) <= 0.0011  # mkv stores milliseconds


@pytest.mark.parametrize("codec,ext", [("prores", ".mov"), ("ffv1", ".mkv"), ("h265", ".mkv")])
def test_ten_bit_in_ten_bit_out(tmp_path, codec, ext):
    src = make_clip(tmp_path / "in10.mkv", vcodec="ffv1", pix_fmt="yuv422p10le", audio=False, seconds=0.4)
    assert probe(str(src)).bit_depth == 10
    dst = tmp_path / f"out{ext}"
    enhance(src, dst, codec=codec)
    out = probe(str(dst))
    assert out.bit_depth >= 10, out.pix_fmt
    # the decoded 16-bit frames really use more than 8 bits of precision
    frames = decode_frames(dst, "rgb48le")
    assert np.any(frames % 256 != 0)


def test_ten_bit_reader_keeps_precision(tmp_path):
    src = make_clip(tmp_path / "in10.mkv", vcodec="ffv1", pix_fmt="yuv444p10le", audio=False, seconds=0.2,
                    src="gradients")
    info = probe(str(src))
    with FrameReader(info) as reader:
        frame = next(iter(reader))
    assert frame.image.dtype == np.uint16
    # 8-bit data widened to 16 bits would be multiples of 257; real 10-bit data is not
    assert np.mean(frame.image % 257 != 0) > 0.5


def test_rotated_input_comes_out_upright(tmp_path):
    plain = make_clip(tmp_path / "plain.mp4", size="96x64", audio=False, seconds=0.4)
    rotated = tmp_path / "rot.mp4"
    subprocess.run([ff.tools().ffmpeg, "-loglevel", "error", "-y", "-display_rotation", "90", "-i", str(plain),
                    "-c", "copy", str(rotated)], check=True)
    info = probe(str(rotated))
    assert info.rotation == 90 and (info.display_width, info.display_height) == (64, 96)
    dst = tmp_path / "out.mp4"
    enhance(rotated, dst, scale=1)
    out = probe(str(dst))
    assert out.rotation == 0
    assert (out.width, out.height) == (64, 96)
    # content matches what a player shows for the rotated source
    shown = decode_frames(rotated)  # ffmpeg applies the rotation when decoding
    got = decode_frames(dst)
    assert shown.shape == got.shape
    err = np.abs(shown.astype(int) - got.astype(int)).mean()
    err_upside_down = np.abs(shown[:, ::-1, ::-1].astype(int) - got.astype(int)).mean()
    assert err < 12 and err < err_upside_down / 3


# h264 is 4:2:0 by default, which needs even sizes (padded, with a warning); --pix-fmt yuv444p keeps
# a 4:4:4 source's exact size
@pytest.mark.parametrize("pix_fmt,expect", [("yuv420p", (98, 72)), (None, (98, 72)), ("yuv444p", (97, 71))])
def test_odd_sizes(tmp_path, pix_fmt, expect):
    src = make_clip(tmp_path / "odd.mkv", size="98x72", vf="scale=97:71", vcodec="ffv1", pix_fmt="yuv444p",
                    seconds=0.4)
    dst = tmp_path / "out.mkv"
    res = enhance(src, dst, scale=1, pix_fmt=pix_fmt)
    out = probe(str(dst))
    assert (out.width, out.height) == expect
    assert count_frames(str(dst)) == count_frames(str(src))
    if pix_fmt != "yuv444p":
        assert any("padded" in w for w in res.warnings)


def _combing(frames: np.ndarray) -> float:
    f = frames.astype(np.float32).mean(axis=3)
    return float(np.abs(f[:, 1:-1] - 0.5 * (f[:, :-2] + f[:, 2:])).mean())


def test_interlaced_input_is_deinterlaced_in_auto_mode(tmp_path):
    # 50p motion woven into 25i fields (top field first), flagged interlaced by x264
    src = make_clip(tmp_path / "int.mkv", size="128x96", rate="50", seconds=1, audio=False, src="color=c=black",
                    vf="color=c=white:s=16x80[bar];[in][bar]overlay=x='mod(t*300,112)':y=8:shortest=1,"
                       "tinterlace=mode=interleave_top,setfield=tff",
                    extra_out=["-flags", "+ilme+ildct", "-x264opts", "tff=1"])
    info = probe(str(src))
    assert info.interlaced
    auto, off = tmp_path / "auto.mkv", tmp_path / "off.mkv"
    enhance(src, auto, scale=1, codec="ffv1")
    enhance(src, off, scale=1, codec="ffv1", opts=EnhanceOptions(deinterlace="off", progress=False))
    assert count_frames(str(auto)) == count_frames(str(src))
    comb_auto, comb_off = _combing(decode_frames(auto)), _combing(decode_frames(off))
    assert comb_auto < 0.7 * comb_off, (comb_auto, comb_off)


def test_subtitles_chapters_and_metadata_kept_in_mkv(tmp_path):
    base = make_clip(tmp_path / "base.mkv", seconds=2)
    srt = tmp_path / "s.srt"
    srt.write_text("1\n00:00:00,500 --> 00:00:01,500\nhello there\n", encoding="utf-8")
    meta = tmp_path / "meta.txt"
    meta.write_text(";FFMETADATA1\ntitle=My clip\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=1000\ntitle=One\n"
                    "[CHAPTER]\nTIMEBASE=1/1000\nSTART=1000\nEND=2000\ntitle=Two\n", encoding="utf-8")
    src = tmp_path / "in.mkv"
    subprocess.run([ff.tools().ffmpeg, "-loglevel", "error", "-y", "-i", str(base), "-i", str(srt), "-i", str(meta),
                    "-map", "0", "-map", "1", "-map_metadata", "2", "-map_chapters", "2", "-c", "copy",
                    "-metadata:s:s:0", "language=fra", str(src)], check=True)
    dst = tmp_path / "out.mkv"
    enhance(src, dst)
    out = probe(str(dst))
    assert [s.codec for s in out.subtitles] == ["subrip"]
    assert out.subtitles[0].language == "fra"
    assert out.chapters == 2
    text = subprocess.run([ff.tools().ffmpeg, "-loglevel", "error", "-i", str(dst), "-map", "0:s:0", "-f", "srt", "-"],
                          capture_output=True, text=True, check=True).stdout
    assert "hello there" in text
    banner = subprocess.run([ff.tools().ffmpeg, "-hide_banner", "-i", str(dst)], capture_output=True, text=True).stderr
    assert "My clip" in banner


def test_subtitles_converted_for_mp4(tmp_path):
    base = make_clip(tmp_path / "base.mkv", seconds=1)
    srt = tmp_path / "s.srt"
    srt.write_text("1\n00:00:00,100 --> 00:00:00,900\nbonjour\n", encoding="utf-8")
    src = tmp_path / "in.mkv"
    subprocess.run([ff.tools().ffmpeg, "-loglevel", "error", "-y", "-i", str(base), "-i", str(srt), "-map", "0",
                    "-map", "1", "-c", "copy", str(src)], check=True)
    dst = tmp_path / "out.mp4"
    enhance(src, dst)
    assert [s.codec for s in probe(str(dst)).subtitles] == ["mov_text"]


def test_image_sequence_output(tmp_path):
    src = make_clip(tmp_path / "in.mp4", seconds=0.4)
    out_dir = tmp_path / "frames"
    res = enhance(src, out_dir, codec="png")
    files = sorted(out_dir.glob("frame_*.png"))
    assert len(files) == count_frames(str(src)) == res.frames
    assert any("no audio" in w for w in res.warnings)
    import cv2

    assert cv2.imread(str(files[0])).shape == (128, 192, 3)


def test_unpadded_image_names_are_read_in_frame_order(tmp_path):
    """0.png .. 11.png: ffmpeg's glob would read 10.png and 11.png before 2.png (a scrambled
    video); numbers count as numbers, for enhance and for evaluate's image folders alike."""
    from enhancer.quality.evaluate import frames as eval_frames

    src = make_clip(tmp_path / "in.mkv", size="64x48", vcodec="ffv1", pix_fmt="yuv444p", audio=False, seconds=0.48)
    seq = tmp_path / "seq"
    seq.mkdir()
    subprocess.run([ff.tools().ffmpeg, "-loglevel", "error", "-i", str(src), "-start_number", "0",
                    str(seq / "%d.png")], check=True)
    assert (seq / "11.png").exists() and not (seq / "12.png").exists()
    want = decode_frames(src)
    assert all(np.array_equal(a, b) for a, b in zip(eval_frames(str(seq)), want))
    res = enhance(seq, tmp_path / "out.mkv", scale=1, codec="ffv1")
    got = decode_frames(tmp_path / "out.mkv")
    assert res.frames == len(got) == 12 and all(np.array_equal(a, b) for a, b in zip(got, want))
    (seq / "5.png").unlink()  # a gap: ffmpeg's numbered reader would stop there
    with pytest.raises(InputError, match="frame 5 is missing"):
        enhance(seq, tmp_path / "gap.mkv", scale=1, codec="ffv1")
    with pytest.raises(InputError, match="frame 5 is missing"):  # a pattern the same (it read 5 frames of 11)
        enhance(Path(str(seq / "%d.png")), tmp_path / "gap2.mkv", scale=1, codec="ffv1")


def test_segment_start_and_duration(tmp_path):
    src = make_clip(tmp_path / "in.mp4", seconds=3)
    dst = tmp_path / "seg.mp4"
    res = enhance(src, dst, opts=EnhanceOptions(start=1.0, duration=1.0, progress=False))
    assert res.frames == 25
    out = probe(str(dst))
    assert abs(out.duration - 1.0) < 0.1
    times = packet_times(dst)
    assert times[0] < 0.05  # starts at zero, not at 1 s
    # A/V sync: the sound now at 0 s is the sound that was at 1 s (stream copy: same packets)
    def crcs(path, start):
        out = subprocess.run([ff.tools().ffmpeg, "-loglevel", "error", "-i", str(path), "-map", "0:a:0", "-c", "copy",
                              "-f", "framecrc", "-"], capture_output=True, text=True, check=True).stdout
        rows = [r.split(",") for r in out.splitlines() if r and not r.startswith("#")]
        tb = 1 / 48000
        return [r[5].strip() for r in rows if int(r[2]) * tb >= start - 1e-6][:10]

    assert crcs(dst, 0.0) == crcs(src, 1.0)


def test_failure_leaves_no_partial_output(tmp_path):
    src = make_clip(tmp_path / "in.mp4", seconds=1)
    out_dir = tmp_path / "out"
    out_dir.mkdir()

    class Exploding(ClassicalUpscaler):
        calls = 0

        def restore(self, images):
            Exploding.calls += 1
            if Exploding.calls > 5:
                raise RuntimeError("boom")
            return super().restore(images)

    with pytest.raises(RuntimeError):
        enhance_video(probe(str(src)), str(out_dir / "x.mp4"), Exploding("lanczos", 2), EncodeOptions(), QUIET)
    assert list(out_dir.iterdir()) == []
    # an encoder that refuses its options fails cleanly too
    with pytest.raises(EnhancerError) as err:
        enhance(src, out_dir / "y.mp4", pix_fmt="not_a_format")
    assert "y.mp4" in str(err.value) or "encoding failed" in str(err.value)
    assert list(out_dir.iterdir()) == []


def test_probe_without_ffprobe_reads_everything(tmp_path):
    src = make_clip(tmp_path / "in.mkv", size="64x48", rate="30000/1001", seconds=1,
                    extra_out=["-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709"])
    info = probe(str(src), use_ffprobe=False)
    assert info.probed_with == "ffmpeg"
    assert (info.width, info.height, info.fps) == (64, 48, Fraction(30000, 1001))
    assert info.color_space == "bt709" and info.color_range == "tv"
    assert info.field_order == "progressive"
    assert [a.codec for a in info.audio] == ["aac"] and info.audio[0].sample_rate == 48000
    assert abs(info.frame_count - 30) <= 1


def test_bit_depth_names():
    assert bit_depth_of("yuv420p") == 8
    assert bit_depth_of("yuv420p10le") == 10
    assert bit_depth_of("yuv444p12be") == 12
    assert bit_depth_of("rgb48le") == 16
    assert bit_depth_of("p010le") == 10
    assert bit_depth_of("gray") == 8


@pytest.mark.parametrize("content,reason", [(b"", "empty file"), (b"\x00garbage" * 500, "not a readable video")])
def test_bad_inputs_raise_one_clear_line(tmp_path, content, reason):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    with pytest.raises(InputError) as err:
        probe(str(bad))
    assert reason in str(err.value) and "bad.mp4" in str(err.value)
    assert "\n" not in str(err.value)


def test_audio_only_and_missing_and_directory(tmp_path):
    audio = tmp_path / "a.m4a"
    subprocess.run([ff.tools().ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "sine=duration=0.5", str(audio)],
                   check=True)
    with pytest.raises(InputError, match="audio-only"):
        probe(str(audio))
    with pytest.raises(InputError, match="no such file"):
        probe(str(tmp_path / "missing.mp4"))
    with pytest.raises(InputError, match="folder"):
        probe(str(tmp_path))


def test_paths_that_look_like_options_or_protocols(tmp_path):
    weird = tmp_path / "-y concat:é x.mp4"
    make_clip(weird, seconds=0.4)
    dst = tmp_path / "-out é.mp4"
    res = enhance(weird, dst)
    assert res.frames == count_frames(str(weird))
    assert dst.exists()


def test_ffprobe_json_is_read_the_same_way():
    from enhancer.media.ffprobe_json import from_ffprobe_json

    data = {
        "format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "duration": "10.010000", "start_time": "0.000000"},
        "streams": [
            {"index": 0, "codec_type": "video", "codec_name": "h264", "width": 1920, "height": 1080,
             "sample_aspect_ratio": "1:1", "pix_fmt": "yuv420p10le", "bits_per_raw_sample": "10",
             "avg_frame_rate": "30000/1001", "r_frame_rate": "30000/1001", "time_base": "1/30000",
             "nb_frames": "300", "color_range": "tv", "color_space": "bt709", "color_primaries": "bt709",
             "color_transfer": "bt709", "field_order": "tt",
             "side_data_list": [{"side_data_type": "Display Matrix", "rotation": -90}]},
            {"index": 1, "codec_type": "audio", "codec_name": "aac", "sample_rate": "48000",
             "channel_layout": "stereo", "tags": {"language": "eng"}},
            {"index": 2, "codec_type": "subtitle", "codec_name": "mov_text", "tags": {"language": "fra"}},
            {"index": 3, "codec_type": "video", "codec_name": "mjpeg", "disposition": {"attached_pic": 1}},
        ],
        "chapters": [{"id": 0}, {"id": 1}],
    }
    info = from_ffprobe_json("x.mp4", data)
    assert (info.width, info.height, info.bit_depth) == (1920, 1080, 10)
    assert info.fps == Fraction(30000, 1001) and info.time_base == Fraction(1, 30000)
    assert info.frame_count == 300 and info.frame_count_exact
    assert info.rotation == 270 and (info.display_width, info.display_height) == (1080, 1920)
    assert info.field_order == "tt" and info.interlaced
    assert info.color_space == "bt709" and info.color_range == "tv"
    assert info.audio[0].language == "eng" and info.subtitles[0].codec == "mov_text" and info.chapters == 2
    assert info.probed_with == "ffprobe"


# ---- inputs cut short, attachments, containers that refuse a codec (issue 13, items 5-7) -----
def _cut(path: Path, share: float, dst: Path) -> Path:
    data = path.read_bytes()
    dst.write_bytes(data[: int(len(data) * share)])
    return dst


@pytest.mark.slow  # ten inputs, three CLI runs; test_first_hour.py checks a cut input in-process
def test_inputs_cut_short_are_reported_incomplete(tmp_path):
    """Item 5: a faststart MP4 or an MKV cut at 10/50/90/99 % came out done, without a warning."""
    import json

    from conftest import run_cli

    whole = {"mp4": make_clip(tmp_path / "fs.mp4", seconds=2, extra_out=["-movflags", "+faststart"]),
             "mkv": make_clip(tmp_path / "mk.mkv", seconds=2)}
    src = tmp_path / "in"
    src.mkdir()
    for ext, path in whole.items():
        shutil.copy(path, src / f"whole.{ext}")
        for pct in (10, 50, 90, 99):
            _cut(path, pct / 100, src / f"cut{pct:02d}.{ext}")
    out = tmp_path / "out"
    lanczos = ["--model", "lanczos", "--preset", "ultrafast", "--json", "-q"]
    r = run_cli("enhance", str(src), "-o", str(out), *lanczos)
    assert r.returncode == 0, r.stderr
    rows = {Path(x["input"]).name: x for x in map(json.loads, r.stdout.splitlines())}
    for name, row in rows.items():
        if name.startswith("whole"):
            assert row["frames"] == 50 and not row["incomplete"] and not row["warnings"], row
        else:
            assert row["status"] == "done" and row["incomplete"] and row["frames"] < 50, row
            assert any(w.startswith("incomplete input") and f"decoded {row['frames']} of" in w
                       for w in row["warnings"]), row
    from enhancer.batch.state import BatchState

    state = BatchState(out).entries
    assert state["cut50.mkv"].status == "incomplete" and state["whole.mkv"].status == "done"
    # a rerun does not forget it: skipped, but still said to be incomplete
    r = run_cli("enhance", str(src), "-o", str(out), *lanczos)
    rows = {Path(x["input"]).name: x for x in map(json.loads, r.stdout.splitlines())}
    assert rows["cut90.mp4"]["status"] == "skipped" and rows["cut90.mp4"]["incomplete"]
    assert rows["cut90.mp4"]["warnings"] and not rows["whole.mp4"]["warnings"]
    # --strict: a failure, with no output, and the summary and report count it
    report = tmp_path / "report.json"
    r = run_cli("enhance", str(src / "cut50.mp4"), str(src / "whole.mp4"), "-o", str(tmp_path / "strict"), "--strict",
                "--report", str(report), *lanczos)
    assert r.returncode == 1
    rows = {Path(x["input"]).name: x for x in map(json.loads, r.stdout.splitlines())}
    assert rows["cut50.mp4"]["status"] == "failed" and "incomplete input" in rows["cut50.mp4"]["error"]
    assert not (tmp_path / "strict" / "cut50.mp4").exists() and rows["whole.mp4"]["status"] == "done"
    assert json.loads(report.read_text())["failed"] == 1
    r = run_cli("enhance", str(src / "cut50.mkv"), str(src / "whole.mkv"), "-o", str(tmp_path / "plain"),
                "--model", "lanczos", "--preset", "ultrafast", "--report", str(report))
    assert "1 from incomplete inputs" in r.stderr and json.loads(report.read_text())["incomplete"] == 1


def test_matroska_attachments_are_kept_or_warned_about(tmp_path):
    """Item 6: fonts attached to an MKV (for styled subtitles) were dropped silently."""
    font = tmp_path / "font.ttf"
    font.write_bytes(b"not really a font, but carried all the same")
    subs = tmp_path / "s.srt"
    subs.write_text("1\n00:00:00,000 --> 00:00:00,500\nhello\n")
    src = tmp_path / "att.mkv"
    subprocess.run([ff.tools().ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25:d=1",
                    "-i", str(subs), "-attach", str(font), "-metadata:s:t:0", "mimetype=application/x-truetype-font",
                    "-metadata:s:t:0", "filename=font.ttf", "-c:v", "libx264", "-preset", "ultrafast", "-c:s", "ass",
                    str(src)], check=True)
    info = probe(str(src))
    assert [a.filename for a in info.attachments] == ["font.ttf"]
    res = enhance(src, tmp_path / "o.mkv")
    out = probe(str(tmp_path / "o.mkv"))
    assert [a.filename for a in out.attachments] == ["font.ttf"] and out.subtitles and not res.warnings
    dumped = tmp_path / "dumped.ttf"
    subprocess.run([ff.tools().ffmpeg, "-loglevel", "error", "-dump_attachment:t:0", str(dumped), "-i",
                    str(tmp_path / "o.mkv")], check=False)
    assert dumped.read_bytes() == font.read_bytes()
    res = enhance(src, tmp_path / "o.mp4")
    assert any("attachment" in w and "font.ttf" in w for w in res.warnings)
    assert probe(str(tmp_path / "o.mp4")).attachments == []


def test_dv_and_audio_a_container_cannot_hold(tmp_path):
    """Item 7: DV to MP4/MOV failed (the probe said "60k fps"); FLAC and Opus to MOV failed with
    "Could not write header"."""
    dv = tmp_path / "tape.dv"
    subprocess.run([ff.tools().ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=720x480:rate=30000/1001:d=0.4", "-f", "lavfi", "-i", "sine=d=0.4:sample_rate=48000",
                    "-c:v", "dvvideo", "-pix_fmt", "yuv411p", "-c:a", "pcm_s16le", "-ac", "2", "-f", "dv", str(dv)],
                   check=True)
    assert probe(str(dv), use_ffprobe=False).fps == Fraction(30000, 1001)
    for ext in ("mp4", "mov"):
        res = enhance(dv, tmp_path / f"dv.{ext}", scale=1)
        assert res.frames == count_frames(str(dv)) == count_frames(str(tmp_path / f"dv.{ext}"))
        assert probe(str(tmp_path / f"dv.{ext}")).audio
    for codec, enc, expect in (("flac", "flac", "ALAC"), ("opus", "libopus", "AAC")):
        src = make_clip(tmp_path / f"{codec}.mkv", seconds=0.5, audio=False,
                        extra_in=["-f", "lavfi", "-i", "sine=d=0.5:sample_rate=48000"],
                        extra_out=["-map", "0:v", "-map", "1:a", "-c:a", enc])
        res = enhance(src, tmp_path / f"{codec}.mov")
        assert res.frames == count_frames(str(src)) and any(expect in w for w in res.warnings), res.warnings
        assert probe(str(tmp_path / f"{codec}.mov")).audio
        res = enhance(src, tmp_path / f"{codec}.mp4")  # mp4 holds both as they are
        assert res.frames == count_frames(str(src)) and not res.warnings
        assert probe(str(tmp_path / f"{codec}.mp4")).audio[0].codec == codec


@pytest.mark.parametrize("rate", ["2997/100", "15"])
def test_mpeg2_takes_rates_written_unusually_and_non_standard_ones(tmp_path, rate):
    """MPEG-2 knows eight frame rates: 29.97 written as 2997/100 (as some phones and tools write
    it) is encoded as 30000/1001, and a rate it does not know (15) through its rate extension;
    never 'MPEG-1/2 does not support 2997/100 fps'."""
    from enhancer.media.plan import mpeg2_rate

    assert mpeg2_rate(Fraction(2997, 100)) == (Fraction(30000, 1001), [])
    assert mpeg2_rate(Fraction(25)) == (Fraction(25), [])
    src = make_clip(tmp_path / "in.mp4", rate=rate, seconds=0.6, audio=False)
    res = enhance(src, tmp_path / "out.mkv", scale=1, codec="mpeg2")
    assert res.frames == count_frames(str(src)) == count_frames(str(tmp_path / "out.mkv"))
    assert probe(str(tmp_path / "out.mkv")).codec == "mpeg2video"


@pytest.mark.parametrize("container", ["mkv", "mp4"])
def test_mpeg2_is_not_a_frame_late(tmp_path, container):
    """ffmpeg's MPEG-2 encoder reports a frame of reordering delay unless told it has no B-frames;
    the NUT parts hold no negative decoding times, so every frame came out one frame period later
    than the sound (40 ms at 25 fps). The first frame must sit where H.264's does."""
    src = make_clip(tmp_path / "in.mp4", rate="25", seconds=0.6)
    firsts = {}
    for codec in ("h264", "mpeg2"):
        out = tmp_path / f"{codec}.{container}"
        res = enhance(src, out, scale=1, codec=codec)
        assert res.frames == 15 and not res.warnings, res.warnings
        firsts[codec] = packet_times(out)[0]
    assert abs(firsts["mpeg2"] - firsts["h264"]) < 0.002, firsts


def test_mpeg2_at_a_rate_its_header_cannot_say(tmp_path):
    """12.5 fps has no MPEG-2 code: ffmpeg writes 12 in the header. enhance says so (every frame
    keeps its time); degrade draws MPEG-2 as a round trip instead, so the damaged copy keeps the
    source's rate and lines up with it frame for frame."""
    from enhancer.data.degrade import degrade_video, sample

    src = make_clip(tmp_path / "in.mkv", rate="25/2", seconds=1.2, size="96x64")
    res = enhance(src, tmp_path / "out.mkv", scale=1, codec="mpeg2")
    assert any("MPEG-2 has no 12.5 fps" in w for w in res.warnings), res.warnings
    assert packet_times(tmp_path / "out.mkv")[:2] == pytest.approx([0.0, 0.08], abs=0.002)
    seed = next(s for s in range(500) if sample("web", 2, seed=s).codec == "mpeg2")
    d = degrade_video(str(src), str(tmp_path / "lq.mkv"), preset="web", scale=2, seed=seed, progress=False)
    assert d.codec == "mpeg2"
    lq = probe(str(tmp_path / "lq.mkv"))
    assert lq.fps == Fraction(25, 2) and count_frames(str(tmp_path / "lq.mkv")) == 15


@pytest.mark.parametrize("scale", [1, 2])
def test_a_stream_that_changes_size_keeps_every_frame_and_says_so(tmp_path, scale):
    """Broadcast captures and files joined end to end change size mid-stream: every frame is kept,
    the output has one size, later frames are fitted inside it with black bars (a 16:9 picture
    after a 4:3 one is not stretched), and the result says where the size changed (scale 1 goes
    through the planar path)."""
    a = make_clip(tmp_path / "a.ts", size="64x48", seconds=0.6, audio=False)
    b = make_clip(tmp_path / "b.ts", size="96x54", seconds=0.6, audio=False, src="smptebars")
    joined = tmp_path / "joined.ts"
    joined.write_bytes(a.read_bytes() + b.read_bytes())
    out = tmp_path / "out.mkv"
    result = enhance(joined, out, scale=scale, codec="ffv1")
    assert result.frames == 30 and count_frames(str(out)) == 30
    info = probe(str(out))
    assert (info.width, info.height) == (64 * scale, 48 * scale)
    said = [w for w in result.warnings if "changes size" in w]
    assert len(said) == 1 and "frame 15 (64x48 to 96x54)" in said[0], result.warnings
    frames = decode_frames(out).astype(int)
    assert frames[20].std() > 5 and not np.array_equal(frames[14], frames[20])  # the second clip, not a frozen frame
    # 96x54 fitted into 64x48 is 64x36: six rows of black above and below (times the scale)
    bar, body = 6 * scale, 36 * scale
    assert frames[20][: bar - 1].max() < 24 and frames[20][-(bar - 1):].max() < 24
    assert frames[20][bar + 2: bar + body - 2].mean() > 60  # the bars, and the picture between them
    assert frames[5][:bar].mean() > 60  # the first clip fills the frame: no bars there


def _alpha_plane(path: Path, w: int, h: int, depth: int = 8) -> np.ndarray:
    """Every frame's alpha plane, (N, h, w), as ffmpeg decodes it."""
    from conftest import MAKER

    fmt = "gray16le" if depth > 8 else "gray"
    raw = subprocess.run([MAKER, "-v", "error", "-i", str(path), "-vf", f"alphaextract,format={fmt}",
                          "-fps_mode", "passthrough", "-f", "rawvideo", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint16 if depth > 8 else np.uint8).reshape(-1, h, w)


# a picture whose left half is opaque and right half transparent, with a soft band between
_MATTE = "format=rgba,geq=r='r(X,Y)':g='g(X,Y)':b='b(X,Y)':a='clip((56-X)*16+128,0,255)'"


@pytest.mark.parametrize("codec,scale,model", [("prores", 2, "general-x2"), ("ffv1", 1, "lanczos"),
                                               ("png", 2, "lanczos")])
def test_the_alpha_channel_is_kept_where_the_output_can_hold_it(tmp_path, codec, scale, model):
    """An editor's ProRes 4444 or FFV1 with transparency (titles, keyed footage): the model sees the
    picture, the alpha plane is resized beside it, and the output keeps it: every frame, the same
    matte, the parts and the join included. Where the codec cannot hold it, one warning says so."""
    src = make_clip(tmp_path / "matte.mov", size="112x64", seconds=0.4, vcodec="prores_ks", pix_fmt="yuva444p10le",
                    vf=_MATTE, extra_out=["-profile:v", "4444"])
    from enhancer.restore.loading import load_restorer

    out = tmp_path / ("out" if codec == "png" else "out.mkv")
    restorer = ClassicalUpscaler(model, scale) if model == "lanczos" else load_restorer(model, scale)
    res = enhance_video(probe(str(src)), str(out), restorer, EncodeOptions(codec=codec), QUIET)
    assert res.frames == 10 and not [w for w in res.warnings if "alpha channel (" in w], res.warnings
    if codec == "png":
        import cv2

        frames = sorted(out.glob("*.png"))
        assert len(frames) == 10
        alpha = np.stack([cv2.imread(str(f), cv2.IMREAD_UNCHANGED)[..., 3] for f in frames])
        assert alpha.dtype == np.uint16  # a 10-bit source: 16-bit PNGs
        alpha = np.round(alpha / 257.0)
    else:
        assert has_alpha(probe(str(out)).pix_fmt), probe(str(out)).pix_fmt
        alpha = _alpha_plane(out, 112 * scale, 64 * scale)
    assert alpha.shape == (10, 64 * scale, 112 * scale)
    want = np.clip((56 - (np.arange(112 * scale) + 0.5) / scale + 0.5) * 16 + 128, 0, 255)  # the matte, resized
    assert np.abs(alpha[:, :, : 40 * scale].astype(int) - 255).max() <= 2  # opaque on the left
    assert alpha[:, :, 72 * scale:].max() <= 2  # clear on the right
    assert np.abs(alpha.mean(axis=(0, 1)) - want).max() < 12
    rgb = decode_frames(out) if codec != "png" else None
    if rgb is not None:
        assert rgb.shape == (10, 64 * scale, 112 * scale, 3) and rgb[:, :, : 40 * scale].std() > 20  # the picture


def test_bars_around_a_picture_with_alpha_are_transparent(tmp_path):
    src = make_clip(tmp_path / "matte.mov", size="112x64", seconds=0.2, vcodec="prores_ks", pix_fmt="yuva444p10le",
                    vf=_MATTE, extra_out=["-profile:v", "4444"])
    res = enhance(src, tmp_path / "out.mkv", scale=1, codec="ffv1", size=(224, 64))
    assert [w for w in res.warnings if "transparent bars fill the rest" in w], res.warnings
    alpha = _alpha_plane(tmp_path / "out.mkv", 224, 64)  # the picture 112x64 in the middle
    assert alpha[:, :, :50].max() == 0 and alpha[:, :, 60:90].min() >= 250 and alpha[:, :, 175:].max() == 0


def test_an_alpha_channel_the_output_cannot_hold_is_named(tmp_path):
    src = make_clip(tmp_path / "matte.mov", size="112x64", seconds=0.2, vcodec="prores_ks", pix_fmt="yuva444p10le",
                    vf=_MATTE, extra_out=["-profile:v", "4444"])
    res = enhance(src, tmp_path / "out.mp4", scale=2)
    said = [w for w in res.warnings if "alpha" in w]
    assert len(said) == 1 and said[0].startswith("h264 cannot hold the source's alpha channel"), res.warnings
    assert "prores, ffv1, png or tiff would keep it" in said[0] and probe(str(tmp_path / "out.mp4")).pix_fmt == "yuv420p10le"
    # a pixel format with alpha does not make h264 hold one
    res = enhance(src, tmp_path / "out2.mkv", scale=2, pix_fmt="yuva420p")
    assert [w for w in res.warnings if w.startswith("h264 cannot hold the source's alpha channel")], res.warnings
    # nor does ProRes in a profile other than 4444 (ffmpeg drops the alpha and says so only in its log)
    res = enhance(src, tmp_path / "out3.mov", scale=1, codec="prores", encoder_args=("-profile:v", "3"))
    assert [w for w in res.warnings if w.startswith("prores (in a profile other than 4444) cannot hold")], res.warnings


def test_a_vp9_alpha_channel_is_read_and_kept(tmp_path):
    """WebM keeps VP9's alpha beside the picture (ALPHA_MODE 1), which ffmpeg's own VP9 decoder
    leaves out: probe says yuva420p and the reader decodes with libvpx-vp9, so FFV1 keeps the
    matte; the opaque H.264 output says it is opaque and carries no ALPHA_MODE tag."""
    if not ff.has_decoder("libvpx-vp9"):
        pytest.skip("this ffmpeg has no libvpx-vp9 decoder")
    from conftest import MAKER

    src = tmp_path / "matte.webm"
    subprocess.run([MAKER, "-v", "error", "-f", "lavfi", "-i", f"testsrc2=size=112x64:rate=25:duration=0.4,{_MATTE}",
                    "-c:v", "libvpx-vp9", "-pix_fmt", "yuva420p", "-b:v", "1M", str(src)], check=True)
    assert probe(str(src)).pix_fmt == "yuva420p"
    res = enhance(src, tmp_path / "out.mkv", scale=1, codec="ffv1")
    assert res.frames == 10 and not [w for w in res.warnings if "alpha" in w], res.warnings
    alpha = _alpha_plane(tmp_path / "out.mkv", 112, 64)
    assert alpha[:, :, :40].min() >= 250 and alpha[:, :, 72:].max() <= 5
    res = enhance(src, tmp_path / "out.mp4", scale=1)
    assert [w for w in res.warnings if "cannot hold the source's alpha" in w]
    tags = subprocess.run(["ffprobe" if shutil.which("ffprobe") else MAKER, "-hide_banner", "-i",
                           str(tmp_path / "out.mp4")], capture_output=True, text=True).stderr
    assert "alpha_mode" not in tags.lower()


def test_an_image_sequence_is_not_deinterlaced(tmp_path):
    """Pictures are whole frames: no bwdif on an image sequence (ffmpeg 5.1's changed its alpha
    by a level, and it holds a frame that a mid-sequence size change would lose)."""
    from enhancer.media.reader import deinterlace_filter

    info = probe(str(make_clip(tmp_path / "c.mkv", seconds=0.2, audio=False)))
    info.field_order = "unknown"
    assert deinterlace_filter(info, "auto")
    info.image_sequence = True
    assert deinterlace_filter(info, "auto") is None and deinterlace_filter(info, "on")


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuva420p"])
def test_an_odd_sized_subsampled_source_is_read(tmp_path, pix_fmt):
    """63x47 in 4:2:0 (FFV1 holds it): the filters that fit a mid-stream size change must not ask
    for an odd 4:2:0 frame (ffmpeg's pad cannot make one; every frame of such a file was lost)."""
    from conftest import MAKER

    src = tmp_path / "odd.mkv"  # (an -vf would round the size to even; inside the source it stays odd)
    subprocess.run([MAKER, "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=63x47:rate=25:duration=0.4,format=rgba",
                    "-c:v", "ffv1", "-pix_fmt", pix_fmt, str(src)], check=True)
    assert (probe(str(src)).width, probe(str(src)).height) == (63, 47)
    for scale in (1, 2):
        res = enhance(src, tmp_path / f"out{scale}.mkv", scale=scale, codec="ffv1")
        assert res.frames == 10 and count_frames(str(tmp_path / f"out{scale}.mkv")) == 10
        info = probe(str(tmp_path / f"out{scale}.mkv"))
        assert (info.width, info.height) == (63 * scale, 47 * scale)


def test_a_frame_lost_at_a_size_change_behind_the_deinterlacer_is_said(tmp_path):
    """Interlaced broadcast recordings joined at another size: ffmpeg rebuilds its filters at the
    change and bwdif's held frame is lost with them. Every frame decoded is counted before bwdif,
    so the loss is said, with the count (never silent), and --deinterlace off keeps them all."""
    il = ["-flags", "+ilme+ildct", "-field_order", "tt", "-q:v", "3"]
    a = make_clip(tmp_path / "a.ts", size="160x120", seconds=0.4, vcodec="mpeg2video", audio=False, extra_out=il)
    b = make_clip(tmp_path / "b.ts", size="160x90", seconds=0.4, vcodec="mpeg2video", audio=False, extra_out=il)
    joined = tmp_path / "joined.ts"
    joined.write_bytes(a.read_bytes() + b.read_bytes())
    off = enhance(joined, tmp_path / "off.mkv", scale=1, codec="ffv1", opts=EnhanceOptions(progress=False,
                                                                                         deinterlace="off"))
    total = off.frames  # every frame the decoder gives (it may drop one at the join itself)
    assert total >= 18 and not [w for w in off.warnings if "lost" in w]
    res = enhance(joined, tmp_path / "out.mkv", scale=1, codec="ffv1")
    lost = [w for w in res.warnings if "lost where the picture changes size" in w]
    assert res.frames == total or (len(lost) == 1 and lost[0].startswith(f"{total - res.frames} frame(s) lost")), \
        (res.frames, total, res.warnings)


def test_a_new_pixel_shape_of_the_same_display_shape_fills_the_frame(tmp_path):
    """HD broadcast switches between 1440x1080 at SAR 4:3 and 1920x1080 at SAR 1:1, both 16:9: the
    new frames are brought to the first frames' pixel shape before fitting, so they fill the frame
    (no bars, not squashed)."""
    from conftest import MAKER

    a = make_clip(tmp_path / "a.ts", size="144x108", seconds=0.4, audio=False, vf="setsar=4/3")
    b = make_clip(tmp_path / "b.ts", size="192x108", seconds=0.4, audio=False, src="smptebars", vf="setsar=1")
    joined = tmp_path / "joined.ts"
    joined.write_bytes(a.read_bytes() + b.read_bytes())
    shown = subprocess.run([ff.tools().ffmpeg, "-hide_banner", "-i", str(joined), "-vf", "showinfo=checksum=0", "-f",
                            "null", "-"], capture_output=True, text=True).stderr
    if "sar:1/1 s:192x108" not in shown:
        pytest.skip("this ffmpeg gives the second recording's frames the first one's SAR")
    res = enhance(joined, tmp_path / "out.mkv", scale=2, codec="ffv1")
    assert res.frames == 20
    frames = decode_frames(tmp_path / "out.mkv").astype(int)
    assert frames.shape[1:3] == (216, 288)
    assert frames[15][:8].mean() > 60 and frames[15][-8:].mean() > 20  # the bars' rows hold picture
