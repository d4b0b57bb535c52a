"""What a rerun trusts: the recipe of each output, the state file, the folder lock and the
temporaries of runs that are gone (issue 13, items 4, 8-10, 12)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from conftest import make_clip, run_cli
from enhancer.restore import weights
from enhancer.pipeline.engine import EnhanceOptions
from enhancer.restore.restorer import ClassicalUpscaler
from enhancer.media.encode import EncodeOptions
from enhancer.models import Generator, GeneratorConfig
from enhancer.pipeline.recipe import Recipe
from enhancer.batch.state import RECORDS, BatchState, Decision, OutputLock, record_stem

LANCZOS = ["--model", "lanczos", "--preset", "ultrafast"]
TINY = dict(channels=8, frame_blocks=1, temporal_blocks=2, post_blocks=1)


def _rows(stdout: str) -> list[dict]:
    return [json.loads(x) for x in stdout.splitlines() if x.strip()]


def save_tiny(path: Path, name: str, seed: int) -> Path:
    torch.manual_seed(seed)
    g = Generator(GeneratorConfig(scale=2, **TINY))
    with torch.no_grad():
        for p in g.parameters():
            p.normal_(0, 0.1)
    weights.save(g, path, weights.ModelCard(name=name, arch="stgan-generator", config=g.config.to_dict(), scale=2))
    return path


# ---- item 4: one recipe ----------------------------------------------------------------------
def test_recipe_key_covers_what_changes_pixels_and_nothing_else(tmp_path):
    src = make_clip(tmp_path / "a.mp4", seconds=0.2, audio=False)
    lanczos, enc, opts = ClassicalUpscaler("lanczos", 2), EncodeOptions(), EnhanceOptions()
    key = Recipe.of(str(src), lanczos, enc, opts).key()
    assert Recipe.of(str(src), lanczos, enc, EnhanceOptions(chunk=3, progress=False)).key() == key
    assert Recipe.of(str(src), ClassicalUpscaler("bicubic", 2), enc, opts).key() != key
    assert Recipe.of(str(src), lanczos, EncodeOptions(crf=20), opts).key() != key
    assert Recipe.of(str(src), lanczos, enc, EnhanceOptions(start=1.0)).key() != key
    other = ClassicalUpscaler("lanczos", 2)
    other.weights_sha256 = "0" * 64
    assert Recipe.of(str(src), other, enc, opts).key() != key
    os.utime(src, ns=(1, 1))  # the input changed (its modification time, here)
    assert Recipe.of(str(src), lanczos, enc, opts).key() != key


def test_another_model_file_with_the_same_card_name_is_not_done(tmp_path):
    """Item 4: a different .safetensors whose card had the same name was skipped as done."""
    src = make_clip(tmp_path / "a.mp4", seconds=0.4, audio=False)
    a = save_tiny(tmp_path / "a" / "same.safetensors", "same", seed=1)
    b = save_tiny(tmp_path / "b" / "same.safetensors", "same", seed=2)
    out = tmp_path / "out"
    r = run_cli("enhance", str(src), "-o", str(out), "--model", str(a), "--json", "-q")
    assert _rows(r.stdout)[0]["status"] == "done", r.stderr
    r = run_cli("enhance", str(src), "-o", str(out), "--model", str(a), "--json", "-q")
    assert _rows(r.stdout)[0]["status"] == "skipped"
    r = run_cli("enhance", str(src), "-o", str(out), "--model", str(b), "--json", "-q")
    assert _rows(r.stdout)[0]["status"] == "done"
    entry = BatchState(out).entries["a.mp4"]
    assert entry.key and entry.recipe["restorer"]["weights_sha256"] == weights.load_model(b).sha256


def lock_path(out: Path, name: str = "a.mp4") -> Path:
    """Where the lock of output ``name`` in ``out`` lives."""
    return OutputLock(str(out / name)).path


# ---- items 8, 9: the output's lock -----------------------------------------------------------
_HOLDER = """
import json, os, sys, time
from pathlib import Path
from enhancer.errors import LockedError
from enhancer.batch.state import OutputLock
folder, marks = sys.argv[1], Path(sys.argv[2])
try:
    lock = OutputLock(folder + "/a.mp4").acquire()
