"""What issue 14 found untested: the muxer's audio and subtitle fallbacks, --audio, --crf and
--device, output-name collisions, the per-output state decisions (run, skip, failed before, redo,
an output deleted after it was recorded), and tests reading ../shared skipping where it is absent."""
from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import MAKER, make_clip, run_cli, stream_md5
from enhancer.restore import weights
from enhancer.batch.runner import decide_job
from enhancer.pipeline.engine import EnhanceOptions
from enhancer.pipeline.enhance import enhance_video
from enhancer.restore.restorer import ClassicalUpscaler
from enhancer.media.encode import EncodeOptions
from enhancer.media.probe import count_frames, probe
from enhancer.batch.naming import Job
from enhancer.pipeline.recipe import Recipe
from enhancer.batch.state import STATE_NAME, BatchState, Decision

LANCZOS = ["--model", "lanczos", "--preset", "ultrafast"]


def _rows(stdout: str) -> list[dict]:
    return [json.loads(x) for x in stdout.splitlines() if x.strip()]


def _streams(path: Path) -> list[tuple[str, str]]:
    """(kind, codec) of every stream, read from ffmpeg's own listing (not enhancer's probe)."""
    err = subprocess.run([MAKER, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    return re.findall(r"Stream #0:\d+.*?: (Video|Audio|Subtitle|Attachment|Data): (\w+)", err)


def _kinds(path: Path, kind: str) -> list[str]:
    return [codec for k, codec in _streams(path) if k == kind]


def _samples(path: Path, stream: str = "a:0") -> bytes:
    """One audio stream decoded to 16-bit PCM."""
    return subprocess.run([MAKER, "-hide_banner", "-loglevel", "error", "-i", str(path), "-map", f"0:{stream}",
                           "-f", "s16le", "-"], capture_output=True, check=True).stdout


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- media with what the muxer has to fall back on ------------------------------------------
def _pgs(width: int, height: int, start: float, end: float) -> bytes:
    """A minimal HDMV PGS (.sup) subtitle: an 8x2 white box shown from ``start`` to ``end``
    seconds (ffmpeg cannot turn text into picture subtitles, so one is written by hand)."""
    def seg(kind: int, pts: int, data: bytes) -> bytes:
        return b"PG" + struct.pack(">IIBH", pts, 0, kind, len(data)) + data

    p0, p1, w, h = int(start * 90000), int(end * 90000), 8, 2
    rle = bytes([0, 0x80 | w, 1, 0, 0]) * h  # a run of w pixels of colour 1, then end of line
    obj = struct.pack(">HH", w, h) + rle
    out = seg(0x16, p0, struct.pack(">HHBHBBBB", width, height, 0x10, 0, 0x80, 0, 0, 1)
              + struct.pack(">HBBHH", 0, 0, 0, 4, 4))  # presentation: epoch start, one object
    out += seg(0x17, p0, struct.pack(">BBHHHH", 1, 0, 4, 4, w, h))  # window
    out += seg(0x14, p0, bytes([0, 0, 1, 235, 128, 128, 255]))  # palette: colour 1 opaque white
    out += seg(0x15, p0, struct.pack(">HBB", 0, 0, 0xC0) + len(obj).to_bytes(3, "big") + obj)  # the object
    out += seg(0x80, p0, b"")
    out += seg(0x16, p1, struct.pack(">HHBHBBBB", width, height, 0x10, 1, 0, 0, 0, 0))  # cleared
    out += seg(0x17, p1, struct.pack(">BBHHHH", 1, 0, 4, 4, w, h))
    return out + seg(0x80, p1, b"")


@pytest.fixture(scope="module")
def pcm_and_picture_subs(tmp_path_factory) -> Path:
    """An MKV holding x264 video, PCM audio, a text (SubRip) and a picture (DVD) subtitle."""
    d = tmp_path_factory.mktemp("fallbacks")
    (d / "s.srt").write_text("1\n00:00:00,100 --> 00:00:00,800\nhello there\n", encoding="utf-8")
    (d / "s.sup").write_bytes(_pgs(96, 64, 0.1, 0.8))
    src = d / "src.mkv"
    subprocess.run([MAKER, "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25:duration=1",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=1",
                    "-i", str(d / "s.srt"), "-i", str(d / "s.sup"),
                    "-map", "0:v", "-map", "1:a", "-map", "2:s", "-map", "3:s", "-c:v", "libx264", "-preset",
                    "ultrafast", "-c:a", "pcm_s16le", "-c:s:0", "srt", "-c:s:1", "dvdsub", str(src)], check=True)
    assert _streams(src) == [("Video", "h264"), ("Audio", "pcm_s16le"), ("Subtitle", "subrip"),
                             ("Subtitle", "dvd_subtitle")]
    return src


def _subtitle_text(path: Path) -> str:
    return subprocess.run([MAKER, "-hide_banner", "-loglevel", "error", "-i", str(path), "-map", "0:s:0", "-f", "srt",
                           "-"], capture_output=True, text=True, check=True).stdout


def test_pcm_audio_and_picture_subtitles_into_mp4_fall_back_and_say_so(tmp_path, pcm_and_picture_subs):
    """MP4 holds neither PCM nor picture subtitles: the PCM is re-encoded losslessly (ALAC, the
    same samples), the picture subtitle is left out, the text one converted, and each fallback is a
    warning in the JSON line and in --report."""
    src, dst, report = pcm_and_picture_subs, tmp_path / "out.mp4", tmp_path / "report.json"
    r = run_cli("enhance", str(src), "-o", str(dst), "--json", "-q", "--report", str(report), *LANCZOS)
    assert r.returncode == 0, r.stderr
    row = _rows(r.stdout)[0]
    assert row["status"] == "done" and row["frames"] == 25
    assert _streams(dst) == [("Video", "h264"), ("Audio", "alac"), ("Subtitle", "mov_text")]
    assert _samples(dst) == _samples(src)  # lossless: every sample kept
    assert "hello there" in _subtitle_text(dst)
    for warnings in (row["warnings"], json.loads(report.read_text())["files"][0]["warnings"]):
        assert len(warnings) == 2, warnings
        audio = next(w for w in warnings if "audio" in w)
        subs = next(w for w in warnings if "subtitle" in w)
        assert "pcm_s16le" in audio and "ALAC" in audio and "mp4" in audio
        assert "dvd_subtitle" in subs and "picture" in subs and "left out" in subs and ".mkv" in subs


@pytest.mark.parametrize("ext", ["mkv", "mov", "nut"])
def test_pcm_audio_and_picture_subtitles_where_the_container_holds_them(tmp_path, pcm_and_picture_subs, ext):
    """MKV holds everything: PCM and the picture subtitle are copied as they are (the same packets).
    MOV holds PCM (copied) but no picture subtitle (left out, with a warning). NUT holds the PCM
    but no subtitle with its duration, nor any tag for SubRip: both are left out with one warning
    (the output was refused at its header before)."""
    src, dst = pcm_and_picture_subs, tmp_path / f"out.{ext}"
    res = enhance_video(probe(str(src)), str(dst), ClassicalUpscaler("lanczos", 1),
                        EncodeOptions(preset="ultrafast"), EnhanceOptions(progress=False))
    assert stream_md5(dst, "a:0") == stream_md5(src, "a:0")
    if ext == "nut":
        assert _streams(dst) == [("Video", "h264"), ("Audio", "pcm_s16le")]
        assert len(res.warnings) == 1 and "2 subtitle stream(s) left out" in res.warnings[0], res.warnings
        assert ".mkv" in res.warnings[0]
        return
    assert "hello there" in _subtitle_text(dst)
    if ext == "mkv":
        assert _streams(dst) == _streams(src) and res.warnings == []
        assert stream_md5(dst, "s:1") == stream_md5(src, "s:1")  # the pictures, untouched
    else:
        assert _streams(dst) == [("Video", "h264"), ("Audio", "pcm_s16le"), ("Subtitle", "mov_text")]
        assert len(res.warnings) == 1 and "dvd_subtitle" in res.warnings[0] and "left out" in res.warnings[0]


# ---- --audio, --crf, --device ---------------------------------------------------------------
@pytest.fixture(scope="module")
def two_audio_streams(tmp_path_factory) -> Path:
    """An MKV with Vorbis and AAC audio (MP4 takes AAC as it is, not Vorbis) and a text subtitle."""
    d = tmp_path_factory.mktemp("audio")
    (d / "s.srt").write_text("1\n00:00:00,100 --> 00:00:00,500\nbonjour\n", encoding="utf-8")
    src = d / "two.mkv"
    subprocess.run([MAKER, "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25:duration=0.6",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=0.6",
                    "-f", "lavfi", "-i", "sine=frequency=660:sample_rate=44100:duration=0.6", "-i", str(d / "s.srt"),
                    "-map", "0:v", "-map", "1:a", "-map", "2:a", "-map", "3:s", "-c:v", "libx264", "-preset",
                    "ultrafast", "-c:a:0", "libvorbis", "-c:a:1", "aac", "-c:s", "srt", str(src)], check=True)
    assert _kinds(src, "Audio") == ["vorbis", "aac"]
    return src


@pytest.mark.slow  # five CLI runs; the AAC fall-back into MP4 stays quick above
def test_audio_option_copies_reencodes_or_leaves_out(tmp_path, two_audio_streams):
    src = two_audio_streams
    out = {mode: tmp_path / f"{mode}.mkv" for mode in ("copy", "aac", "none")}
    for mode, dst in out.items():
        r = run_cli("enhance", str(src), "-o", str(dst), "--audio", mode, "--json", "-q", *LANCZOS)
        assert r.returncode == 0 and _rows(r.stdout)[0]["warnings"] == [], r.stderr + r.stdout
        assert _kinds(dst, "Subtitle") == ["subrip"]  # --audio touches only the audio
    # copy (the default): both streams, packet for packet
    assert _kinds(out["copy"], "Audio") == ["vorbis", "aac"]
    assert [stream_md5(out["copy"], f"a:{i}") for i in (0, 1)] == [stream_md5(src, f"a:{i}") for i in (0, 1)]
    # aac: both re-encoded, even the one that was AAC already
    assert _kinds(out["aac"], "Audio") == ["aac", "aac"]
    assert stream_md5(out["aac"], "a:1") != stream_md5(src, "a:1")
    # none: no audio at all
    assert _kinds(out["none"], "Audio") == []
    # copy into a container that cannot hold one of them: that one becomes AAC (lossy: said so)
    r = run_cli("enhance", str(src), "-o", str(tmp_path / "copy.mp4"), "--json", "-q", *LANCZOS)
    row = _rows(r.stdout)[0]
    assert _kinds(tmp_path / "copy.mp4", "Audio") == ["aac", "aac"]
    assert stream_md5(tmp_path / "copy.mp4", "a:1") == stream_md5(src, "a:1")  # the AAC one copied
    assert [w for w in row["warnings"] if "audio" in w] == [
        "audio stream 1 (vorbis) cannot be copied into mp4; re-encoded to AAC 256k (use .mkv to copy it as it is)"]
    r = run_cli("enhance", str(src), "-o", str(tmp_path / "x.mkv"), "--audio", "mp3", *LANCZOS)
    assert r.returncode == 2 and "copy" in r.stderr and not (tmp_path / "x.mkv").exists()


def _x264_settings(path: Path) -> str:
    """The options x264 wrote into the stream (its SEI user data)."""
    m = re.search(rb"x264 - core .*? options: ([^\x00]*)", path.read_bytes())
    assert m, "no x264 settings in the stream"
    return m.group(1).decode("ascii", "replace")


@pytest.mark.slow  # six CLI runs; the CRF in the recipe key is checked in-process (test_state.py)
def test_crf_sets_the_quality_and_a_new_crf_redoes_the_output(tmp_path):
    src = make_clip(tmp_path / "a.mp4", seconds=1, audio=False)
    sizes = {}
    for crf in (None, "10", "40"):
        dst = tmp_path / f"crf{crf}.mp4"
        r = run_cli("enhance", str(src), "-o", str(dst), *(["--crf", crf] if crf else []), "-q", *LANCZOS)
        assert r.returncode == 0, r.stderr
        assert re.search(rf"\bcrf={crf or 18}\.0\b", _x264_settings(dst))  # the help's default: 18
        sizes[crf] = dst.stat().st_size
    assert sizes["10"] > 2 * sizes["40"] and sizes["10"] > sizes[None] > sizes["40"]
    # the CRF is part of the recipe: another one into the same output redoes it (no --overwrite)
    dst = tmp_path / "same.mp4"
    for crf, status in (("40", "done"), ("40", "skipped"), ("10", "done")):
        r = run_cli("enhance", str(src), "-o", str(dst), "--crf", crf, "--json", "-q", *LANCZOS)
        assert _rows(r.stdout)[0]["status"] == status, (crf, r.stdout, r.stderr)
    assert "crf=10.0" in _x264_settings(dst)


def _tiny_model(path: Path) -> Path:
    from enhancer.models import Generator, GeneratorConfig

    torch.manual_seed(0)
    g = Generator(GeneratorConfig(scale=2, channels=8, frame_blocks=1, temporal_blocks=2, post_blocks=1))
    weights.save(g, path, weights.ModelCard(name="tiny", arch="stgan-generator", config=g.config.to_dict(), scale=2))
    return path


def _one_line_error(r) -> str:
    err = r.stderr
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def _cli_in_process(monkeypatch, *args: str):
    """The enhance command run in this process (its torch already loaded: a second or two less per
    run than a subprocess), for option errors raised before any work; with the signal handlers
    and the progress mode of the command kept to it."""
    import contextvars

    from click.testing import CliRunner

    from enhancer import cli
    from enhancer.cli import common

    monkeypatch.setattr(common.Interrupts, "install", lambda self: self)
    r = contextvars.copy_context().run(CliRunner().invoke, cli.main, list(args))
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    r.returncode = r.exit_code
    return r


def test_device_option(tmp_path, monkeypatch):
    """--device cpu runs on the CPU; a device that is not there (CUDA on a machine without it, a
    GPU number the machine lacks) or not a device at all is one line and exit 2, before any work."""
    src = make_clip(tmp_path / "a.mp4", seconds=0.3, audio=False)
    model = str(_tiny_model(tmp_path / "tiny.safetensors"))
    r = run_cli("enhance", str(src), "-o", str(tmp_path / "cpu.mkv"), "--model", model, "--device", "cpu", "--json",
                "-q")
    assert r.returncode == 0 and _rows(r.stdout)[0]["frames"] == 8, r.stderr
    assert probe(str(tmp_path / "cpu.mkv")).width == 192
    # the choice reaches the model: fp16 is refused on the CPU, whatever GPU the machine has
    r = _cli_in_process(monkeypatch, "enhance", str(src), "-o", str(tmp_path / "fp16.mkv"), "--model", model,
                        "--device", "cpu", "--precision", "fp16")
    assert r.returncode == 2 and "fp16 is not supported on the CPU" in _one_line_error(r)
    missing = (("cuda:99", "no GPU 99") if torch.cuda.is_available() else
               ("cuda", "CUDA was asked for but no CUDA GPU is available (use --device cpu)"))
    for device, words in (missing, ("bogus", "unknown device 'bogus'")):
        r = _cli_in_process(monkeypatch, "enhance", str(src), "-o", str(tmp_path / "x" / "o.mkv"), "--model", model,
                            "--device", device)
        assert r.returncode == 2 and words in _one_line_error(r), r.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path / "fp16.mkv").exists()


def test_an_unknown_device_is_a_usage_error_for_classical_models_too(tmp_path):
    src = make_clip(tmp_path / "a.mp4", seconds=0.2, audio=False)
    r = run_cli("enhance", str(src), "-o", str(tmp_path / "o.mkv"), "--device", "bogus", *LANCZOS)
    assert r.returncode == 2 and "unknown device" in r.stderr


def test_v_and_report_say_what_chose_the_ffmpeg(tmp_path):
    src = make_clip(tmp_path / "a.mp4", seconds=0.2, audio=False)
    for how, extra in (("ENHANCER_FFMPEG", []), ("--ffmpeg", ["--ffmpeg", MAKER])):
        report = tmp_path / f"{how}.json"
        r = run_cli("enhance", str(src), "-o", str(tmp_path / f"{how}.mkv"), "-v", "-q", "--report", str(report),
                    *extra, *LANCZOS, env={"ENHANCER_FFMPEG": MAKER})
        assert r.returncode == 0, r.stderr
        assert f"({MAKER}, chosen by {how})" in r.stderr.splitlines()[0]
        assert json.loads(report.read_text())["ffmpeg"]["chosen_by"] == how


# ---- output-name collisions ------------------------------------------------------------------
@pytest.mark.slow  # two CLI runs of four files; test_naming.py's same-names test stays quick
def test_same_names_in_two_input_folders_do_not_overwrite_each_other(tmp_path):
    """Folders given as inputs (outputs mirror the tree below each one): x.mp4 in both, and
    sub/y.mp4 in both, into one output folder."""
    lengths = {"a": (0.2, 0.28), "b": (0.36, 0.44)}
    for d, (x, y) in lengths.items():
        (tmp_path / d / "sub").mkdir(parents=True)
        make_clip(tmp_path / d / "x.mp4", seconds=x, audio=False)
        make_clip(tmp_path / d / "sub" / "y.mp4", seconds=y, audio=False)
    out = tmp_path / "out"
    args = ["-o", str(out), "-r", "--json", "-q", *LANCZOS]
    r = run_cli("enhance", str(tmp_path / "a"), str(tmp_path / "b"), *args)
    assert r.returncode == 0, r.stderr
    made = {Path(row["input"]).relative_to(tmp_path).as_posix(): Path(row["output"]).relative_to(out).as_posix()
            for row in _rows(r.stdout)}
    assert made == {"a/x.mp4": "a/x.mp4", "a/sub/y.mp4": "a/sub/y.mp4", "b/x.mp4": "b/x.mp4",
                    "b/sub/y.mp4": "b/sub/y.mp4"}
    for rel in made.values():  # each output holds its own input's frames
        assert count_frames(str(out / rel)) == count_frames(str(tmp_path / rel))
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.mp4")) == sorted(made.values())
    # the same names in the other order, and nothing is redone
    r = run_cli("enhance", str(tmp_path / "b"), str(tmp_path / "a"), *args)
    assert [row["status"] for row in _rows(r.stdout)] == ["skipped"] * 4, r.stdout


def test_same_stem_with_another_extension_keeps_the_extension_in_the_name(tmp_path):
    (tmp_path / "in").mkdir()
    make_clip(tmp_path / "in" / "a.mp4", seconds=0.2, audio=False)
    make_clip(tmp_path / "in" / "a.mkv", seconds=0.4, audio=False)
    out = tmp_path / "out"
    r = run_cli("enhance", str(tmp_path / "in"), "-o", str(out), "--container", "mkv", "--json", "-q", *LANCZOS)
    assert r.returncode == 0, r.stderr
    assert {Path(x["input"]).name: Path(x["output"]).name for x in _rows(r.stdout)} == {"a.mkv": "a.mkv",
                                                                                        "a.mp4": "a_mp4.mkv"}
    assert count_frames(str(out / "a.mkv")) == 10 and count_frames(str(out / "a_mp4.mkv")) == 5


def test_an_output_that_would_be_the_input_is_refused_and_the_input_untouched(tmp_path):
    """-o naming the input gives NAME.enhanced.EXT; where that name is the input too (a hard
    link), the run is refused before any work: one line, exit 2, nothing written."""
    src = make_clip(tmp_path / "a.mp4", seconds=0.2)
    os.link(src, tmp_path / "a.enhanced.mp4")
    before = _sha(src)
    listing = sorted(p.name for p in tmp_path.iterdir())
    r = run_cli("enhance", str(src), "-o", str(src), "--overwrite", *LANCZOS)
    assert r.returncode == 2 and "would replace the input" in _one_line_error(r)
    assert _sha(src) == before and os.path.samefile(src, tmp_path / "a.enhanced.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == listing  # no record, lock or temporary
    # into a folder where both names are the input (hard links): refused the same way
    out = tmp_path / "out"
    out.mkdir()
    os.link(src, out / "a.mp4")
    os.link(src, out / "a.enhanced.mp4")
    r = run_cli("enhance", str(src), "-o", str(out), "--overwrite", *LANCZOS)
    assert r.returncode == 2 and "would replace an input" in _one_line_error(r)
    assert _sha(src) == before and sorted(p.name for p in out.iterdir()) == ["a.enhanced.mp4", "a.mp4"]
    # a symbolic link to the input as -o: the output goes beside it, the link and the input stay
    (tmp_path / "link.mp4").symlink_to(src)
    r = run_cli("enhance", str(src), "-o", str(tmp_path / "link.mp4"), "--json", "-q", *LANCZOS)
    assert r.returncode == 0 and Path(_rows(r.stdout)[0]["output"]).name == "link.enhanced.mp4", r.stderr
    assert (tmp_path / "link.mp4").is_symlink() and _sha(src) == before


# ---- the state decisions ---------------------------------------------------------------------
def _failing_ffmpeg(tmp_path: Path) -> tuple[Path, Path, Path]:
    """An ffmpeg that fails every encode (it reads frames on pipe:0) while ``marker`` exists, and
    logs each encode it is asked for to ``calls``."""
    wrapper, marker, calls = tmp_path / "bin" / "ffmpeg", tmp_path / "broken", tmp_path / "calls"
    wrapper.parent.mkdir()
    wrapper.write_text(f"""#!/bin/sh
for a in "$@"; do
  if [ "$a" = pipe:0 ]; then
    echo encode >> '{calls}'
    if [ -e '{marker}' ]; then echo 'Conversion failed: simulated' >&2; exit 1; fi
  fi
done
exec '{MAKER}' "$@"
""")
    wrapper.chmod(0o755)
    marker.write_text("x")
    return wrapper, marker, calls


@pytest.mark.slow  # five CLI runs; the same decisions are checked in-process below
def test_failed_before_is_reported_not_retried_until_retry_failed(tmp_path):
    """The same recipe that failed is not run again (even once the cause is gone) until
    --retry-failed; then it runs, and the next run skips it as done."""
    src = make_clip(tmp_path / "a.mp4", seconds=0.2, audio=False)
    wrapper, marker, calls = _failing_ffmpeg(tmp_path)
    out = tmp_path / "out"
    env = {"ENHANCER_FFMPEG": str(wrapper)}

    def run(*extra):
        r = run_cli("enhance", str(src), "-o", str(out), "--json", "-q", *LANCZOS, *extra, env=env)
        return r, _rows(r.stdout)[0]

    r, row = run()
    assert r.returncode == 1 and row["status"] == "failed" and "earlier run" not in row["error"], r.stderr
    first_error = row["error"]
    assert BatchState(out).entries["a.mp4"].status == "failed"
    assert calls.read_text().count("encode") == 1 and not (out / "a.mp4").exists()
    marker.unlink()  # the cause is gone, but the recipe is the same
    r, row = run()
    assert r.returncode == 1 and row["status"] == "failed", r.stderr
    assert "failed in an earlier run" in row["error"] and "--retry-failed" in row["error"]
    assert row["error"].startswith(first_error)  # with the reason it failed then
    assert calls.read_text().count("encode") == 1, "a failure of the same recipe was run again"
    r, row = run("--dry-run")
    assert r.returncode == 1 and row["status"] == "failed" and "would fail" in r.stderr
    r, row = run("--retry-failed")
    assert r.returncode == 0 and row["status"] == "done", r.stderr
    assert calls.read_text().count("encode") == 2 and count_frames(str(out / "a.mp4")) == 5
    assert BatchState(out).entries["a.mp4"].status == "done"
    r, row = run()
    assert row["status"] == "skipped" and calls.read_text().count("encode") == 2


@pytest.mark.slow  # three CLI runs; the same decision is checked in-process below
def test_an_output_deleted_after_it_was_done_is_made_again(tmp_path):
    src = make_clip(tmp_path / "a.mp4", seconds=0.2, audio=False)
    out = tmp_path / "out"
    statuses = []
    for delete in (False, True, False):
        if delete:
            (out / "a.mp4").unlink()
        r = run_cli("enhance", str(src), "-o", str(out), "--json", "-q", *LANCZOS)
        assert r.returncode == 0, r.stderr
        statuses.append(_rows(r.stdout)[0]["status"])
    assert statuses == ["done", "done", "skipped"]
    assert count_frames(str(out / "a.mp4")) == 5


def test_a_file_enhancer_did_not_make_is_kept_until_overwrite(tmp_path):
    src = make_clip(tmp_path / "a.mp4", seconds=0.2, audio=False)
    out = tmp_path / "out"
    out.mkdir()
    theirs = out / "a.mp4"
    theirs.write_bytes(b"someone else's file")
    r = run_cli("enhance", str(src), "-o", str(out), "--json", "-q", *LANCZOS)
    row = _rows(r.stdout)[0]
    assert r.returncode == 0 and row["status"] == "skipped" and "output exists" in row["error"]
    assert "--overwrite" in row["error"] and theirs.read_bytes() == b"someone else's file"
    r = run_cli("enhance", str(src), "-o", str(out), "--json", "-q", "--overwrite", *LANCZOS)
    assert _rows(r.stdout)[0]["status"] == "done" and count_frames(str(theirs)) == 5


def test_state_decisions_the_other_tests_leave_out(tmp_path):
    """BatchState.decide and decide_job for what test_state.py does not cover: an output gone
    after it was recorded, a failure whose recipe changed, an incomplete output retried or gone,
    an output made from another input, an earlier version's state file under a newer record."""
    a = make_clip(tmp_path / "a.mp4", seconds=0.2, audio=False)
    b = make_clip(tmp_path / "b.mp4", seconds=0.2, audio=False)
    out = tmp_path / "x.mp4"
    enc, opts = EncodeOptions(), EnhanceOptions(progress=False)
    lanczos = ClassicalUpscaler("lanczos", 2)
    recipe = Recipe.of(str(a), lanczos, enc, opts)
    other = Recipe.of(str(a), ClassicalUpscaler("bicubic", 2), enc, opts)
    from_b = Recipe.of(str(b), lanczos, enc, opts)
    st = BatchState(tmp_path / "state")
    key = str(out)  # outside the state's folder: recorded by its absolute path

    def decide(r=recipe, retry=False):
        return BatchState(tmp_path / "state").decide(key, r, retry_failed=retry)

    st.record(key, recipe, "done")
    assert decide() == (Decision.REDO, None)  # recorded done, but the file is gone: made again
    out.write_bytes(b"x")
    assert decide()[0] is Decision.SKIP
    assert decide(from_b)[0] is Decision.OTHER_INPUT and str(a) in decide(from_b)[1]
    st.record(key, recipe, "failed", "boom")
    # a failure's record says nothing of the file there: it is not replaced without --overwrite (issue 29)
    assert decide(other) == (Decision.RUN, None)
    assert decide(from_b) == (Decision.RUN, None)
    st.record(key, recipe, "incomplete", "decoded 3 of 5")
    assert decide(retry=True)[0] is Decision.REDO
    out.unlink()
    assert decide()[0] is Decision.REDO  # incomplete and gone
    assert decide(from_b)[0] is Decision.REDO  # nothing there to protect
    st.record(key, recipe, "failed", "boom")
    assert decide() == (Decision.FAILED_BEFORE, "boom")  # failed: the file's absence changes nothing

    # decide_job: what each decision does to the job
    job = Job(str(a), str(out))

    def job_result(state, **kw):
        return decide_job(job, lanczos, enc, opts, overwrite=kw.pop("overwrite", False), state=state, **kw)

    st = BatchState(tmp_path / "state")
    d = job_result(st)
    assert d.result.status == "failed" and "failed in an earlier run" in d.result.error
    assert job_result(st, overwrite=True).result is None  # --overwrite redoes failures too
    assert job_result(st, retry_failed=True).result is None
    out.write_bytes(b"ours, from another recipe")
    st.record(key, other, "done")
    d = job_result(BatchState(tmp_path / "state"))
    assert d.result is None and d.overwrite  # our own output from another recipe: replaced
    d = job_result(BatchState(tmp_path / "empty"))
    assert d.result.status == "skipped" and "output exists" in d.result.error and not d.overwrite

    # an earlier version's single state file is read, and a record of the same output wins over it
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "x.mp4").write_bytes(b"x")
    entry = {"status": "done", "input": recipe.input, "recipe": recipe.to_dict(), "key": recipe.key()}
    (legacy / STATE_NAME).write_text(json.dumps({"outputs": {"x.mp4": entry}}))
    written = (legacy / STATE_NAME).read_bytes()
    assert BatchState(legacy).decide(str(legacy / "x.mp4"), recipe, retry_failed=False)[0] is Decision.SKIP
    BatchState(legacy).record(str(legacy / "x.mp4"), recipe, "failed", "newer")
    assert BatchState(legacy).decide(str(legacy / "x.mp4"), recipe, retry_failed=False) == \
        (Decision.FAILED_BEFORE, "newer")
    assert (legacy / STATE_NAME).read_bytes() == written  # read, never written


# ---- tests that reach outside the repository -------------------------------------------------
def test_tests_reading_the_shared_folder_skip_with_a_reason_where_it_is_absent(tmp_path):
    """Every test that reads ../shared (conftest.SHARED) skips, saying what it lacks, when that
    folder is not there; none fails. The tests are found by what they read, not by a list."""
    tests = Path(__file__).resolve().parent
    own = Path(__file__).name
    readers = {}
    for path in sorted(tests.glob("test_*.py")):
        text = path.read_text(encoding="utf-8")
        if path.name == own:
            continue
        # nobody builds the path to the shared folder but conftest: all go through SHARED / needs_shared
        assert '"shared"' not in text and "'shared'" not in text and "/work/shared" not in text, path.name
        if "SHARED" in text or "needs_shared(" in text:
            readers[path.name] = re.findall(r"^(needs_\w+) = needs_shared\(", text, re.M)
    assert {"test_evaluate.py", "test_features.py"} <= set(readers)
    marked = []
    for name, markers in readers.items():
        text = (tests / name).read_text(encoding="utf-8")
        skip = "|".join([*markers, r"needs_shared\(.*\)"])
        marked += [f"{name}::{t}" for t in re.findall(rf"^@(?:{skip})\n(?:@.*\n)*def (test_\w+)", text, re.M)]
    # every test that names a SHARED path is one of the marked ones
    for name in readers:
        text = (tests / name).read_text(encoding="utf-8")
        for test, body in re.findall(r"^def (test_\w+)\(.*?\n(.*?)(?=^def |^@|\Z)", text, re.M | re.S):
            if re.search(r"\b(ORIGINAL|SHARED_MOBILENET|SHARED)\b|\bimagenet\b", body + test):
                assert f"{name}::{test}" in marked, f"{name}::{test} reads the shared folder without a skip"
    assert len(marked) >= 4, marked
    env = dict(os.environ, ENHANCER_TEST_SHARED=str(tmp_path / "no-shared-here"))
    env.pop("ENHANCER_MOBILENET_WEIGHTS", None)
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                        *[str(tests / m) for m in marked]], capture_output=True, text=True, env=env,
                       cwd=tests.parent, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert re.search(rf"\b{len(marked)} skipped\b", r.stdout) and " passed" not in r.stdout, r.stdout[-3000:]
    assert r.stdout.count("no-shared-here") >= len(marked), r.stdout[-3000:]  # each says which file it lacks


def test_ray_options_without_the_ray_executor_are_usage_errors(tmp_path):
    src = make_clip(tmp_path / "a.mp4", seconds=0.2, audio=False)
    for extra in (["--ray-split", "5"], ["--ray-address", "127.0.0.1:1"]):
        r = run_cli("enhance", str(src), "-o", str(tmp_path / "o.mkv"), *extra, *LANCZOS)
        assert r.returncode == 2 and f"{extra[0]} is for --executor ray" in r.stderr, r.stderr
    assert not (tmp_path / "o.mkv").exists()
