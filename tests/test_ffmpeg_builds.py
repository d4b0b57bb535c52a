"""The I/O, batch and CLI paths against every ffmpeg build enhancer supports.

Each test runs against the bundled ffmpeg (9.x), Debian's apt ffmpeg and ffprobe (5.1 on Debian 12,
probing through ffprobe's JSON) and imageio-ffmpeg 0.6.0's static 7.0.2 (probing without ffprobe),
named explicitly (see ``conftest.ffmpeg_build``); a build that cannot be had here is skipped with
the reason. A representative subset: the whole suite runs on the bundled build.
"""
from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from conftest import MAKER, make_clip, packet_times, run_cli, stream_md5
from enhancer.pipeline.engine import EnhanceOptions
from enhancer.pipeline.enhance import enhance_video
from enhancer.restore.restorer import ClassicalUpscaler
from enhancer.media import ffmpeg as ff
from enhancer.media.encode import EncodeOptions
from enhancer.media.probe import count_frames, probe

QUIET = EnhanceOptions(progress=False)


def _enhance(src: Path, dst: Path, opts: EnhanceOptions = QUIET, scale: int = 2, **enc):
    return enhance_video(probe(str(src)), str(dst), ClassicalUpscaler("lanczos", scale),
                         EncodeOptions(preset="ultrafast", **enc), opts)


def test_build_is_supported_and_named(use_build):
    tools = ff.tools()
    assert tools.ffmpeg == use_build.ffmpeg and tools.version >= ff.MINIMUM
    assert (tools.ffprobe is not None) == (use_build.ffprobe is not None)
    assert tools.version_text in tools.line() and tools.ffmpeg in tools.line()


def test_streams_timestamps_and_probe(use_build, tmp_path):
    """Audio copied bit for bit, every timestamp kept (VFR too), subtitles, chapters and the
    probe's facts, through this build's ffmpeg (and ffprobe, where it has one)."""
    src = make_clip(tmp_path / "base.mkv", seconds=1.2, vf="setpts='(N+floor(N/3))/25/TB'",
                    extra_out=["-fps_mode", "passthrough"])
    srt = tmp_path / "s.srt"
    srt.write_text("1\n00:00:00,100 --> 00:00:00,900\nhello\n", encoding="utf-8")
    meta = tmp_path / "meta.txt"
    meta.write_text(";FFMETADATA1\ntitle=Clip\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=800\ntitle=One\n",
                    encoding="utf-8")
    full = tmp_path / "in.mkv"
    subprocess.run([MAKER, "-v", "error", "-y", "-i", str(src), "-i", str(srt), "-i", str(meta), "-map", "0", "-map",
                    "1", "-map_metadata", "2", "-map_chapters", "2", "-c", "copy", str(full)], check=True)
    info = probe(str(full))
    assert info.probed_with == ("ffprobe" if use_build.ffprobe else "ffmpeg")
    assert (info.width, info.height, info.codec, info.pix_fmt) == (96, 64, "h264", "yuv420p")
    assert info.time_base == Fraction(1, 1000) and info.chapters == 1
    assert [a.codec for a in info.audio] == ["aac"] and [s.codec for s in info.subtitles] == ["subrip"]
    n = count_frames(str(full))
    assert n == len(packet_times(full)) > 20
    for ext in (".mkv", ".mp4"):
        dst = tmp_path / f"out{ext}"
        res = _enhance(full, dst)
        assert res.frames == n == count_frames(str(dst))
        tin, tout = packet_times(full), packet_times(dst)
        # every frame at its time; ffmpeg 5.1 and 7.0 move a whole MKV (and 5.1 a whole MP4),
        # audio too, by the AAC priming (1024 samples), as their own remux does: picture and
        # sound keep their offset
        shift = tout[0] - tin[0]
        assert shift == 0 or (ext == ".mkv" or use_build.name != "bundled") and 0 < shift < 0.025
        assert max(abs(a + shift - b) for a, b in zip(tin, tout)) <= 0.0011
        assert abs((packet_times(dst, "a:0")[0] - tout[0]) - (packet_times(full, "a:0")[0] - tin[0])) <= 0.0011
        assert np.diff(tout).max() > 1.5 * np.diff(tout).min()  # still variable frame rate
        assert stream_md5(full, "a:0") == stream_md5(dst, "a:0")
        out = probe(str(dst))
        assert out.subtitles and out.chapters == 1 and (out.width, out.height) == (192, 128)


