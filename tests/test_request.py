"""One typed request: every check in EnhanceRequest.check, errors that name the field, the command
line that shows the field's flag, and the one ModelChoice that the batch, watch and Ray load."""
from __future__ import annotations

from fractions import Fraction

import pytest

from enhancer.errors import ArgumentError, RequestError, option, spell_options
from enhancer.pipeline.request import EnhanceRequest, ModelChoice

from conftest import make_clip, run_cli


@pytest.fixture
def python_spelling():
    """Messages as the Python API reads them (conftest resets the spelling after each test)."""
    spell_options({})


def test_flat_names_fill_the_groups():
    r = EnhanceRequest.of("a.mp4", "out", tile=256, overwrite=True, codec="ffv1", start="1:30", ray_split=0,
                          executor="ray", fail_fast=True, fps="30000/1001").check()
    assert r.inputs == ("a.mp4",) and r.model.tile == 256 and r.batch.overwrite and r.batch.fail_fast
    assert r.encode.codec == "ffv1" and r.processing.start == 90.0 and r.executor.split == 0
    assert r.processing.fps == Fraction(30000, 1001)
    assert r.processing_options().start == 90.0 and r.encode.options().codec == "ffv1"
    with pytest.raises(ArgumentError, match="sclae"):
        EnhanceRequest.of("a.mp4", "out", sclae=2)  # a misspelt name is refused, not ignored


@pytest.mark.parametrize("flat, field", [
    (dict(tile="big"), "tile"), (dict(tile=-8), "tile"), (dict(temporal="sometimes"), "temporal"),
    (dict(scale=3), "scale"), (dict(task="film"), "task"), (dict(precision="fp8"), "precision"),
    (dict(chunk=0), "chunk"), (dict(codec="divx"), "codec"), (dict(container="avi"), "container"),
    (dict(audio="mp3"), "audio"), (dict(crf=99), "crf"), (dict(encoder_args="-i other.mp4"), "encoder_args"),
    (dict(encoder_args='-tune "film'), "encoder_args"), (dict(size="wide"), "size"), (dict(size=(1, 100)), "size"),
    (dict(start="ten"), "start"), (dict(duration=0), "duration"), (dict(deinterlace="maybe"), "deinterlace"),
    (dict(fps="fast"), "fps"), (dict(preview=-1.0), "preview"), (dict(part_seconds=0), "part_seconds"),
    (dict(executor="slurm"), "executor"), (dict(ray_address="h:1"), "ray_address"), (dict(ray_split=60), "ray_split"),
    (dict(progress="loud"), "progress"), (dict(splice=True), "splice"),
    (dict(splice=True, start=1, preview=2.0), "preview"), (dict(splice=True, start=1, size="640x360"), "size"),
    (dict(splice=True, start=1, deinterlace="on"), "deinterlace"), (dict(splice=True, start=1, codec="png"), "codec"),
])
def test_each_bad_value_names_its_field(flat, field, python_spelling):
    with pytest.raises(RequestError) as err:
        EnhanceRequest.of("a.mp4", "out.mp4", **flat).check()
    assert err.value.field == field and "--" not in str(err.value), str(err.value)


def test_inputs_and_output_are_checked_too():
    for inputs, output, field in ((["a.mp4", "-"], "o.mp4", "inputs"), (["a\0.mp4"], "o.mp4", "inputs"),
                                  (["a.mp4"], 5, "output"), ([], "o", "inputs")):
        with pytest.raises(RequestError) as err:
            EnhanceRequest.of(inputs, output).check()
        assert err.value.field == field
    with pytest.raises(RequestError) as err:
        EnhanceRequest.of("-", "out.mp4", executor="ray").check()
    assert err.value.field == "executor"


def test_a_splice_at_scale_1_keeps_the_source_codec(python_spelling):
    r = EnhanceRequest.of("a.mov", "b.mov", splice=True, start=2, codec="h264").check()
    r.check_splice(2)  # upscaled: any codec
    with pytest.raises(RequestError, match="splice=True with a model of scale 1") as err:
        r.check_splice(1)
    assert err.value.field == "codec" and "codec='h264'" in str(err.value)


