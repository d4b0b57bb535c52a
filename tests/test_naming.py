"""Which files a command line names and what each output is called: an output never lands on an
input, no two inputs share an output, the tool's own outputs are never inputs, long and odd names
work, and every message about a file stays one line (issue 13, items 1-3, 17-20)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import make_clip, run_cli
from enhancer.errors import EnhancerError, UsageError, escape, shown
from enhancer.media.probe import count_frames
from enhancer.batch.naming import discover, plan_jobs

LANCZOS = ["--model", "lanczos", "--preset", "ultrafast"]


def _rows(stdout: str) -> list[dict]:
    return [json.loads(x) for x in stdout.splitlines() if x.strip()]


def test_output_never_replaces_its_input_even_with_overwrite(tmp_path):
    """Item 1: `enhance a.mp4 -o a.mp4 --overwrite` once replaced the input."""
    src = make_clip(tmp_path / "a.mp4", seconds=0.4)
    before = src.read_bytes()
    r = run_cli("enhance", str(src), "-o", str(src), "--overwrite", "--json", "-q", *LANCZOS)
    assert r.returncode == 0, r.stderr
    row = _rows(r.stdout)[0]
    assert Path(row["output"]).name == "a.enhanced.mp4" and row["status"] == "done"
    assert src.read_bytes() == before
    # recorded beside it (its records were once looked for inside "a.mp4/"): a rerun knows it
    assert "could not be recorded" not in r.stderr + json.dumps(row)
    r = run_cli("enhance", str(src), "-o", str(src), "--json", "-q", *LANCZOS)
    assert _rows(r.stdout)[0]["status"] == "skipped", r.stdout + r.stderr
    # the same file under another name (a hard link) is the same input
    link = tmp_path / "link.mp4"
    os.link(src, link)
    r = run_cli("enhance", str(src), "-o", str(link), "--overwrite", "--json", "-q", *LANCZOS)
    assert r.returncode == 0 and Path(_rows(r.stdout)[0]["output"]).name == "link.enhanced.mp4"
    assert src.read_bytes() == before and link.read_bytes() == before


def test_same_names_from_different_folders_get_their_own_outputs(tmp_path):
    """Item 2: three x.mp4 from three folders all went to x_mp4.mp4, and every rerun redid them."""
    srcs = []
    for d in ("d1", "d2", "d3"):
        (tmp_path / d).mkdir()
        srcs.append(str(make_clip(tmp_path / d / "x.mp4", seconds=0.2 + 0.04 * len(srcs), audio=False)))
    out = tmp_path / "out"
    r = run_cli("enhance", *srcs, "-o", str(out), "--json", "-q", *LANCZOS)
    assert r.returncode == 0, r.stderr
    rows = _rows(r.stdout)
    assert sorted(Path(x["output"]).relative_to(out).as_posix() for x in rows) == ["d1/x.mp4", "d2/x.mp4", "d3/x.mp4"]
    assert [count_frames(x["output"]) for x in rows] == [5, 6, 7]  # each output is its own input's
    # the same names whatever the order, and a rerun skips them all
    r = run_cli("enhance", *reversed(srcs), "-o", str(out), "--json", "-q", *LANCZOS)
    assert {x["status"] for x in _rows(r.stdout)} == {"skipped"}


def test_a_collision_no_rule_resolves_is_an_error_before_any_work(tmp_path):
    (tmp_path / "in").mkdir()
    for name in ("a.mkv", "a.avi", "a_avi.mkv"):  # a.avi -> a_avi.mkv, which a_avi.mkv makes too
        (tmp_path / "in" / name).write_bytes(b"x")
    found = discover([str(tmp_path / "in")])
    with pytest.raises(UsageError, match="would all be written to"):
        plan_jobs(found, str(tmp_path / "out"), "h264")
    r = run_cli("enhance", str(tmp_path / "in"), "-o", str(tmp_path / "out"), *LANCZOS)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()
    # extensions that collide are resolved the same way in any order
    jobs = plan_jobs([(str(tmp_path / "in" / n), None) for n in ("a.avi", "a.mkv")], str(tmp_path / "o"), "h264")
    assert [Path(j.output).name for j in jobs] == ["a_avi.mkv", "a.mkv"]


@pytest.mark.slow  # seven CLI runs
def test_own_outputs_are_never_inputs(tmp_path):
    """Item 3: `enhance d -r -o d/enhanced`, run three times, made a.enhanced.enhanced.enhanced.mp4."""
    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    make_clip(d / "a.mp4", seconds=0.2, audio=False)
    make_clip(d / "sub" / "b.mp4", seconds=0.2, audio=False)
    for _ in range(3):
        r = run_cli("enhance", str(d), "-r", "-o", str(d / "enhanced"), "--json", "-q", *LANCZOS)
        assert r.returncode == 0, r.stderr
        assert sorted(Path(x["input"]).name for x in _rows(r.stdout)) == ["a.mp4", "b.mp4"]
    made = sorted(p.relative_to(d).as_posix() for p in d.rglob("*.mp4"))
    assert made == ["a.mp4", "enhanced/a.mp4", "enhanced/sub/b.mp4", "sub/b.mp4"]
    # into the input folder itself: the outputs it made are recognised from its state file
    for _ in range(3):
        r = run_cli("enhance", str(d), "-r", "-o", str(d), "--json", "-q", *LANCZOS)
        assert r.returncode == 0, r.stderr
        assert sorted(Path(x["input"]).name for x in _rows(r.stdout)) == ["a.mp4", "b.mp4"]
    assert not list(d.rglob("*.enhanced.enhanced*"))
    assert (d / "a.enhanced.mp4").exists() and (d / "sub" / "b.enhanced.mp4").exists()
    # a glob of the folder does not pick them up either
    r = run_cli("enhance", str(d / "*.mp4"), "-o", str(d), "--json", "-q", *LANCZOS)
    assert [Path(x["input"]).name for x in _rows(r.stdout)] == ["a.mp4"]


def test_long_file_names_are_shortened_the_same_way_every_time(tmp_path):
    """Item 17: a 254-character name failed with `File name too long` once a suffix was added."""
    src_dir = tmp_path / "in"
    src_dir.mkdir()
    long_a = "a" * 246 + "-one.mp4"  # 254 characters
    long_b = "a" * 246 + "-two.mp4"
    make_clip(src_dir / long_a, seconds=0.2, audio=False)
    make_clip(src_dir / long_b, seconds=0.2, audio=False)
    out = tmp_path / "out"
    r = run_cli("enhance", str(src_dir), "-o", str(out), "--json", "-q", *LANCZOS)
    assert r.returncode == 0, r.stderr
    names = sorted(Path(x["output"]).name for x in _rows(r.stdout))
    assert len(set(names)) == 2 and all(len(n.encode()) <= 200 and n.endswith(".mp4") and "~" in n for n in names)
    r = run_cli("enhance", str(src_dir), "-o", str(out), "--json", "-q", *LANCZOS)
    assert sorted(Path(x["output"]).name for x in _rows(r.stdout)) == names
    assert {x["status"] for x in _rows(r.stdout)} == {"skipped"}
    # into the same folder too (the output would be NAME.enhanced.mp4, longer still)
    r = run_cli("enhance", str(src_dir / long_a), "-o", str(src_dir), "--json", "-q", *LANCZOS)
    row = _rows(r.stdout)[0]
    assert row["status"] == "done", row
    assert len(Path(row["output"]).name.encode()) <= 200 and Path(row["output"]).name != long_a


def test_a_name_holding_a_printf_pattern_is_a_file_not_a_sequence(tmp_path):
    """Item 18: a video `p%d.mp4`, or a folder `clips_%03d/` of videos, was taken for a pattern."""
    video = make_clip(tmp_path / "p%d.mp4", seconds=0.2, audio=False)
    folder = tmp_path / "clips_%03d"
    folder.mkdir()
    make_clip(folder / "c.mp4", seconds=0.2, audio=False)
    r = run_cli("enhance", str(video), str(folder), "-o", str(tmp_path / "out"), "--json", "-q", *LANCZOS)
    assert r.returncode == 0, r.stderr
    rows = _rows(r.stdout)
    assert sorted(Path(x["output"]).name for x in rows) == ["c.mp4", "p%d.mp4"]
    assert all(x["status"] == "done" and x["frames"] == 5 for x in rows)
    # a pattern that names no file is still a sequence
    from enhancer.media.sequence import is_image_sequence

    assert is_image_sequence(str(tmp_path / "frames_%05d.png")) and not is_image_sequence(str(video))


def test_names_with_control_characters_stay_on_one_line(tmp_path):
    """Item 19: an error about a name holding a newline or ANSI escapes was split or coloured."""
    nasty = tmp_path / "bad\nname\x1b[31mred.mp4"
    nasty.write_bytes(os.urandom(2000))
    r = run_cli("enhance", str(nasty), "-o", str(tmp_path / "out"), "-q")
    assert r.returncode == 1
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "\x1b" not in r.stderr
    assert "bad\\nname\\x1b[31mred.mp4" in lines[0]
    r = run_cli("enhance", str(nasty), "-o", str(tmp_path / "out2"), "--json", "-q")
    row = _rows(r.stdout)[0]
    assert row["input"] == str(nasty) and "\n" not in row["error"] and "\x1b" not in row["error"]
    assert shown("plain name.mp4") == "plain name.mp4"
    assert shown("a\u202eb") == "'a\\u202eb'" and escape("x\udcffy") == "x\\xffy"
    assert str(EnhancerError("bad\nthing", path="p\rq")) == "'p\\rq': bad\\nthing"


def test_report_and_output_paths_are_checked_before_any_work(tmp_path):
    """Item 20: `--report` naming a folder gave a traceback after the whole batch had run."""
    src = make_clip(tmp_path / "a.mp4", seconds=0.2, audio=False)
    (tmp_path / "reports").mkdir()
    out = tmp_path / "out"
    r = run_cli("enhance", str(src), "-o", str(out), "--report", str(tmp_path / "reports"), *LANCZOS)
    assert r.returncode == 2 and "--report" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not out.exists()
    r = run_cli("enhance", str(src), "-o", str(out), "--report", str(src), *LANCZOS)
    assert r.returncode == 2 and not out.exists()
    # -o naming a file while the inputs need a folder
    other = make_clip(tmp_path / "b.mp4", seconds=0.2, audio=False)
    blocker = tmp_path / "notes.txt"
    blocker.write_text("x")
    r = run_cli("enhance", str(src), str(other), "-o", str(blocker), *LANCZOS)
    assert r.returncode == 2 and "folder" in r.stderr and blocker.read_text() == "x"
    # a good report path whose folder does not exist yet is made
    r = run_cli("enhance", str(src), "-o", str(out), "--report", str(tmp_path / "new" / "r.json"), "-q", *LANCZOS)
    assert r.returncode == 0 and json.loads((tmp_path / "new" / "r.json").read_text())["done"] == 1
    shutil.rmtree(out)


def test_several_inputs_and_a_file_name_for_output_is_an_error(tmp_path):
    """-o one.mp4 with two inputs (or a folder) used to create a folder called one.mp4."""
    for name in ("a.mp4", "b.mp4"):
        make_clip(tmp_path / name, seconds=0.2, audio=False)
    r = run_cli("enhance", str(tmp_path / "a.mp4"), str(tmp_path / "b.mp4"), "-o", str(tmp_path / "one.mp4"),
                *LANCZOS)
    assert r.returncode == 2 and "names one file" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "one.mp4").exists()
    with pytest.raises(UsageError, match="a folder of inputs"):
        plan_jobs([(str(tmp_path / "a.mp4"), tmp_path)], str(tmp_path / "out.mkv"), "h264")
    (tmp_path / "made.mp4").mkdir()  # an existing folder of that name is a folder
    assert len(plan_jobs([(str(tmp_path / "a.mp4"), None), (str(tmp_path / "b.mp4"), None)],
                         str(tmp_path / "made.mp4"), "h264")) == 2