@pytest.mark.parametrize("ext", [".mp4", ".mkv"])
def test_every_frame_its_own_part(use_build, tmp_path, ext):
    """The output path at its most demanding: every frame a part of its own, from a segment
    that starts between frames; the joined file holds every frame at its own time."""
    src = make_clip(tmp_path / "in.mp4", seconds=1.2)
    dst = tmp_path / f"out{ext}"
    res = _enhance(src, dst, EnhanceOptions(progress=False, start=0.33, duration=0.6, part_seconds=0.0), scale=1)
    assert res.frames == count_frames(str(dst)) == 15
    want, got = [t - 0.33 for t in packet_times(src) if 0.33 <= t < 0.93], packet_times(dst)
    # every frame at its time; MKV may move the whole file (audio too) by the audio's lead-in
    assert max(abs((a - want[0]) - (b - got[0])) for a, b in zip(want, got)) < 0.002
    if ext == ".mp4":
        assert max(abs(a - b) for a, b in zip(want, got)) < 0.002


def test_depth_scan_and_image_sequences(use_build, tmp_path):
    ten = make_clip(tmp_path / "ten.mkv", vcodec="ffv1", pix_fmt="yuv422p10le", audio=False, seconds=0.3)
    _enhance(ten, tmp_path / "ten.mov", scale=1, codec="prores")
    assert probe(str(tmp_path / "ten.mov")).bit_depth >= 10
    inter = make_clip(tmp_path / "int.mkv", size="64x48", rate="50", seconds=0.4, audio=False,
                      vf="tinterlace=mode=interleave_top,setfield=tff", extra_out=["-flags", "+ilme+ildct"])
    res = _enhance(inter, tmp_path / "int_out.mkv", scale=1, codec="ffv1")
    assert res.frames == count_frames(str(inter)) == count_frames(str(tmp_path / "int_out.mkv"))
    frames = tmp_path / "frames"
    res = _enhance(make_clip(tmp_path / "c.mp4", seconds=0.4), frames, codec="png")
    assert len(list(frames.glob("frame_*.png"))) == res.frames == 10
    res = _enhance(frames, tmp_path / "from_frames.mkv", scale=1)
    assert res.frames == 10 and probe(str(tmp_path / "from_frames.mkv")).fps == 25


# a CLI run each: bundled and Debian's (5.1, with ffprobe) quick; the static 7.0.2 (no ffprobe, as bundled) slow
@pytest.mark.parametrize("ffmpeg_build", ["bundled", "debian", pytest.param("static-7.0.2", marks=pytest.mark.slow)],
                         indirect=True)
def test_cli_batch_says_which_ffmpeg(ffmpeg_build, tmp_path):
    make_clip(tmp_path / "a.mp4", seconds=0.4)
    make_clip(tmp_path / "b.mkv", seconds=0.4)
    env = {"ENHANCER_FFPROBE": ffmpeg_build.ffprobe} if ffmpeg_build.ffprobe else {}
    report = tmp_path / "report.json"
    args = ["enhance", str(tmp_path / "a.mp4"), str(tmp_path / "b.mkv"), "-o", str(tmp_path / "out"), "--model",
            "lanczos", "--preset", "ultrafast", "--ffmpeg", ffmpeg_build.ffmpeg, "--report", str(report)]
    r = run_cli(*args, "-v", env=env)
    assert r.returncode == 0, r.stderr
    version = ff.parse_version(subprocess.run([ffmpeg_build.ffmpeg, "-version"], capture_output=True,
                                              text=True).stdout)[1]
    assert f"ffmpeg {version} ({ffmpeg_build.ffmpeg}, chosen by --ffmpeg)" in r.stderr.splitlines()[0]
    used = json.loads(report.read_text())["ffmpeg"]
    assert used["ffmpeg"] == ffmpeg_build.ffmpeg and used["version"] == version
    r = run_cli(*args, "--json", env=env)  # a rerun skips both
    assert r.returncode == 0 and [json.loads(x)["status"] for x in r.stdout.splitlines()] == ["skipped"] * 2
    r = run_cli("probe", str(tmp_path / "out" / "a.mp4"), "--json", "--count", "--ffmpeg", ffmpeg_build.ffmpeg,
                env=env)
    d = json.loads(r.stdout)
    assert d["frame_count"] == 10 and d["frame_count_exact"] and d["width"] == 192


