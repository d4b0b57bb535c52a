"""What a careless user types into degrade, compare, benchmark and evaluate (found by a hostile
review): an output that is an input, clips that share a name, a work folder under a file, a
negative seed, one frame identical to the reference. Nothing is overwritten, every refusal is one
line with exit 2, and no mean is infinite."""
from __future__ import annotations

import json
import os

import pytest

from conftest import make_clip, run_cli
from enhancer.quality.evaluate import PSNR_CEILING


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("c") / "clip.mp4", seconds=0.4, audio=False)


def _refused(r, *words):
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), (r.returncode, r.stderr)
    for w in words:
        assert w in lines[0], lines[0]


@pytest.mark.parametrize("how", ["same", "dot", "link"])
def test_degrade_and_compare_never_write_over_an_input(clip, tmp_path, how):
    src = tmp_path / "in.mp4"
    src.write_bytes(clip.read_bytes())
    before = src.read_bytes()
    name = {"same": str(src), "dot": str(tmp_path / "." / "in.mp4"), "link": str(tmp_path / "link.mp4")}[how]
    if how == "link":
        os.symlink(src, name)
    _refused(run_cli("degrade", name if how != "link" else str(src), "-o", name if how == "link" else str(src),
                     "-q"), "would replace an input")
    _refused(run_cli("compare", str(src), str(clip), "-o", name, "-q"), "would replace an input")
    assert src.read_bytes() == before


def test_compare_arguments_are_usage_errors(clip, tmp_path):
    _refused(run_cli("compare", str(clip), "-o", str(tmp_path / "x.mp4")), "at least two inputs")
    _refused(run_cli("compare", str(clip), str(clip), "-o", str(tmp_path / "x.png"), "--frame", "-3"), "--frame -3")
    _refused(run_cli("compare", str(clip), str(clip), "-o", str(tmp_path / "x.mp4"), "--labels", "a"), "1 labels")
    assert not list(tmp_path.iterdir())


@pytest.mark.slow  # seven CLI runs; the other commands' refusals stay quick
def test_benchmark_refuses_before_any_work(clip, tmp_path):
    other = tmp_path / "b" / "clip.mp4"
    other.parent.mkdir()
    other.write_bytes(clip.read_bytes())
    work = tmp_path / "work"
    _refused(run_cli("benchmark", str(clip), str(other), "--models", "lanczos", "-o", str(work), "-q"),
             "would both be scored as 'clip'")
    (tmp_path / "file.txt").write_text("x")
    _refused(run_cli("benchmark", str(clip), "--models", "lanczos", "-o", str(tmp_path / "file.txt"), "-q"), "is a file")
    _refused(run_cli("benchmark", str(clip), "--models", "lanczos", "-o", str(tmp_path / "file.txt" / "w"), "-q"),
             "cannot be made")
    _refused(run_cli("benchmark", str(clip), "--models", "no-such-model", "-o", str(work), "-q"), "unknown model")
    _refused(run_cli("benchmark", str(clip), "--models", "general-x4", "-o", str(work), "-q"),
             "works at x4, not x2", "--scale 4")  # benchmark's default scale is 2: "omit --scale" was no help
    _refused(run_cli("benchmark", str(clip), "--models", "lanczos", "-o", str(work), "--seed", "-1", "-q"),
             "seed -1")
    _refused(run_cli("degrade", str(clip), "-o", str(tmp_path / "d.mkv"), "--seed", "-1", "-q"), "seed -1")
    assert not work.exists() and not (tmp_path / "d.mkv").exists()


def test_one_identical_frame_does_not_make_the_mean_infinite(tmp_path):
    ref = make_clip(tmp_path / "ref.mkv", vcodec="ffv1", pix_fmt="yuv444p", audio=False, seconds=0.4)
    cand = make_clip(tmp_path / "cand.mkv", vcodec="ffv1", pix_fmt="yuv444p", audio=False, seconds=0.4,
                     vf="noise=alls=30:allf=t:enable='gte(n\\,1)'")
    r = run_cli("evaluate", "-r", str(ref), str(cand), "--metrics", "psnr_y,psnr_rgb", "--json", "-q")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))["results"][0]
    frames = res["per_frame"]["psnr_y"]
    assert frames[0] == PSNR_CEILING and all(f < 40 for f in frames[1:])
    assert res["psnr_y"] == pytest.approx(sum(frames) / len(frames)) and res["psnr_y"] < PSNR_CEILING


