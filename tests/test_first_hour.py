"""Issue 18, what a new user trips on: what the output keeps (pixel aspect, chroma, stream tags),
and the CLI doing what it says (output names, model names, dry runs, progress bars, compare
labels, image-sequence rates, evaluating at another scale)."""
from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from conftest import make_clip, run_cli
from enhancer.errors import EnhancerError, ModelError, UsageError
from enhancer.pipeline.engine import EnhanceOptions
from enhancer.pipeline.enhance import enhance_video
from enhancer.restore.restorer import CLASSICAL, ClassicalUpscaler
from enhancer.media import ffmpeg as ff
from enhancer.media.encode import EncodeOptions
from enhancer.media.plan import _yuv_format
from enhancer.media.probe import probe

QUIET = EnhanceOptions(progress=False)


def _enhance(src: Path, dst: Path, opts: EnhanceOptions = QUIET, **enc):
    return enhance_video(probe(str(src)), str(dst), ClassicalUpscaler("lanczos", 2), EncodeOptions(**enc), opts)


def _stream(path: Path) -> str:
    """ffmpeg's description of a file's video stream (with ffprobe or not, the same text)."""
    text = subprocess.run([ff.tools().ffmpeg, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    return next(line for line in text.splitlines() if "Video:" in line)


# ---- keep what the user did not ask to change -------------------------------------------------
@pytest.mark.parametrize("codec,ext", [("h264", ".mp4"), ("ffv1", ".mkv")])
def test_pixel_aspect_ratio_is_kept_or_resampled_to_square_pixels(tmp_path, codec, ext):
    src = make_clip(tmp_path / f"sar{ext}", size="96x64", seconds=0.2, audio=False,
                    vf="setsar=r=128/117:max=1000")
    assert probe(str(src)).sar == Fraction(128, 117)
    kept = tmp_path / f"kept{ext}"
    _enhance(src, kept, codec=codec)
    out = probe(str(kept))
    assert (out.width, out.height, out.sar) == (192, 128, Fraction(128, 117)), _stream(kept)
    square = tmp_path / f"square{ext}"
    _enhance(src, square, codec=codec, square_pixels=True)
    out = probe(str(square))
    # the same display shape (192 * 128/117 = 210.05 wide), with square pixels
    assert (out.width, out.height, out.sar) == (210, 128, Fraction(1)), _stream(square)


def test_chroma_format_and_depth_are_kept_where_the_codec_can(tmp_path):
    # delivery codecs are 4:2:0 at the source's depth (issue 29, item 16); the others keep the chroma
    assert _yuv_format("h264", "yuv444p", 8) == ("yuv420p", None)
    assert _yuv_format("h264", "gbrp", 8) == ("yuv420p", None)
    assert _yuv_format("h264", "yuv422p10le", 10) == ("yuv420p10le", None)
    assert _yuv_format("h264", "yuv420p", 8) == ("yuv420p", None)
    assert _yuv_format("h265", "yuv444p12le", 12) == ("yuv420p12le", None)
    assert _yuv_format("prores", "yuv420p", 8) == ("yuv422p10le", None)  # holds all of it: no warning
    assert _yuv_format("prores", "yuv444p", 8) == ("yuv444p10le", None)
    pix, why = _yuv_format("h264", "yuv444p12le", 12)
    assert pix == "yuv420p10le" and "12-bit" in why and "h265" in why
    src = make_clip(tmp_path / "c444.mkv", size="96x64", seconds=0.2, audio=False, pix_fmt="yuv444p")
    res = _enhance(src, tmp_path / "c444.mp4")
    assert "yuv420p" in _stream(tmp_path / "c444.mp4") and not res.warnings
    res = _enhance(src, tmp_path / "c444-asked.mp4", pix_fmt="yuv444p")
    assert "yuv444p" in _stream(tmp_path / "c444-asked.mp4")
    res = _enhance(src, tmp_path / "c444-ffv1.mkv", codec="ffv1")  # RGB, every sample of the 4:4:4 kept
    assert "bgr0" in _stream(tmp_path / "c444-ffv1.mkv")
    res = _enhance(src, tmp_path / "c444-mpeg2.mkv", codec="mpeg2")
    assert "yuv422p" in _stream(tmp_path / "c444-mpeg2.mkv")
    assert any("4:4:4" in w and "yuv422p" in w for w in res.warnings), res.warnings  # says what it chose


def test_video_stream_tags_come_through(tmp_path):
    src = make_clip(tmp_path / "tags.mkv", size="96x64", seconds=0.2, audio=False,
                    extra_out=["-metadata:s:v:0", "language=fra", "-metadata:s:v:0", "title=Camera 2"])
    _enhance(src, tmp_path / "tags-out.mkv")
    tags = {k.lower(): v for k, v in probe(str(tmp_path / "tags-out.mkv")).video_tags.items()}
    assert tags.get("language") == "fra" and tags.get("title") == "Camera 2", tags
    untagged = make_clip(tmp_path / "und.mp4", size="96x64", seconds=0.2, audio=False)
    assert probe(str(untagged)).video_tags.get("language") == "und"
    for ext in (".mp4", ".mkv"):  # the raw pipe says nothing, which Matroska reads as English
        out = tmp_path / f"und-out{ext}"
        _enhance(untagged, out)
        assert "(eng)" not in _stream(out), _stream(out)
        assert probe(str(out)).video_tags.get("language", "und") == "und"


def test_handler_name_kept_rotation_applied_not_copied(tmp_path):
    """MP4/MOV: the video track's handler name comes through; rotation is applied to the picture,
    so the output carries none (a player would otherwise turn it twice)."""
    from enhancer.media import ffmpeg as ff

    plain = make_clip(tmp_path / "p.mp4", size="96x64", seconds=0.2, audio=False,
                      extra_out=["-metadata:s:v:0", "handler_name=Camera Handler"])
    src = tmp_path / "rot.mov"
    subprocess.run([ff.tools().ffmpeg, "-loglevel", "error", "-y", "-display_rotation", "90", "-i", str(plain),
                    "-c", "copy", "-metadata:s:v:0", "handler_name=Camera Handler", str(src)], check=True)
    info = probe(str(src))
    assert info.rotation in (90, 270) and info.display_width == 64
    for ext in (".mov", ".mp4"):
        out = tmp_path / f"rot-out{ext}"
        _enhance(src, out)
        banner = subprocess.run([ff.tools().ffmpeg, "-hide_banner", "-i", str(out)], capture_output=True,
                                text=True).stderr
        assert "Camera Handler" in banner, banner
        assert "rotation" not in banner.lower() and "displaymatrix" not in banner.lower()
        assert probe(str(out)).width == 128 and probe(str(out)).height == 192  # upright, x2


# ---- say what it does, do what it says ---------------------------------------------------------
def test_a_video_name_the_tool_cannot_write_is_a_one_line_error(tmp_path):
    from enhancer.batch.naming import plan_jobs

    src = make_clip(tmp_path / "clip.mp4", size="96x64", seconds=0.2, audio=False)
    with pytest.raises(UsageError) as e:
        plan_jobs([(str(src), None)], str(tmp_path / "x.avi"), "h264")
    assert ".mkv" in str(e.value) and ".mp4" in str(e.value) and "x.avi" in str(e.value)
    with pytest.raises(UsageError):
        plan_jobs([(str(src), None)], str(tmp_path / "y.mp4"), "png")  # an image sequence is a folder
    assert plan_jobs([(str(src), None)], str(tmp_path / "plain"), "h264")  # a folder name stays a folder
    r = run_cli("enhance", str(src), "-o", str(tmp_path / "x.avi"), "--model", "lanczos")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "cannot write .avi" in r.stderr
    assert not (tmp_path / "x.avi").exists()


def test_every_classical_method_is_named_in_help_and_in_the_unknown_model_message():
    from enhancer.restore import weights
    from enhancer.cli.enhance import enhance

    with pytest.raises(ModelError) as e:
        weights.resolve("nope")
    helptext = next(o.help for o in enhance.params if o.name == "model")
    for name in CLASSICAL:
        assert name in str(e.value) and name in helptext


@pytest.mark.slow  # four CLI runs; test_cli.py's dry run stays quick
def test_dry_run_makes_the_decisions_of_a_real_run(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "a.mp4", size="96x64", seconds=0.2, audio=False)
    (src / "bad.mp4").write_bytes(b"not a video" * 100)
    out = tmp_path / "out"
    r = run_cli("enhance", str(src), "-o", str(out), "--model", "lanczos", "--json", "-q")
    assert r.returncode == 1, r.stderr
    make_clip(src / "new.mp4", size="96x64", seconds=0.2, audio=False)
    records = out / ".enhancer-records"
    before = sorted((p.name, p.read_bytes()) for p in records.iterdir())
    r = run_cli("enhance", str(src), "-o", str(out), "--model", "lanczos", "--json", "--dry-run")
    rows = {Path(row["input"]).name: row["status"] for row in map(json.loads, r.stdout.splitlines())}
    assert rows == {"a.mp4": "skipped", "bad.mp4": "failed", "new.mp4": "planned"}, r.stdout
    assert r.returncode == 1 and "would fail" in r.stderr  # as the real run would report it
    r = run_cli("enhance", str(src), "-o", str(out), "--model", "lanczos", "--dry-run", "--overwrite")
    assert r.stderr.count("would enhance") == 3 and r.returncode == 0  # --overwrite redoes all, failures too
    assert sorted((p.name, p.read_bytes()) for p in records.iterdir()) == before and not (out / "new.mp4").exists()
    # the model checks run before the dry run answers: the default model has no x1
    r = run_cli("enhance", str(src / "a.mp4"), "-o", str(tmp_path / "x1.mp4"), "--scale", "1", "--dry-run")
    assert r.returncode == 2 and "would enhance" not in r.stderr


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _frames_drawn(text: str) -> list[str]:
    return [part for part in re.split(r"[\r\n]", text) if part.strip()]


def test_progress_bars_rate_unit_clock_and_messages(monkeypatch):
    from enhancer import progress

    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    with progress.bar(total=40, desc="clip.mp4", unit="frame", start=time.perf_counter() - 10) as b:
        b.update(5)
        b.refresh()
        progress.write("warning: something")
        b.update(3)
        progress.settle(b)
    drawn = _frames_drawn(term.getvalue())
    bars = [d for d in drawn if "clip.mp4" in d and "?" not in d]
    # 5 frames in the 10 s since the caller's start: 0.50 frame/s, never "s/frame"
    assert "0.50frame/s" in bars[0].replace(" ", "") and not any("s/frame" in d for d in drawn), drawn
    assert "warning: something" in drawn  # a line of its own, not glued to a bar
    assert re.search(r"8/8\b", bars[-1]), bars[-1]  # the total is what was done
    # stderr that is not a terminal shows no bar at all
    plain = io.StringIO()
    monkeypatch.setattr(sys, "stderr", plain)
    with progress.bar(total=3, desc="x", unit="frame") as b:
        b.update(3)
    assert plain.getvalue() == ""


def test_a_file_cut_short_ends_its_bar_at_what_decoded_with_the_warning(tmp_path, monkeypatch):
    full = make_clip(tmp_path / "full.mkv", size="64x48", seconds=4, audio=False)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 4])
    info = probe(str(cut))
    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    res = enhance_video(info, str(tmp_path / "out.mkv"), ClassicalUpscaler("lanczos", 2), EncodeOptions(),
                        EnhanceOptions(), desc="cut.mkv")
    monkeypatch.undo()
    assert info.frame_count == 100 and res.frames < 100 and res.incomplete
    assert any(w.startswith("incomplete input") for w in res.warnings)
    bars = [d for d in _frames_drawn(term.getvalue()) if "cut.mkv" in d]
    assert f"{res.frames}/{res.frames}" in bars[-1], bars[-1]
    # its last rate is the result's: the same frames over the same seconds, the file's finish included
    rate = float(re.search(r"([\d.]+)frame/s", bars[-1]).group(1))
    assert rate == pytest.approx(res.fps, rel=0.05), (bars[-1], res.fps)