def test_messages_spell_options_as_the_caller_does(python_spelling):
    assert option("pix_fmt") == "pix_fmt" and option("overwrite", True) == "overwrite=True"
    assert option("deinterlace", "on") == "deinterlace='on'"
    from enhancer.cli.common import FLAGS

    spell_options(FLAGS)
    assert option("pix_fmt") == "--pix-fmt" and option("overwrite", True) == "--overwrite"
    assert option("deinterlace", "on") == "--deinterlace on"


def test_the_command_line_shows_the_field_as_its_flag(tmp_path):
    clip = make_clip(tmp_path / "a.mp4", seconds=0.2, audio=False)
    for args, flag in ((["--tile", "big"], "--tile"), (["--temporal", "x"], "--temporal"),
                       (["--encoder-args", "-i x.mp4"], "--encoder-args"), (["--size", "wide"], "--size"),
                       (["--ray-split", "5"], "--ray-split"), (["--splice"], "--splice")):
        r = run_cli("enhance", str(clip), "-o", str(tmp_path / "o.mp4"), "--model", "lanczos", *args)
        assert r.returncode == 2 and flag in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
        assert not (tmp_path / "o.mp4").exists()


def test_messages_name_the_option_once_as_the_user_gave_it(tmp_path):
    """The flag leads a message once (not "--tile: tile must ..."), and a splice refuses the size
    option that was given (--width alone, not --size)."""
    clip = make_clip(tmp_path / "a.mp4", seconds=0.2, audio=False)
    for args, line in ((["--tile", "x"], "error: --tile must be a number of pixels, 0 or auto, not 'x'"),
                       (["--splice", "--start", "0.1", "--width", "64"],
                        "error: --splice keeps the source's frame size (times the model's scale): drop --width"),
                       (["--splice", "--start", "0.1", "--height", "64"],
                        "error: --splice keeps the source's frame size (times the model's scale): drop --height"),
                       (["--splice", "--start", "0.1", "--size", "64x48"],
                        "error: --splice keeps the source's frame size (times the model's scale): drop --size")):
        r = run_cli("enhance", str(clip), "-o", str(tmp_path / "o.mp4"), "--model", "lanczos", *args)
        assert r.returncode == 2 and r.stderr.strip().splitlines()[-1] == line, (args, r.stderr)
    with pytest.raises(RequestError) as e:
        EnhanceRequest.of(str(clip), "o.mp4", tile="x").check()
    assert e.value.line() == "tile must be a number of pixels, 0 or auto, not 'x'"


def test_one_model_choice_for_the_batch_watch_and_ray(tmp_path):
    """The model's identity is resolved once: what the local batch loads is what a Ray worker
    loads (a relative model file made absolute, its other settings kept)."""
    choice, note = ModelChoice(model=None, scale=2).check().resolved()
    assert note is None and choice.model == "general-x2"
    assert choice.load().name == "general-x2"
    from enhancer.batch import cluster

    assert cluster.ModelChoice is ModelChoice


def test_api_run_is_the_one_assembly(tmp_path):
    """enhancer.enhance builds a request and runs it; api.run takes the same request directly."""
    from enhancer import api

    clip = make_clip(tmp_path / "a.mp4", seconds=0.2, audio=False)
    req = EnhanceRequest.of(str(clip), str(tmp_path / "o.mkv"), model="lanczos", codec="ffv1")
    planned = api.run(EnhanceRequest.of(str(clip), str(tmp_path / "o.mkv"), model="lanczos", codec="ffv1",
                                        dry_run=True))
    assert [r.status for r in planned.results] == ["planned"] and not (tmp_path / "o.mkv").exists()
    seen = []
    summary = api.run(req, on_result=seen.append)
    assert [r.status for r in summary.results] == ["done"] == [r.status for r in seen]
    assert api.run(req).results[0].status == "skipped"
    with pytest.raises(RequestError) as err:
        api.run(EnhanceRequest.of(str(clip), str(tmp_path / "p.mkv"), model="lanczos", fps=24))
    assert err.value.field == "fps" and err.value.before_work
