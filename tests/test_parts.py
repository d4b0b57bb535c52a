"""Outputs made in parts: cut by work done, reused only for the same recipe and only where the
manifest checks out (issue 13, items 4, 11, 13)."""
from __future__ import annotations

import dataclasses
import json
import shutil
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from conftest import make_clip, packet_times, run_cli
from enhancer.pipeline import parts as made_in_parts
from enhancer.pipeline import spans as made_in_spans
from enhancer.pipeline.engine import EnhanceOptions
from enhancer.pipeline.enhance import enhance_video
from enhancer.pipeline.parts import _Parts, parts_folder
from enhancer.pipeline.spans import enhance_span, merge_spans, plan_spans, span_folder
from enhancer.restore.restorer import ClassicalUpscaler
from enhancer.media import ffmpeg as ff
from enhancer.media.encode import EncodeOptions
from enhancer.media.probe import count_frames, probe

FFV1 = EncodeOptions(codec="ffv1")


class Slow(ClassicalUpscaler):
    """lanczos that takes its time, and can be told to stop (Ctrl-C) after some calls."""

    def __init__(self, delay: float = 0.0, stop_after: int | None = None, method: str = "lanczos"):
        super().__init__(method, 2)
        self.delay, self.stop_after, self.calls = delay, stop_after, 0

    def restore(self, images):
        self.calls += 1
        if self.stop_after is not None and self.calls > self.stop_after:
            raise KeyboardInterrupt
        time.sleep(self.delay)
        return super().restore(images)


def framemd5(path: Path) -> list[str]:
    out = subprocess.run([ff.tools().ffmpeg, "-hide_banner", "-loglevel", "error", "-i", str(path), "-map", "0:v:0",
                          "-f", "framemd5", "-"], capture_output=True, text=True, check=True).stdout
    return [ln.split(",")[-1].strip() for ln in out.splitlines() if ln and not ln.startswith("#")]


def interrupted_parts(src: Path, out: Path, stop_after: int, restorer=None) -> list[dict]:
    """Enhance until Ctrl-C after ``stop_after`` restorer calls; returns the finished parts."""
    opts = EnhanceOptions(progress=False, part_seconds=0.15)
    with pytest.raises(KeyboardInterrupt):
        enhance_video(probe(str(src)), str(out), restorer or Slow(0.03, stop_after), FFV1, opts)
    return json.loads((parts_folder(out) / "manifest.json").read_text())["parts"]


def test_parts_are_cut_by_processing_time_at_frame_boundaries():
    """Item 13: a part closes once part_seconds of work went into it, whatever the media length."""
    now = [0.0]
    made = []

    class Fake:
        def __init__(self, path, *a, **k):
            self.path, self.warnings = Path(path), []

        def write(self, *a):
            pass

        def close(self):
            made.append(self.path.name)
            return self.path

    info = type("Info", (), {})()
    parts = _Parts(Path("/nonexistent"), info, EncodeOptions(), None, EnhanceOptions(part_seconds=120), "k", [],
                   clock=lambda: now[0])
    parts.save = lambda: None
    orig = made_in_parts.Encoder
    made_in_parts.Encoder = Fake
    try:
        for i in range(100):  # 3 s of processing per frame: a part every 40 frames
            now[0] += 3.0
            parts.write(None, i, Fraction(1, 25))
        parts.close_part()
    finally:
        made_in_parts.Encoder = orig
    assert [p["frames"] for p in parts.done] == [40, 40, 20] and made == ["part_00000.nut", "part_00001.nut",
                                                                             "part_00002.nut"]
    assert Fraction(parts.done[1]["first"]) == Fraction(40, 25) and Fraction(parts.done[0]["last"]) == Fraction(39, 25)