def test_stdin_is_labelled_stdin_and_batches_number_their_bars():
    from enhancer.batch.runner import FileResult, Job, bar_label

    assert bar_label(Job("/tmp/.enhancer-stdin-123-abc.mkv", "-", display="-"), 0, 1) == "stdin"
    assert bar_label(Job("in/a.mp4", "out/a.mp4"), 1, 3) == "[2/3] a.mp4"
    # a resumed file's rate counts the frames made in this run, as its bar does
    assert FileResult("a", "b", "done", frames=100, seconds=10.0, resumed=60).fps == 4.0


def test_compare_labels_tell_the_inputs_apart():
    from enhancer.media.compare import default_labels

    assert default_labels(["x/tree.avi", "x/tree.mkv"]) == ["tree.avi", "tree.mkv"]
    assert default_labels(["a/clip.mp4", "b/clip.mp4", "c.mp4"]) == ["a/clip.mp4", "b/clip.mp4", "c.mp4"]


def _png_folder(folder: Path, frames: int = 4) -> Path:
    folder.mkdir()
    make_clip(folder / "f_%03d.png", size="32x24", seconds=frames / 25, audio=False, vcodec="png",
              pix_fmt="rgb24")
    return folder


def test_image_sequence_rate_from_fps_option_sidecar_or_assumed_and_said(tmp_path):
    seq = _png_folder(tmp_path / "shots")
    res = _enhance(seq, tmp_path / "a.mkv")
    assert probe(str(tmp_path / "a.mkv")).fps == 25
    assert any("25 fps assumed" in w and "fps" in w for w in res.warnings), res.warnings
    (seq / "fps.txt").write_text("30000/1001\n")
    res = _enhance(seq, tmp_path / "b.mkv")
    assert probe(str(tmp_path / "b.mkv")).fps == Fraction(30000, 1001)
    assert any("29.97 fps, from fps.txt" in w for w in res.warnings), res.warnings
    assert probe(str(seq), fps=Fraction(12)).fps == 12  # --fps comes first
    # png/tiff outputs carry their rate, so they read back at it
    _enhance(tmp_path / "b.mkv", tmp_path / "frames", codec="png")
    assert (tmp_path / "frames" / "fps.txt").read_text().strip() == "30000/1001"
    r = run_cli("enhance", str(tmp_path / "b.mkv"), "-o", str(tmp_path / "o"), "--fps", "24")
    assert r.returncode == 2 and "image-sequence" in r.stderr
    r = run_cli("enhance", str(seq), "-o", str(tmp_path / "c.mkv"), "--fps", "12", "-m", "lanczos", "--json", "-q")
    assert r.returncode == 0, r.stderr
    assert probe(str(tmp_path / "c.mkv")).fps == 12 and "12 fps, from --fps" in r.stdout


