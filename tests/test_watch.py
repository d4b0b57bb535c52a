"""enhancer watch: files are taken once completely written, the state file carries over
restarts, failures are reported once, Ctrl-C stops cleanly (issue 15)."""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import decode_frames, make_clip, run_cli
from enhancer.batch.watch import Watcher, writers


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_a_file_is_ready_once_unchanged_for_settle_and_closed(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    clock = Clock()
    w = Watcher([str(src)], str(tmp_path / "out"), settle=5, clock=clock)
    clip = make_clip(tmp_path / "c.mp4", seconds=0.2, audio=False)
    target = src / "a.mp4"
    with open(target, "wb") as f:  # being written: open, growing, then quiet but still open
        f.write(clip.read_bytes()[:100])
        f.flush()
        assert w.ready(w.found()) == []
        clock.t = 10
        assert w.ready(w.found()) == []  # unchanged for 10 s, but open for writing here
        assert writers([str(target)]) == {str(target)}
        f.write(clip.read_bytes()[100:])
    assert writers([str(target)]) == set()
    clock.t = 11
    assert w.ready(w.found()) == []  # it changed: its clock starts again
    clock.t = 15
    assert w.ready(w.found()) == []
    clock.t = 16.5
    assert w.ready(w.found()) == [str(target)]
    clock.t = 30
    assert w.ready(w.found()) == []  # handed out once
    (src / ".b.mp4.part").write_bytes(b"x")  # hidden: never an input
    target.write_bytes(clip.read_bytes() + b"\0")  # changed again: handed out again after settling
    assert w.ready(w.found()) == []
    clock.t = 40
    assert w.ready(w.found()) == [str(target)]


def _wait_for(predicate, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_watch_cli_round_trip_restart_and_ctrl_c(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    (src / "sub").mkdir(parents=True)
    clip = make_clip(tmp_path / "c.mp4", size="96x64", seconds=0.6, audio=True)
    args = [sys.executable, "-m", "enhancer", "watch", str(src), "-o", str(out), "-r", "--settle", "0.5",
            "--interval", "0.1", "--model", "lanczos", "--preset", "ultrafast"]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1)
        partial = src / "sub" / "late.mp4"
        with open(partial, "wb") as f:  # written in two goes, the second after longer than --settle
            data = clip.read_bytes()
            f.write(data[: len(data) // 2])
            f.flush()
            time.sleep(1.5)
            f.write(data[len(data) // 2:])
        closed = time.time()
        shutil.copy(clip, src / "first.mp4")
        (src / "broken.mp4").write_bytes(b"not a video" * 50)
        assert _wait_for(lambda: (out / "first.mp4").exists() and (out / "sub" / "late.mp4").exists(), 60)
        assert (out / "sub" / "late.mp4").stat().st_mtime >= closed - 0.01  # not taken while being written
        time.sleep(1.5)
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=30)[1]
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "stopped watching" in err and err.count("broken.mp4") == 1  # a failure is reported once
    assert len(decode_frames(out / "sub" / "late.mp4")) == 15 and len(decode_frames(out / "first.mp4")) == 15
    before = (out / "first.mp4").stat().st_mtime_ns
    r = run_cli("watch", str(src), "-o", str(out), "-r", "--settle", "0.2", "--interval", "0.1", "--model", "lanczos",
                "--preset", "ultrafast", "--once", timeout=60)
    assert r.returncode == 1  # the broken file still fails (reported, not retried in a loop)
    assert r.stderr.count("skipped:") == 2 and (out / "first.mp4").stat().st_mtime_ns == before
    assert not [p for p in out.rglob("*") if p.name.startswith(".") and p.suffix in (".mp4", ".tmp")]


def test_watch_usage_errors(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", seconds=0.2, audio=False)
    r = run_cli("watch", str(clip), "-o", str(tmp_path / "o"))
    assert r.returncode == 2 and "not a folder" in r.stderr
    r = run_cli("watch", str(tmp_path), "-o", str(tmp_path))
    assert r.returncode == 2 and "watched folder" in r.stderr


def test_a_file_another_run_is_making_is_looked_at_again(tmp_path):
    """An output another run holds is 'busy', not done: watch tries it again on a later pass and
    makes it once that run has let go (found in review: it was never retried)."""
    import threading

    from enhancer.pipeline.engine import EnhanceOptions
    from enhancer.restore.restorer import ClassicalUpscaler
    from enhancer.media.encode import EncodeOptions
    from enhancer.batch.state import OutputLock
    from enhancer.batch.watch import watch

    inbox, out = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    out.mkdir()
    make_clip(inbox / "a.mp4", seconds=0.3, audio=False)
    lock = OutputLock(str(out / "a.mp4")).acquire()  # "another run" making it
    seen = []
    threading.Timer(1.5, lock.release).start()
    failed = watch([str(inbox)], str(out), ClassicalUpscaler("lanczos", 2), EncodeOptions(preset="ultrafast"),
                   EnhanceOptions(progress=False), settle=0.2, interval=0.2, once=True,
                   on_result=lambda r: seen.append(r.status))
    assert failed == 0 and seen[0] == "busy" and seen[-1] == "done" and (out / "a.mp4").exists()


def test_watch_writes_into_a_folder_it_creates(tmp_path):
    """The output is a folder from the start (plan_jobs once took a flag to never name a file for
    watch): a name ending like a video file is refused before anything is made."""
    from enhancer.errors import UsageError
    from enhancer.pipeline.engine import EnhanceOptions
    from enhancer.restore.restorer import ClassicalUpscaler
    from enhancer.media.encode import EncodeOptions
    from enhancer.batch.watch import watch

    inbox = tmp_path / "in"
    inbox.mkdir()
    args = (ClassicalUpscaler("lanczos", 2), EncodeOptions(preset="ultrafast"), EnhanceOptions(progress=False))
    with pytest.raises(UsageError, match="names a video file, and watch writes into a folder"):
        watch([str(inbox)], str(tmp_path / "out.mkv"), *args, settle=0, interval=0.05, once=True)
    assert not (tmp_path / "out.mkv").exists()
    assert watch([str(inbox)], str(tmp_path / "new" / "out"), *args, settle=0, interval=0.05, once=True) == 0
    assert (tmp_path / "new" / "out").is_dir()
    (tmp_path / "taken.mkv").mkdir()  # an existing folder of that name is a folder
    assert watch([str(inbox)], str(tmp_path / "taken.mkv"), *args, settle=0, interval=0.05, once=True) == 0