except LockedError:
    print("busy"); sys.exit(0)
mine = marks / f"holding-{os.getpid()}"
mine.write_text("x")
time.sleep(0.3)
others = [p.name for p in marks.iterdir() if p != mine]
mine.unlink()
lock.release()
print("two holders" if others else "held")
"""


def test_the_lock_is_taken_atomically(tmp_path):
    """Item 8: a stale lock could be taken over by two runs at once."""
    out, marks = tmp_path / "out", tmp_path / "marks"
    out.mkdir()
    marks.mkdir()
    outcomes = []
    for _ in range(4):
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        lock_path(out).parent.mkdir(exist_ok=True)
        lock_path(out).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
        procs = [subprocess.Popen([sys.executable, "-c", _HOLDER, str(out), str(marks)], stdout=subprocess.PIPE,
                                  text=True) for _ in range(6)]
        outcomes += [p.communicate(timeout=120)[0].strip() for p in procs]
    assert "two holders" not in outcomes and "held" in outcomes
    assert set(outcomes) <= {"held", "busy"}


_SLOW = pytest.mark.slow  # a CLI run each: the quick run keeps a few of each kind, the slow run the rest


@pytest.mark.parametrize("content", [
    "", "{", pytest.param('{"pid": "abc", "host": "h"}', marks=_SLOW), pytest.param("[1, 2]", marks=_SLOW),
    '{"pid": 1e400}', pytest.param('{"pid": 99999999999999999999999}', marks=_SLOW),
    pytest.param('{"pid": true}', marks=_SLOW), pytest.param("null", marks=_SLOW), "\x00\xff garbage",
])
def test_a_lock_file_that_nobody_holds_never_blocks(tmp_path, content):
    """Item 9: a lock naming a live unrelated pid, an empty lock left by a full disk, or a lock
    holding nonsense blocked the folder forever or gave a traceback."""
    src = make_clip(tmp_path / "a.mp4", seconds=0.2, audio=False)
    out = tmp_path / "out"
    out.mkdir()
    lock_path(out).parent.mkdir(exist_ok=True)
    lock_path(out).write_bytes(content.encode("utf-8", "surrogateescape"))
    r = run_cli("enhance", str(src), "-o", str(out), "--json", "-q", *LANCZOS)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert _rows(r.stdout)[0]["status"] == "done"


def test_a_reused_pid_and_a_full_disk_at_the_start_do_not_block(tmp_path):
    src = make_clip(tmp_path / "a.mp4", seconds=0.2, audio=False)
    out = tmp_path / "out"
    out.mkdir()
    # pid 1 is alive but is no enhancer run: nobody holds the lock, so it is taken
    lock_path(out).parent.mkdir(exist_ok=True)
    lock_path(out).write_text(json.dumps({"pid": 1, "host": socket.gethostname()}))
    r = run_cli("enhance", str(src), "-o", str(out), "--json", "-q", *LANCZOS)
    assert r.returncode == 0 and _rows(r.stdout)[0]["status"] == "done", r.stderr
    # a disk full from the start: the run fails, and the next one is not blocked by what it left
    import resource

    def no_room():
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))

    r = subprocess.run([sys.executable, "-m", "enhancer", "enhance", str(src), "-o", str(tmp_path / "full"),
                        "--json", "-q", *LANCZOS], capture_output=True, text=True, preexec_fn=no_room, timeout=240)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    r = run_cli("enhance", str(src), "-o", str(tmp_path / "full"), "--json", "-q", *LANCZOS)
    assert r.returncode == 0 and _rows(r.stdout)[0]["status"] == "done", r.stderr


def test_lock_unit_behaviour(tmp_path):
    a, b = OutputLock(str(tmp_path / "a.mp4")), OutputLock(str(tmp_path / "sub" / ".." / "a.mp4"))
    a.acquire()
    from enhancer.errors import LockedError

    with pytest.raises(LockedError, match=f"process {os.getpid()}.*is making this output"):
        b.acquire()
    (tmp_path / "sub").mkdir()
    OutputLock(str(tmp_path / "sub" / "b.mp4")).acquire().release()  # another output: its own lock
    a.release()
    assert not a.path.exists()
    assert b.acquire().held
    b.release()
    assert not b.held


# ---- item 10: the state file -----------------------------------------------------------------
@pytest.mark.parametrize("content", [
    pytest.param("[]", marks=_SLOW), pytest.param("null", marks=_SLOW), pytest.param('{"outputs": []}', marks=_SLOW),
    pytest.param('{"outputs": "x"}', marks=_SLOW), "[" * 100_000 + "]" * 100_000,
    '{"outputs": {"a.mp4": {"status": "done"}}}', pytest.param('{"outputs": {"a.mp4": {"status": "maybe", "input": {}, '
                                                              '"recipe": {}}}}', marks=_SLOW),
    pytest.param('{"outputs": {"a.mp4": 7}}', marks=_SLOW), "\xff\xfe not json",
])
def test_a_corrupt_state_file_is_set_aside_and_rebuilt(tmp_path, content):
    """An earlier version's state file, or an output's record, that does not check out."""
    src = make_clip(tmp_path / "a.mp4", seconds=0.2, audio=False)
    for where in ("state", "record"):
        out = tmp_path / where
        bad = out / ".enhancer-state.json" if where == "state" else out / RECORDS / f"{record_stem('a.mp4')}.json"
        bad.parent.mkdir(parents=True)
        bad.write_bytes(content.encode("utf-8", "surrogateescape"))
        r = run_cli("enhance", str(src), "-o", str(out), "--json", "-q", *LANCZOS)
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
        assert _rows(r.stdout)[0]["status"] == "done"
        assert "set aside" in r.stderr
        aside = list(bad.parent.glob(bad.name + ".corrupt-*"))
        assert len(aside) == 1 and aside[0].read_bytes() == content.encode("utf-8", "surrogateescape")
        assert BatchState(out).entries["a.mp4"].status == "done"
        r = run_cli("enhance", str(src), "-o", str(out), "--json", "-q", *LANCZOS)
        assert _rows(r.stdout)[0]["status"] == "skipped" and "set aside" not in r.stderr


def test_state_decisions(tmp_path):
    src = make_clip(tmp_path / "a.mp4", seconds=0.2, audio=False)
    out = tmp_path / "a_out.mp4"
    recipe = Recipe.of(str(src), ClassicalUpscaler("lanczos", 2), EncodeOptions(), EnhanceOptions())
    st = BatchState(tmp_path)
    assert st.decide(str(out), recipe, retry_failed=False) == (Decision.RUN, None)
    st.record(str(out), recipe, "failed", "boom")
    assert st.decide(str(out), recipe, retry_failed=False) == (Decision.FAILED_BEFORE, "boom")
    assert st.decide(str(out), recipe, retry_failed=True)[0] is Decision.REDO
    out.write_bytes(b"x")
    st.record(str(out), recipe, "done")
    assert BatchState(tmp_path).decide(str(out), recipe, retry_failed=False)[0] is Decision.SKIP
    st.record(str(out), recipe, "incomplete", "decoded 3 of 5")
    assert BatchState(tmp_path).decide(str(out), recipe, retry_failed=False) == \
        (Decision.SKIP_INCOMPLETE, "decoded 3 of 5")
    other = Recipe.of(str(src), ClassicalUpscaler("bicubic", 2), EncodeOptions(), EnhanceOptions())
    assert BatchState(tmp_path).decide(str(out), other, retry_failed=False)[0] is Decision.REDO


# ---- item 12: temporaries of runs that are gone ----------------------------------------------
def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_temporaries_of_runs_that_are_gone_are_removed(tmp_path):
    src = make_clip(tmp_path / "a.mp4", seconds=0.2, audio=False)
    out = tmp_path / "out"
    out.mkdir()
    dead = _dead_pid()
    stale = [out / f".x.partial-{dead}-abc123.mp4", out / f".b.mp4.{dead}.ffconcat",
             out / f".enhancer-state.json.{dead}.tmp", out / f".preview-{dead}-xyz", out / f".c.mp4.preview-{dead}-q",
             out / f".frames.partial-{dead}-abcdef"]
    for p in stale:
        p.mkdir() if "preview" in p.name or "frames" in p.name else p.write_bytes(b"x" * 100)
        os.utime(p, (time.time() - 3600, time.time() - 3600))  # nobody has touched them for an hour
    live = out / f".c.partial-{os.getpid()}-abc123.mp4"  # this test process is alive: not touched
    live.write_bytes(b"x")
    recent = out / f".d.partial-{dead}-abc123.mp4"  # maybe another machine's live work: not yet touched
    recent.write_bytes(b"x")
    working = out / f".e.mp4.preview-{dead}-w"  # a folder written inside just now: live too
    working.mkdir()
    (working / "enhanced.mkv").write_bytes(b"x")
    os.utime(working, (time.time() - 3600, time.time() - 3600))
    mine = out / f".a.partial-{dead}-abc123.mp4"  # the output this run makes: its own, under its lock
    mine.write_bytes(b"x")
    r = run_cli("enhance", str(src), "-o", str(out), "--json", "-q", *LANCZOS)
    assert r.returncode == 0, r.stderr
    left = sorted(p.name for p in out.iterdir() if p.name.startswith("."))
    assert left == [".c.partial-%d-abc123.mp4" % os.getpid(), recent.name, working.name, ".enhancer-records"]


def test_files_are_renamed_into_place_whole(tmp_path, monkeypatch):
    """atomic_write: a reader sees the old file or the new one, and a write that fails leaves the
    old one and no temporary; publish with aside: a frame folder replaced by another."""
    from enhancer.media import temps

    target = tmp_path / "r.json"
    temps.atomic_write(target, "old")
    temps.atomic_write(target, b"new", hidden=False)
    assert target.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["r.json"]

    def full(src, dst):
        assert Path(src).name == f".r.json.{os.getpid()}.tmp" and Path(src).read_text() == "newer"
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(temps.os, "replace", full)
        with pytest.raises(OSError):
            temps.atomic_write(target, "newer")
    assert target.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["r.json"]
    frames, made = tmp_path / "frames", tmp_path / ".frames.partial"
    for folder, name in ((frames, "a.png"), (made, "b.png")):
        folder.mkdir()
        (folder / name).write_bytes(b"x")
    temps.publish(made, frames, aside=tmp_path / ".frames.old")
    assert [p.name for p in frames.iterdir()] == ["b.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", "r.json"]

def test_kill_9_leaves_temporaries_that_the_next_run_removes(tmp_path):
    src = make_clip(tmp_path / "long.mp4", size="320x240", seconds=8)
    out = tmp_path / "out"
    args = ["enhance", str(src), "-o", str(out), "--scale", "4", "--model", "lanczos", "--preset", "slow", "-q"]
    for _ in range(2):
        proc = subprocess.Popen([sys.executable, "-m", "enhancer", *args], stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while time.time() < deadline and not list(out.rglob("*.partial-*")):
            time.sleep(0.05)
        proc.kill()
        proc.wait()
    assert list(out.rglob("*.partial-*"))
    r = run_cli(*args[:-2], "ultrafast", "--json", "-q")
    assert json.loads(r.stdout)["status"] == "done", r.stderr
    assert not list(out.rglob("*.partial-*"))
    assert [p.name for p in out.rglob(".*")] == [".enhancer-records"]
    assert [p.suffix for p in (out / ".enhancer-records").iterdir()] == [".json"]


def test_interrupt_while_spooling_stdin_exits_130_and_leaves_no_spool(tmp_path):
    spool_dir = tmp_path / "tmp"
    spool_dir.mkdir()
    dead = _dead_pid()
    (spool_dir / f"enhancer-stdin-{dead}-abcd").write_bytes(b"x")  # left by a run killed while spooling
    env = dict(os.environ, TMPDIR=str(spool_dir))
    for sig in (signal.SIGTERM, signal.SIGINT):
        proc = subprocess.Popen([sys.executable, "-m", "enhancer", "enhance", "-", "-o", str(tmp_path / "o.mkv"),
                                 "-q", *LANCZOS], stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        proc.stdin.write(b"\x00" * 100_000)
        proc.stdin.flush()
        deadline = time.time() + 60
        while time.time() < deadline and not list(spool_dir.glob(f"enhancer-stdin-{proc.pid}-*")):
            time.sleep(0.05)
        assert list(spool_dir.glob(f"enhancer-stdin-{proc.pid}-*")), "never started spooling"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert list(spool_dir.iterdir()) == [], "the spool files (its own and the dead run's) are removed"


def test_interrupt_during_model_load_exits_130(tmp_path):
    model = save_tiny(tmp_path / "m.safetensors", "m", seed=0)
    proc = subprocess.Popen([sys.executable, "-m", "enhancer", "enhance", "-", "-o", str(tmp_path / "o.mkv"),
                             "--model", str(model), "-q"], stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, TMPDIR=tempfile.mkdtemp(dir=tmp_path)))
    deadline = time.time() + 60
    # torch being mapped into the process means the handler is in place and the model is loading
    while time.time() < deadline:
        try:
            if "libtorch" in Path(f"/proc/{proc.pid}/maps").read_text():
                break
        except OSError:
            pass
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"Traceback" not in err


def test_an_output_that_cannot_be_locked_fails_with_a_reason(tmp_path):
    src = make_clip(tmp_path / "a.mp4", seconds=0.2, audio=False)
    out = tmp_path / "out"
    out.mkdir()
    (out / ".a.mp4.lock").mkdir()  # something that is no lock file where the lock belongs
    r = run_cli("enhance", str(src), "-o", str(out), "--json", "-q", *LANCZOS)
    row = _rows(r.stdout)[0]
    assert r.returncode == 1 and row["status"] == "failed" and "cannot lock the output" in row["error"], r.stderr
    assert not (out / "a.mp4").exists()


def test_an_output_made_from_another_input_is_not_replaced_silently(tmp_path):
    """The same file name from two folders, into one output folder in two runs."""
    for folder, seconds in (("one", 0.2), ("two", 0.4)):
        (tmp_path / folder).mkdir()
        make_clip(tmp_path / folder / "c.mp4", seconds=seconds, audio=False)
    out = tmp_path / "out"
    assert _rows(run_cli("enhance", str(tmp_path / "one" / "c.mp4"), "-o", str(out) + "/", "--json", "-q",
                         *LANCZOS).stdout)[0]["status"] == "done"
    r = run_cli("enhance", str(tmp_path / "two" / "c.mp4"), "-o", str(out) + "/", "--json", "-q", *LANCZOS)
    row = _rows(r.stdout)[0]
    assert row["status"] == "skipped" and "made from another input" in row["error"] and "one" in row["error"]
    r = run_cli("enhance", str(tmp_path / "two" / "c.mp4"), "-o", str(out) + "/", "--json", "-q", "--overwrite",
                *LANCZOS)
    assert _rows(r.stdout)[0]["status"] == "done" and _rows(r.stdout)[0]["frames"] == 10