def test_evaluate_an_upscaled_output_against_a_same_size_reference(tmp_path):
    from enhancer.quality.evaluate import evaluate

    ref = make_clip(tmp_path / "ref.mkv", size="96x64", vcodec="ffv1", pix_fmt="yuv444p", audio=False, seconds=0.12)
    big = make_clip(tmp_path / "big.mkv", size="96x64", vcodec="ffv1", pix_fmt="yuv444p", audio=False, seconds=0.12,
                    vf="scale=192:128:flags=lanczos")
    with pytest.raises(EnhancerError) as e:
        evaluate(str(ref), str(big), metrics=("psnr_y",))
    assert "reference_scale lanczos" in str(e.value) and "candidate_scale area" in str(e.value)
    up = evaluate(str(ref), str(big), metrics=("psnr_y", "vmaf"), reference_scale="lanczos")
    down = evaluate(str(ref), str(big), metrics=("psnr_y",), candidate_scale="area")
    assert up.frames == down.frames == 3 and len(up.per_frame["vmaf"]) == 3
    assert up.mean("psnr_y") > 25 and down.mean("psnr_y") > 25
    r = run_cli("evaluate", "--reference", str(ref), str(big), "--metrics", "psnr_y", "--candidate-scale", "area",
                "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["results"][0]["psnr_y"] == pytest.approx(down.mean("psnr_y"))


@pytest.mark.slow  # the benchmark script, a model per process
def test_speed_table_script_prints_the_table(tmp_path):
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, str(root / "benchmarks" / "speed_table.py"), "--sizes", "64x48",
                        "--frames", "2", "--methods", "lanczos,fusion-s"], capture_output=True, text=True,
                       timeout=240)
    assert r.returncode == 0, r.stderr
    assert re.search(r"\| 64x48 \| lanczos \| 2 \| [\d.]+ \| [\d,]+ MiB \| [\d,]+ MiB \|", r.stdout), r.stdout
    assert "fusion-s" in r.stdout