@pytest.mark.parametrize("banner,ok", [("ffmpeg version 4.2.2-static https://johnvansickle.com/ffmpeg/", False),
                                       ("ffmpeg version 5.0.1 Copyright", False),
                                       ("ffmpeg version 5.1.9-0+deb12u1 Copyright", True)])
def test_too_old_an_ffmpeg_is_one_line_and_exit_2(tmp_path, banner, ok):
    """Checked before any work: never an option error mid-run."""
    fake = tmp_path / "ffmpeg"
    fake.write_text(f"#!/bin/sh\nif [ \"$2\" = -version ] || [ \"$1\" = -version ]; then echo '{banner}'; exit 0; fi\n"
                    f"exec '{MAKER}' \"$@\"\n")
    fake.chmod(0o755)
    src = make_clip(tmp_path / "in.mp4", seconds=0.2, audio=False)
    r = run_cli("enhance", str(src), "-o", str(tmp_path / "o.mp4"), "--model", "lanczos", "--ffmpeg", str(fake), "-q")
    if ok:
        assert r.returncode == 0, r.stderr
        return
    assert r.returncode == 2 and not (tmp_path / "o.mp4").exists()
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and banner.split()[2] in lines[0] and "older than 5.1" in lines[0], r.stderr


@pytest.mark.parametrize("ffmpeg_banner,named", [("ffmpeg version 5.1.9-0+deb12u1 Copyright", "ffprobe"),
                                                  ("ffmpeg version 4.4.2 Copyright", "ffmpeg")])
def test_too_old_an_ffprobe_beside_ffmpeg_is_one_line_and_exit_2(tmp_path, ffmpeg_banner, named):
    """ffprobe's version is asked beside ffmpeg's: an old ffprobe is still refused before any work,
    and where both are old, ffmpeg is the one named."""
    for name, banner in (("ffmpeg", ffmpeg_banner), ("ffprobe", "ffprobe version 4.3.1 Copyright")):
        fake = tmp_path / name
        fake.write_text(f"#!/bin/sh\nif [ \"$2\" = -version ] || [ \"$1\" = -version ]; then echo '{banner}'; "
                        f"exit 0; fi\nexec '{MAKER}' \"$@\"\n")
        fake.chmod(0o755)
    src = make_clip(tmp_path / "in.mp4", seconds=0.2, audio=False)
    env = {"ENHANCER_FFPROBE": ""}  # ffprobe: the one beside --ffmpeg
    r = run_cli("enhance", str(src), "-o", str(tmp_path / "o.mp4"), "--model", "lanczos", "--ffmpeg",
                str(tmp_path / "ffmpeg"), "-q", env=env)
    assert r.returncode == 2 and not (tmp_path / "o.mp4").exists(), r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"/{named}: {named} " in lines[0] and "older than 5.1" in lines[0], r.stderr


def test_git_builds_are_placed_by_their_libraries():
    text = "ffmpeg version N-112233-gabcdef Copyright\nlibavutil      58.  2.100\nlibavcodec     60.  3.100 / 60.  3.100"
    assert ff.parse_version(text) == ((6, 0), "N-112233-gabcdef")
    assert ff.parse_version("ffmpeg version N-1-g0\nlibavcodec     59. 18.100")[0] == (5, 0)
    assert ff.parse_version("ffmpeg version N-1-g0\nlibavcodec     59. 37.100")[0] == (5, 1)
    assert ff.parse_version("ffmpeg version n9.0.2-17-g2a571b6068-20260930")[0] == (9, 0)