def test_evaluate_checks_its_report_paths_before_scoring(clip, tmp_path):
    (tmp_path / "file.txt").write_text("x")
    for html, words in ((tmp_path / "file.txt", ("is a file",)), (tmp_path / "file.txt" / "rep", ("cannot be written",))):
        _refused(run_cli("evaluate", "-r", str(clip), str(clip), "--html", str(html), "-q"), *words)
    _refused(run_cli("evaluate", "-r", str(clip), str(clip), "--html", str(tmp_path / "rep"), "--input",
                     str(tmp_path / "gone.mp4"), "-q"), "gone.mp4", "no such file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_evaluate_never_stretches_another_shape(tmp_path):
    wide = make_clip(tmp_path / "wide.mp4", size="160x90", seconds=0.2, audio=False)
    tall = make_clip(tmp_path / "tall.mp4", size="90x160", seconds=0.2, audio=False)
    double = make_clip(tmp_path / "double.mp4", size="320x180", seconds=0.2, audio=False)
    for scale in ([], ["--reference-scale", "lanczos"], ["--candidate-scale", "area"]):
        r = run_cli("evaluate", "-r", str(wide), str(tall), "--metrics", "psnr_y", "-q", *scale)
        assert r.returncode == 1 and "not the same shape" in r.stderr and "90x160" in r.stderr, r.stderr
    r = run_cli("evaluate", "-r", str(wide), str(double), "--metrics", "psnr_y", "-q", "--reference-scale", "lanczos")
    assert r.returncode == 0, r.stderr  # a scale apart: what the option is for


def test_an_unknown_extension_is_refused_before_any_work(clip, tmp_path):
    r = run_cli("degrade", str(clip), "-o", str(tmp_path / "d.xyz"), "-q")
    _refused(r, "unknown output extension .xyz")
    assert "--codec" not in r.stderr  # degrade has no --codec: the hint names only what it takes
    r = run_cli("compare", str(clip), str(clip), "-o", str(tmp_path / "c.xyz"), "-q")
    _refused(r, "unknown output extension .xyz", ".png")
    assert not list(tmp_path.iterdir())


def test_the_python_api_refuses_wrong_types_before_any_work(clip, tmp_path):
    import enhancer

    out = tmp_path / "o.mp4"
    for kw, words in ((dict(duration="abc"), "duration must be a number"), (dict(start=float("nan")), "start must"),
                      (dict(crf=-5), "crf -5 is outside h264's 0..51"), (dict(crf=40, codec="mpeg2"), "1..31")):
        with pytest.raises(enhancer.ArgumentError, match=words):
            enhancer.enhance(clip, out, model="lanczos", **kw)
    with pytest.raises(enhancer.ArgumentError, match="a path or a list of paths"):
        enhancer.enhance(None, out, model="lanczos")
    assert not list(tmp_path.iterdir())  # nothing made, nothing recorded as failed
    _refused(run_cli("enhance", str(clip), "-o", str(out), "--crf", "70", "-m", "lanczos"), "crf 70")


def test_evaluate_output_options_that_cannot_be_honoured(clip):
    r = run_cli("evaluate", "-r", str(clip), str(clip), "--metrics", "", "-q")
    assert r.returncode == 2 and "name at least one metric" in r.stderr
    r = run_cli("evaluate", "-r", str(clip), str(clip), "--json", "--csv", "-q")
    assert r.returncode == 2 and "choose one" in r.stderr


def test_evaluate_refuses_another_frame_rate(tmp_path):
    """20 frames at 50 fps against 20 at 25 fps: the same count, another timeline."""
    ref = make_clip(tmp_path / "ref.mp4", seconds=0.8, audio=False)
    fast = make_clip(tmp_path / "fast.mp4", seconds=0.4, rate="50", audio=False)
    r = run_cli("evaluate", "-r", str(ref), str(fast), "--metrics", "psnr_y", "-q")
    assert r.returncode == 1 and "50.000 fps, the reference at 25.000" in r.stderr, r.stderr


def test_a_start_past_the_end_says_so(clip, tmp_path):
    for args in (("enhance", str(clip), "-o", str(tmp_path / "e.mp4"), "-m", "lanczos"),
                 ("degrade", str(clip), "-o", str(tmp_path / "d.mkv"))):
        r = run_cli(*args, "--start", "100", "-q")
        assert r.returncode == 1 and "--start 100 s is past the end of the video (0.40 s long)" in r.stderr, r.stderr
        assert "damaged" not in r.stderr


def test_temporal_metrics_of_one_frame_say_why_they_are_missing(tmp_path):
    one = make_clip(tmp_path / "one.mp4", seconds=0.04, audio=False)
    r = run_cli("evaluate", "-r", str(one), str(one), "--metrics", "psnr_y,tof", "-q")
    assert r.returncode == 0 and "n/a" in r.stdout and "one-frame clip" in r.stderr, r.stdout + r.stderr


# a CLI run each: bundled and Debian's (5.1, with ffprobe) quick; the static 7.0.2 (no ffprobe, as bundled) slow
@pytest.mark.parametrize("ffmpeg_build", ["bundled", "debian", pytest.param("static-7.0.2", marks=pytest.mark.slow)],
                         indirect=True)
def test_a_thumbnail_stored_first_never_displaces_the_film(tmp_path, ffmpeg_build):
    """A 32x32 one-frame preview as stream 0, the 96x64 film as stream 1: the film is enhanced,
    through ffprobe's JSON and through the banner alike (with each ffmpeg build)."""
    import subprocess

    from conftest import MAKER
    from enhancer.media.probe import probe

    env = {"ENHANCER_FFMPEG": ffmpeg_build.ffmpeg}
    if ffmpeg_build.ffprobe:
        env["ENHANCER_FFPROBE"] = ffmpeg_build.ffprobe
    film = make_clip(tmp_path / "film.mp4", seconds=0.8)
    src = tmp_path / "thumbfirst.mkv"
    subprocess.run([MAKER, "-loglevel", "error", "-y", "-f", "lavfi", "-i", "color=blue:s=32x32:r=25:d=0.04",
                    "-i", str(film), "-map", "0:v", "-map", "1:v", "-map", "1:a", "-c:v", "libx264", "-c:a", "copy",
                    str(src)], check=True)
    out = tmp_path / "o.mkv"
    r = run_cli("enhance", str(src), "-o", str(out), "-m", "lanczos", "--json", "-q", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["frames"] == 20
    assert (probe(str(out)).width, probe(str(out)).height) == (192, 128)


@pytest.mark.parametrize("codec", ["flac", "libopus"])
# a CLI run each: bundled and Debian's (5.1, with ffprobe) quick; the static 7.0.2 (no ffprobe, as bundled) slow
@pytest.mark.parametrize("ffmpeg_build", ["bundled", "debian", pytest.param("static-7.0.2", marks=pytest.mark.slow)],
                         indirect=True)
def test_flac_and_opus_go_into_mp4_with_every_build(tmp_path, ffmpeg_build, codec):
    """ffmpeg 5.1 writes them into MP4 only as an experimental feature: the join asks for it
    (the whole encode was lost at the join before, with an error naming a temporary file)."""
    import subprocess

    from conftest import MAKER

    env = {"ENHANCER_FFMPEG": ffmpeg_build.ffmpeg}
    if ffmpeg_build.ffprobe:
        env["ENHANCER_FFPROBE"] = ffmpeg_build.ffprobe
    src = tmp_path / "in.mkv"
    subprocess.run([MAKER, "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=96x64:r=25:d=0.6", "-f",
                    "lavfi", "-i", "sine=d=0.6:sample_rate=48000", "-c:v", "libx264", "-c:a", codec, str(src)],
                   check=True)
    out = tmp_path / "o.mp4"
    r = run_cli("enhance", str(src), "-o", str(out), "-m", "lanczos", "-q", env=env)
    assert r.returncode == 0, r.stderr
    streams = subprocess.run([MAKER, "-hide_banner", "-i", str(out)], capture_output=True, text=True).stderr
    assert f"Audio: {codec.replace('lib', '')}" in streams, streams


# a CLI run each: bundled and Debian's (5.1, with ffprobe) quick; the static 7.0.2 (no ffprobe, as bundled) slow
@pytest.mark.parametrize("ffmpeg_build", ["bundled", "debian", pytest.param("static-7.0.2", marks=pytest.mark.slow)],
                         indirect=True)
def test_a_stream_copy_cut_is_not_reported_incomplete(tmp_path, ffmpeg_build):
    """`ffmpeg -ss 0.3 -i in.mp4 -c copy cut.mp4` keeps the frames before 0.3 s behind an edit
    list: 20 listed, 12 shown over 0.5 s. Nothing is missing; --strict must not fail it."""
    import subprocess

    from conftest import MAKER

    env = {"ENHANCER_FFMPEG": ffmpeg_build.ffmpeg}
    if ffmpeg_build.ffprobe:
        env["ENHANCER_FFPROBE"] = ffmpeg_build.ffprobe
    full = make_clip(tmp_path / "full.mp4", seconds=0.8)
    cut = tmp_path / "cut.mp4"
    subprocess.run([MAKER, "-loglevel", "error", "-y", "-ss", "0.3", "-i", str(full), "-c", "copy", str(cut)],
                   check=True)
    r = run_cli("enhance", str(cut), "-o", str(tmp_path / "o.mp4"), "-m", "lanczos", "--strict", "--json", "-q",
                env=env)
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)
    assert row["incomplete"] is False and row["warnings"] == [] and row["frames"] >= 12, row


def test_transport_streams_joined_end_to_end_play_on(tmp_path):
    """`cat a.ts b.ts` where b's clock starts before a's: it was an internal error; every frame
    comes through, in order, the second file's following on, with a warning."""
    import subprocess

    from conftest import MAKER

    parts = []
    for name, offset in (("a", 5), ("b", 1)):
        part = tmp_path / f"{name}.ts"
        subprocess.run([MAKER, "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=96x64:r=25:d=0.6",
                        "-c:v", "libx264", "-output_ts_offset", str(offset), str(part)], check=True)
        parts.append(part.read_bytes())
    src = tmp_path / "joined.ts"
    src.write_bytes(b"".join(parts))
    r = run_cli("enhance", str(src), "-o", str(tmp_path / "o.mkv"), "-m", "lanczos", "--json", "-q")
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)
    assert row["frames"] == 30 and any("before the previous frame's" in w for w in row["warnings"]), row