def test_a_short_file_is_one_part(tmp_path, monkeypatch):
    src = make_clip(tmp_path / "a.mp4", seconds=1)
    joined = []
    real = made_in_parts.assemble
    monkeypatch.setattr(made_in_parts, "assemble",
                        lambda parts, *a, **k: joined.append(len(parts)) or real(parts, *a, **k))
    res = enhance_video(probe(str(src)), str(tmp_path / "o.mp4"), ClassicalUpscaler("lanczos", 2), EncodeOptions(),
                        EnhanceOptions(progress=False))
    assert joined == [1] and res.frames == 25 and not parts_folder(tmp_path / "o.mp4").exists()
    assert probe(str(tmp_path / "o.mp4")).audio


@pytest.mark.slow
def test_a_40_second_file_killed_at_60_percent_resumes(tmp_path):
    """Item 13: a file shorter than two 60 s parts could not resume at all."""
    src = make_clip(tmp_path / "forty.mp4", size="160x120", seconds=40, rate="25")
    args = ["--codec", "ffv1", "--part-seconds", "0.5", "--scale", "4", "--model", "lanczos", "--json", "-q"]
    straight = tmp_path / "straight.mkv"
    r = run_cli("enhance", str(src), "-o", str(straight), *args)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out" / "forty.mkv"
    manifest = parts_folder(out) / "manifest.json"
    proc = subprocess.Popen([sys.executable, "-m", "enhancer", "enhance", str(src), "-o", str(out), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 200
    done = 0
    while time.time() < deadline and proc.poll() is None:
        try:
            done = sum(p["frames"] for p in json.loads(manifest.read_text())["parts"])
        except (OSError, ValueError):
            pass
        if done >= 600:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 130 and not out.exists(), "the run finished before it could be interrupted"
    done = sum(p["frames"] for p in json.loads(manifest.read_text())["parts"])
    assert 600 <= done < 1000
    r = run_cli("enhance", str(src), "-o", str(out), *args)
    row = json.loads(r.stdout)
    assert row["status"] == "done" and row["frames"] == 1000, r.stderr
    assert any(f"resumed: {done} frames" in w for w in row["warnings"])
    assert framemd5(out) == framemd5(straight)


def test_parts_made_with_another_model_are_not_reused(tmp_path):
    """Item 4: a resumed file's parts could come from two models."""
    src = make_clip(tmp_path / "a.mp4", seconds=2, audio=False)
    out = tmp_path / "out" / "a.mkv"
    out.parent.mkdir()
    assert len(interrupted_parts(src, out, 30)) >= 1
    other = Slow(method="bicubic")
    res = enhance_video(probe(str(src)), str(out), other, FFV1, EnhanceOptions(progress=False))
    assert res.frames == 50 and not any("resumed" in w for w in res.warnings)
    ref = tmp_path / "ref.mkv"
    enhance_video(probe(str(src)), str(ref), Slow(method="bicubic"), FFV1, EnhanceOptions(progress=False))
    assert framemd5(out) == framemd5(ref)
    # the same model resumes
    out2 = tmp_path / "out" / "b.mkv"
    interrupted_parts(src, out2, 30)
    res = enhance_video(probe(str(src)), str(out2), Slow(), FFV1, EnhanceOptions(progress=False))
    assert any("resumed" in w for w in res.warnings)


def _corrupt(manifest: dict, how: str, folder: Path) -> str | bytes:
    parts = manifest["parts"]
    if how == "garbage":
        return b"\x00{not json"
    if how == "deep":
        return "[" * 50_000 + "]" * 50_000
    if how == "absolute":
        parts[1] = dict(parts[1], file=str((folder / parts[1]["file"]).resolve()))
    elif how == "duplicate":
        parts.insert(2, dict(parts[1]))
    elif how == "repeated_file":
        parts[2] = dict(parts[2], file=parts[1]["file"])
    elif how == "wrong_count":
        parts[1] = dict(parts[1], frames=parts[1]["frames"] + 5)
    elif how == "traversal":
        parts[0] = dict(parts[0], file="../../a.mp4")
    elif how == "bad_types":
        parts[1] = dict(parts[1], frames="many", first=None)
    elif how == "not_a_list":
        manifest["parts"] = {"0": parts[0]}
    elif how == "missing_file":
        (folder / parts[1]["file"]).unlink()
    return json.dumps(manifest)


@pytest.mark.parametrize("how", ["garbage", "absolute", "duplicate", *[  # two CLI runs each: the rest in the slow run
    pytest.param(how, marks=pytest.mark.slow) for how in ("deep", "repeated_file", "wrong_count", "traversal",
                                                          "bad_types", "not_a_list", "missing_file")]])
def test_a_manifest_that_does_not_check_out_is_discarded(tmp_path, how):
    """Item 11: a corrupted manifest gave an internal error on every rerun, and an absolute or
    duplicate part path gave an output reported done with frames lost or repeated."""
    src = make_clip(tmp_path / "a.mp4", seconds=2.4, audio=False)  # 60 frames
    ref = tmp_path / "ref.mkv"
    enhance_video(probe(str(src)), str(ref), ClassicalUpscaler("lanczos", 2), FFV1, EnhanceOptions(progress=False))
    out = tmp_path / "out" / "a.mkv"
    out.parent.mkdir()
    folder = parts_folder(out)
    parts = interrupted_parts(src, out, 45)
    assert len(parts) >= 3, parts
    manifest = json.loads((folder / "manifest.json").read_text())
    bad = _corrupt(manifest, how, folder)
    (folder / "manifest.json").write_bytes(bad if isinstance(bad, bytes) else bad.encode())
    r = run_cli("enhance", str(src), "-o", str(out), "--codec", "ffv1", "--model", "lanczos", "--json", "-q")
    row = json.loads(r.stdout)
    assert r.returncode == 0 and row["status"] == "done" and "Traceback" not in r.stderr, r.stderr
    assert row["frames"] == 60 == count_frames(str(out))
    assert framemd5(out) == framemd5(ref)
    assert not folder.exists() and src.exists()
    # and it never needs the hidden folder removed by hand: a second run is plain
    r = run_cli("enhance", str(src), "-o", str(out), "--codec", "ffv1", "--model", "lanczos", "--json", "-q")
    assert json.loads(r.stdout)["status"] == "skipped"


def test_a_join_that_lost_frames_is_never_done(tmp_path, monkeypatch):
    src = make_clip(tmp_path / "a.mp4", seconds=1, audio=False)
    real = made_in_parts.assemble
    monkeypatch.setattr(made_in_parts, "assemble", lambda parts, starts, *a, **k: real(parts + parts, starts + [
        s + 100 for s in starts], *a, **k))
    from enhancer.errors import OutputError

    with pytest.raises(OutputError, match="joined output holds 50 frames, not the 25"):
        enhance_video(probe(str(src)), str(tmp_path / "o.mkv"), ClassicalUpscaler("lanczos", 2), FFV1,
                      EnhanceOptions(progress=False))
    assert not (tmp_path / "o.mkv").exists()
    shutil.rmtree(tmp_path / "a.mp4", ignore_errors=True)


class Temporal(ClassicalUpscaler):
    """A restorer whose every frame depends on two neighbours each side (as the model's do), so a
    part made without the real frames around it would differ; can stop (Ctrl-C) after some calls."""

    margin = 2
    chunk = 4

    def __init__(self, stop_after: int | None = None):
        super().__init__("lanczos", 2)
        self.stop_after, self.calls = stop_after, 0

    def restore(self, images):
        self.calls += 1
        if self.stop_after is not None and self.calls > self.stop_after:
            raise KeyboardInterrupt
        a = images.astype(np.uint16)
        core = (a[:-4] + a[1:-3] + 2 * a[2:-2] + a[3:-1] + a[4:]) // 6
        return super().restore(core.astype(np.uint8))


def _spans(info, out, restorer_for, opts, key, spans, order):
    for k in order:
        enhance_span(info, str(out), restorer_for(k), FFV1, opts, key, k, *spans[k])


def _join_without_span_1(info, out, restorer, opts, spans, straight, merged: int, total: int) -> None:
    """Spans 0 and 2 made, 1 not: the merge hands over span 0 alone, and the last task makes the
    rest itself, frame for frame as the straight run did."""
    _spans(info, out, lambda k: restorer(), opts, "k", spans, (0, 2))
    assert merge_spans(out, "k", spans) == merged
    res = enhance_video(info, str(out), restorer(), FFV1, opts, recipe_key="k")
    assert res.frames == total and res.resumed == merged
    assert framemd5(out) == framemd5(straight)


def test_spans_made_apart_and_out_of_order_join_into_the_straight_output(tmp_path):
    """The cluster's per-part tasks (issue 16): spans of a file made separately, one of them
    interrupted and continued, then merged (twice: a merge cut short is done again) and joined,
    give exactly the frames of one straight run."""
    src = make_clip(tmp_path / "src.mp4", size="96x64", seconds=3, rate="25", vf="noise=alls=30:allf=t")
    info = probe(str(src))
    opts = EnhanceOptions(progress=False, part_seconds=0.05)
    straight = tmp_path / "straight.mkv"
    enhance_video(info, str(straight), Temporal(), FFV1, opts)
    out = tmp_path / "out" / "spans.mkv"
    out.parent.mkdir()
    spans = plan_spans(info, 1.0)
    assert len(spans) == 3 and spans[0][0] == Fraction(0) and spans[-1][1] is None
    key = "recipe-key"
    enhance_span(info, str(out), Temporal(), FFV1, opts, key, 2, *spans[2])
    with pytest.raises(KeyboardInterrupt):  # span 1 stopped midway: some of its parts are finished
        enhance_span(info, str(out), Temporal(stop_after=4), FFV1, opts, key, 1, *spans[1])
    begun = json.loads((span_folder(out, 1) / "manifest.json").read_text())["parts"]
    assert begun and sum(p["frames"] for p in begun) < 25
    again = enhance_span(info, str(out), Temporal(), FFV1, opts, key, 1, *spans[1])
    assert again["parts"][:len(begun)] == begun  # went on after them
    enhance_span(info, str(out), Temporal(), FFV1, opts, key, 0, *spans[0])
    assert [enhance_span(info, str(out), Temporal(stop_after=0), FFV1, opts, key, k, *spans[k])["frames"]
            for k in range(3)] == [25, 25, 25]  # finished spans are not made again
    assert merge_spans(out, "another-recipe", spans) == 0  # spans made otherwise are never joined
    assert merge_spans(out, key, spans) == 75
    res = enhance_video(info, str(out), Temporal(stop_after=0), FFV1, opts, recipe_key=key)  # only the join left
    assert res.frames == 75 and res.resumed == 75 and not res.incomplete
    assert framemd5(out) == framemd5(straight)
    assert not parts_folder(out).exists()


def test_a_merge_cut_short_or_a_missing_span_still_gives_the_straight_output(tmp_path, monkeypatch):
    src = make_clip(tmp_path / "src.mp4", size="96x64", seconds=3, rate="25", vf="noise=alls=30:allf=t")
    info = probe(str(src))
    opts = EnhanceOptions(progress=False, part_seconds=0.05)
    straight = tmp_path / "straight.mkv"
    enhance_video(info, str(straight), Temporal(), FFV1, opts)
    spans = plan_spans(info, 1.0)
    out = tmp_path / "a.mkv"
    _spans(info, out, lambda k: Temporal(), opts, "k", spans, (0, 1, 2))
    real, calls = made_in_spans._link_or_copy, []

    def dies(src, dst):  # the worker is killed after linking two parts
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(dst)
        real(src, dst)

    monkeypatch.setattr(made_in_spans, "_link_or_copy", dies)
    with pytest.raises(KeyboardInterrupt):
        merge_spans(out, "k", spans)
    monkeypatch.setattr(made_in_spans, "_link_or_copy", real)
    assert merge_spans(out, "k", spans) == 75  # the retry
    assert enhance_video(info, str(out), Temporal(stop_after=0), FFV1, opts, recipe_key="k").frames == 75
    assert framemd5(out) == framemd5(straight)
    # span 1 never made (or made with other settings): the last task makes it and what follows itself
    _join_without_span_1(info, tmp_path / "b.mkv", Temporal, opts, spans, straight, 25, 75)


@pytest.mark.parametrize("margin", [pytest.param(0, marks=pytest.mark.slow), 2])  # 600 frames each; 2 is the harder
def test_spans_of_a_file_whose_seeks_land_late(tmp_path, margin):
    """MPEG-TS with key frames 10 s apart: a seek lands on the next key frame, after the span's
    start. The span reads again from further back; no frame is lost or doubled."""
    src = make_clip(tmp_path / "src.ts", size="96x64", seconds=24, rate="25", vf="noise=alls=20:allf=t",
                    extra_out=["-g", "1000", "-force_key_frames", "0,10,20"], audio=False)
    info = probe(str(src))
    opts = EnhanceOptions(progress=False, part_seconds=60)
    restorer = (lambda: Temporal()) if margin else (lambda: ClassicalUpscaler("lanczos", 2))
    straight = tmp_path / "straight.mkv"
    enhance_video(info, str(straight), restorer(), FFV1, opts)
    out = tmp_path / "spans.mkv"
    spans = plan_spans(info, 8.0)
    _spans(info, out, lambda k: restorer(), opts, "k", spans, (2, 1, 0))
    assert merge_spans(out, "k", spans) == 600
    assert enhance_video(info, str(out), restorer(), FFV1, opts, recipe_key="k").frames == 600
    assert framemd5(out) == framemd5(straight)
    # span 1 missing: the last task goes on after span 0 itself; its resume seek (8 s) lands on
    # the key frame at 10 s, so it reads again from further back, keeping span 0's work
    _join_without_span_1(info, tmp_path / "partial.mkv", restorer, opts, spans, straight, 200, 600)


def test_a_span_past_the_end_of_the_picture_is_empty(tmp_path):
    """A container that outlasts its picture (audio running on): the spans past the last frame
    hold nothing, and the file is still made."""
    src = make_clip(tmp_path / "src.mkv", size="96x64", seconds=3, rate="25", audio=False)
    longer = tmp_path / "longer.mkv"
    subprocess.run([ff.tools().ffmpeg, "-loglevel", "error", "-y", "-i", str(src), "-f", "lavfi", "-i",
                    "sine=duration=9", "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "libopus",
                    str(longer)], check=True)
    # as a container without a duration per stream announces it: the longest stream's
    info = dataclasses.replace(probe(str(longer)), duration=9.0)
    opts = EnhanceOptions(progress=False)
    spans = plan_spans(info, 2.0)
    assert len(spans) == 5
    out = tmp_path / "out.mkv"
    sizes = [enhance_span(info, str(out), Temporal(), FFV1, opts, "k", k, *spans[k])["frames"]
             for k in range(len(spans))]
    assert sum(sizes) == 75 and sizes[-1] == 0
    assert merge_spans(out, "k", spans) == 75
    res = enhance_video(info, str(out), Temporal(stop_after=0), FFV1, opts, recipe_key="k")
    assert res.frames == 75



def test_a_part_aborted_before_it_is_closed_is_never_reported_finished(tmp_path):
    """Ctrl-C stops the encoder from the main thread while the writer thread may be closing the
    part: the close that comes after the abort raises, so no manifest lists a part that is not
    there (it did, under load: the resumed run then made it again)."""
    from enhancer.errors import OutputError
    from enhancer.media.colour import source_colour
    from enhancer.media.muxer import Encoder
    from enhancer.media.reader import FrameReader

    src = make_clip(tmp_path / "src.mp4", size="96x64", seconds=0.3, audio=False)
    info = probe(str(src))
    with FrameReader(info) as reader:
        frames = list(reader)
    part = tmp_path / "part_00000.nut"
    enc = Encoder(str(part), info, FFV1, source_colour(info))
    for f in frames:
        enc.write(f.image, f.pts, f.time_base)
    enc.abort()
    with pytest.raises(OutputError, match="aborted"):
        enc.close()
    assert not part.exists() and list(tmp_path.iterdir()) == [src]
    done = Encoder(str(part), info, FFV1, source_colour(info))  # a finished part outlives a late abort
    for f in frames:
        done.write(f.image, f.pts, f.time_base)
    assert done.close() == part and count_frames(str(part)) == len(frames)
    done.abort()
    assert part.exists() and done.close() == part


def test_a_run_that_only_joins_still_says_what_the_picture_lost(tmp_path, monkeypatch):
    """Killed after its last part and before the join: the next run only joins, and still gives
    the encoder's warnings (here: h264 cannot hold the source's alpha channel), kept with the parts."""
    src = make_clip(tmp_path / "matte.mov", size="64x48", seconds=0.4, vcodec="prores_ks", pix_fmt="yuva444p10le",
                    vf="format=rgba,geq=r='r(X,Y)':g='g(X,Y)':b='b(X,Y)':a='if(lt(X,32),255,0)'",
                    extra_out=["-profile:v", "4444"], audio=False)
    out = tmp_path / "o.mp4"

    def killed(*a, **k):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(made_in_parts, "assemble", killed)
        with pytest.raises(KeyboardInterrupt):
            enhance_video(probe(str(src)), str(out), ClassicalUpscaler("lanczos", 2), EncodeOptions(),
                          EnhanceOptions(progress=False))
    kept = json.loads((parts_folder(out) / "manifest.json").read_text())["parts"]
    assert sum(p["frames"] for p in kept) == 10 and any("alpha" in w for p in kept for w in p["warnings"])
    res = enhance_video(probe(str(src)), str(out), ClassicalUpscaler("lanczos", 2), EncodeOptions(),
                        EnhanceOptions(progress=False))
    assert res.frames == 10 and res.resumed == 10 and count_frames(str(out)) == 10
    assert [w for w in res.warnings if "cannot hold the source's alpha channel" in w], res.warnings


@pytest.mark.parametrize("stop_after", [30, 110])
def test_a_joined_file_whose_clock_restarts_is_made_and_resumed_whole(tmp_path, stop_after):
    """Two MPEG-TS recordings joined end to end (the second's clock starts again, at another
    size). Made in many parts, its times go forward across them (they all collapsed onto one time
    after the join); interrupted before or after the join, the resume finds its place by counting
    frames (a seek by time drops the whole second recording, or finds nothing), and the output is
    the one-part run's, frame for frame and time for time."""
    a = make_clip(tmp_path / "a.ts", size="64x48", seconds=3, audio=False)
    b = make_clip(tmp_path / "b.ts", size="96x54", seconds=3, audio=False, src="smptebars")
    src = tmp_path / "joined.ts"
    src.write_bytes(a.read_bytes() + b.read_bytes())
    straight = tmp_path / "straight.mkv"
    enhance_video(probe(str(src)), str(straight), ClassicalUpscaler("lanczos", 2), FFV1, EnhanceOptions(progress=False))
    many = tmp_path / "many.mkv"
    res = enhance_video(probe(str(src)), str(many), Slow(0.03), FFV1, EnhanceOptions(progress=False, part_seconds=0.15))
    times = packet_times(many)
    assert res.frames == 150 and times == packet_times(straight) and all(b > a for a, b in zip(times, times[1:]))
    assert [w for w in res.warnings if w.startswith("75 frame(s) came with a timestamp before")], res.warnings
    out = tmp_path / "out.mkv"
    parts = interrupted_parts(src, out, stop_after=stop_after)
    assert (sum(p["frames"] for p in parts) > 80) == (stop_after > 100)  # the join is at frame 75
    res = enhance_video(probe(str(src)), str(out), ClassicalUpscaler("lanczos", 2), FFV1, EnhanceOptions(progress=False))
    assert res.frames == 150 and framemd5(out) == framemd5(straight) and packet_times(out) == packet_times(straight)