def test_vmaf_with_every_build(use_build, tmp_path):
    """VMAF is measured whichever ffmpeg decodes: where the build lacks libvmaf (Debian's 5.1
    does), the bundled ffmpeg measures it; identical clips score near 100."""
    from enhancer.quality.evaluate import vmaf

    clip = make_clip(tmp_path / "a.mkv", size="128x96", vcodec="ffv1", audio=False, seconds=0.3)
    scores = vmaf(str(clip), str(clip))
    assert len(scores) == 8 and min(scores) > 95


def test_timecode_kept_and_shifted(use_build, tmp_path):
    """The start timecode is read (ffprobe's JSON or the banner) and written (-timecode) by each build."""
    src = make_clip(tmp_path / "tc.mov", size="96x64", seconds=1.2, audio=False,
                    extra_out=["-timecode", "10:00:00:00", "-metadata:s:v:0", "reel_name=B7"])
    info = probe(str(src))
    assert info.timecode == "10:00:00:00" and info.reel_name == "B7"
    _enhance(src, tmp_path / "o.mov", EnhanceOptions(progress=False, start=0.4))
    banner = subprocess.run([MAKER, "-hide_banner", "-i", str(tmp_path / "o.mov")], capture_output=True,
                            text=True).stderr
    assert "10:00:00:10" in banner and "B7" in banner and "10:00:00:00" not in banner


def test_splice_with_every_build(use_build, tmp_path):
    """--splice: the packet-range copy (noise and setts bitstream filters) around a ProRes segment,
    and the lossless re-encode cut on timestamps (trim) around an H.264 one, with each build."""
    from test_splice import Invert, frame_md5s

    prores = make_clip(tmp_path / "m.mov", size="96x64", seconds=1.2, vcodec="prores_ks", pix_fmt="yuv422p10le",
                       extra_out=["-c:a", "pcm_s16le"])
    h264 = make_clip(tmp_path / "m.mp4", size="96x64", seconds=1.2, extra_out=["-bf", "2"])
    for src, out, note in ((prores, tmp_path / "o.mov", "copied"), (h264, tmp_path / "o.mkv", "losslessly")):
        res = enhance_video(probe(str(src)), str(out), Invert(), EncodeOptions(),
                            EnhanceOptions(progress=False, start=0.4, duration=0.4, splice=True))
        assert any(note in w for w in res.warnings), res.warnings
        a, b = frame_md5s(src), frame_md5s(out)
        assert len(a) == len(b) == 30
        assert [k for k in range(30) if a[k] != b[k]] == list(range(10, 10 + res.frames)), src
        assert stream_md5(src, "a:0") == stream_md5(out, "a:0")


def test_mp4_track_titles_kept(use_build, tmp_path):
    """The video and audio tracks' titles come through, though ffmpeg 5.1's MP4 demuxer does not
    read them (enhancer reads the tracks' udta/name itself)."""
    from enhancer.media.mp4boxes import mov_track_titles

    plain = make_clip(tmp_path / "plain.mp4", size="96x64", seconds=0.4)
    srt = tmp_path / "s.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:00,300\nhi\n", encoding="utf-8")
    src = tmp_path / "titled.mp4"
    titles = {0: "Caméra 2 — 東京", 1: " Director = a ", 2: "Notes"}
    subprocess.run([MAKER, "-v", "error", "-y", "-i", str(plain), "-i", str(srt), "-map", "0", "-map", "1", "-c", "copy",
                    "-c:s", "mov_text", *[a for k, v in titles.items() for a in (f"-metadata:s:{k}", f"title={v}")],
                    str(src)], check=True)
    assert mov_track_titles(str(src)) == titles
    info = probe(str(src))
    assert {k.lower(): v for k, v in info.video_tags.items()}.get("title", info.video_tags.get("name")) == titles[0]
    assert [a.title for a in info.audio] == [titles[1]] and [s.title for s in info.subtitles] == [titles[2]]
    _enhance(src, tmp_path / "out.mp4")
    assert mov_track_titles(str(tmp_path / "out.mp4")) == titles
    _enhance(src, tmp_path / "out.mkv")
    banner = subprocess.run([MAKER, "-hide_banner", "-i", str(tmp_path / "out.mkv")], capture_output=True,
                            text=True).stderr
    for title in titles.values():  # each once, as a title (no second NAME tag beside it)
        assert banner.count(title) == 1 and f"title           : {title}" in banner, banner
