"""Statuses and decisions are enums that read, print and serialise as the strings they were."""
from __future__ import annotations

import json
import pickle
from dataclasses import asdict

import pytest

from conftest import make_clip
from enhancer.batch.runner import BatchSummary, FileResult
from enhancer.pipeline.engine import EnhanceOptions
from enhancer.restore.restorer import ClassicalUpscaler
from enhancer.media.encode import EncodeOptions
from enhancer.pipeline.recipe import Recipe
from enhancer.batch.state import RECORDS, BatchState, Decision, record_stem
from enhancer.batch.status import FileStatus, RecordStatus


@pytest.mark.parametrize("member", [*FileStatus, *RecordStatus, *Decision])
def test_a_member_is_its_text_everywhere(member):
    text = member.value
    assert member == text and isinstance(member, str)
    assert str(member) == f"{member}" == f"{member:}" == "%s" % member == text
    assert f"{member:>16}" == f"{text:>16}"
    assert repr(member) == repr(text) and repr([member]) == repr([text])
    assert json.dumps(member) == json.dumps(text) and json.dumps({"s": member}) == json.dumps({"s": text})
    assert {text: 1}[member] == 1 and {member: 1}[text] == 1 and hash(member) == hash(text)
    assert pickle.loads(pickle.dumps(member)) is member
    assert type(member)(text) is member


def test_a_file_result_takes_text_and_writes_the_same_json():
    res = FileResult("a.mp4", "out/a.mp4", "done", frames=3)
    assert res.status is FileStatus.DONE
    assert res.to_json() == ('{"input": "a.mp4", "output": "out/a.mp4", "status": "done", "frames": 3, '
                             '"seconds": 0.0, "error": null, "warnings": [], "incomplete": false, "resumed": 0, '
                             '"environment": false}')
    with pytest.raises(ValueError):
        FileResult("a.mp4", None, "finished")
    summary = BatchSummary([res, FileResult("b.mp4", None, FileStatus.BUSY, error="locked")], 1.0)
    assert summary.count("done") == summary.count(FileStatus.BUSY) == 1 and summary.exit_code == 1
    assert json.loads(json.dumps(summary.to_dict()))["files"][1]["status"] == "busy"
    assert summary.to_dict()["done"] == 1 and summary.line().startswith("1 done, 0 skipped, 1 left to another run")
    assert asdict(res)["status"] == "done"


def test_records_on_disk_are_unchanged(tmp_path):
    src = make_clip(tmp_path / "a.mp4", seconds=0.2, audio=False)
    out = tmp_path / "a_out.mp4"
    recipe = Recipe.of(str(src), ClassicalUpscaler("lanczos", 2), EncodeOptions(), EnhanceOptions())
    st = BatchState(tmp_path)
    st.record(str(out), recipe, RecordStatus.INCOMPLETE, "decoded 3 of 5", 3)
    path = tmp_path / RECORDS / f"{record_stem(st.key(str(out)))}.json"
    raw = json.loads(path.read_text())
    assert raw["entry"]["status"] == "incomplete" and '"status": "incomplete"' in path.read_text()
    entry = BatchState(tmp_path).lookup(str(out))
    assert entry.status is RecordStatus.INCOMPLETE and entry.error == "decoded 3 of 5"
    st.record(str(out), recipe, "done")  # text is taken too
    assert json.loads(path.read_text())["entry"]["status"] == "done"
    # a status that is the enum's name or repr, not its value, does not check out: set aside
    raw["entry"]["status"] = "RecordStatus.DONE"
    path.write_text(json.dumps(raw))
    again = BatchState(tmp_path)
    assert again.lookup(str(out)) is None and "bad status" in again.notes[0]
