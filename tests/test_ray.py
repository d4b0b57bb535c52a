"""--executor ray (issue 16) on a real local Ray cluster: a head node and a second worker node,
each a `ray start` process with one CPU, on this machine."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import MAKER, make_clip, run_cli

ray = pytest.importorskip("ray", reason="Ray is an optional extra (pip install 'enhancer[ray]')")
# one cluster per module, and its teardown (`ray stop --force`) stops every Ray process on the machine:
# these tests and the other Ray ones run on one pytest-xdist worker, one after another
pytestmark = pytest.mark.xdist_group("ray")
RAY = str(Path(sys.executable).with_name("ray"))
# a throwaway cluster on localhost: no token to hand around between its processes
ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    env = {**os.environ, **ENV}
    port = _free_port()
    address = f"127.0.0.1:{port}"
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--object-store-memory", "100000000",
              "--disable-usage-stats"]
    head = subprocess.run([RAY, "start", "--head", "--port", str(port), "--include-dashboard", "false", *common],
                          capture_output=True, text=True, env=env, timeout=120)
    if head.returncode != 0:
        pytest.skip(f"cannot start a Ray head node here: {(head.stderr.strip().splitlines() or ['?'])[-1]}")
    try:
        worker = subprocess.run([RAY, "start", "--address", address, *common], capture_output=True, text=True,
                                env=env, timeout=120)
        assert worker.returncode == 0, worker.stderr
        yield address
    finally:
        subprocess.run([RAY, "stop", "--force"], capture_output=True, env=env, timeout=120)


def _rows(stdout: str) -> dict[str, dict]:
    return {Path(json.loads(x)["input"]).name: json.loads(x) for x in stdout.splitlines() if x.startswith("{")}


def _frame_md5s(path: Path) -> list[str]:
    out = subprocess.run([MAKER, "-hide_banner", "-loglevel", "error", "-i", str(path), "-map", "0:v:0",
                          "-fps_mode", "passthrough", "-f", "framemd5", "-"], capture_output=True, text=True,
                         check=True).stdout
    return [line.rsplit(",", 1)[1].strip() for line in out.splitlines() if line and not line.startswith("#")]


LANCZOS = ["--model", "lanczos", "--codec", "ffv1", "--json", "-q"]


def test_a_batch_on_the_cluster_equals_the_local_one(cluster, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for k in range(5):
        make_clip(src / f"clip{k}.mp4", size="96x64", seconds=0.4 + 0.1 * k)
    (src / "broken.mp4").write_bytes(b"\x00not a video" * 300)
    local = run_cli("enhance", str(src), "-o", str(tmp_path / "local"), *LANCZOS)
    r = run_cli("enhance", str(src), "-o", str(tmp_path / "ray"), *LANCZOS, "--executor", "ray", "--ray-address",
                cluster, env=ENV)
    rows = _rows(r.stdout)
    assert r.returncode == local.returncode == 1, r.stderr
    assert {k: v["status"] for k, v in rows.items()} == {k: v["status"] for k, v in _rows(local.stdout).items()}
    assert rows["broken.mp4"]["status"] == "failed" and "broken.mp4" in rows["broken.mp4"]["error"]
    assert "\n" not in rows["broken.mp4"]["error"]
    for k in range(5):
        assert _frame_md5s(tmp_path / "ray" / f"clip{k}.mkv") == _frame_md5s(tmp_path / "local" / f"clip{k}.mkv")
    # a second run into the same folder skips everything (the broken file is reported again, not retried)
    again = run_cli("enhance", str(src), "-o", str(tmp_path / "ray"), *LANCZOS, "--executor", "ray",
                    "--ray-address", cluster, env=ENV)
    rows = _rows(again.stdout)
    assert all(rows[f"clip{k}.mp4"]["status"] == "skipped" for k in range(5)), again.stdout
    assert "earlier run" in rows["broken.mp4"]["error"]


def _task_pids() -> list[int]:
    """The Ray worker processes running an enhance task now (Ray titles them after the task)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().startswith(b"ray::enhance-file"):
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the worker through /proc")
@pytest.mark.slow
def test_a_worker_killed_mid_file_is_retried_and_the_output_is_right(cluster, tmp_path):
    src = make_clip(tmp_path / "long.mp4", size="320x240", seconds=6, vf="noise=alls=20:allf=t")
    out = tmp_path / "ray" / "long.mkv"
    args = ["enhance", str(src), "-o", str(out), "--scale", "4", *LANCZOS, "--part-seconds", "0.5"]
    proc = subprocess.Popen([sys.executable, "-m", "enhancer", *args, "--executor", "ray", "--ray-address", cluster],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **ENV})
    manifest = out.parent / ".long.mkv.parts" / "manifest.json"
    deadline = time.time() + 120
    while time.time() < deadline and not (manifest.exists() and _task_pids()):
        time.sleep(0.1)
    killed = _task_pids()
    assert killed and manifest.exists(), "the task never got going"
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=240)
    row = _rows(stdout)["long.mp4"]
    assert proc.returncode == 0 and row["status"] == "done", stderr
    assert row["resumed"] > 0  # the retry went on after the killed worker's last finished part
    local = tmp_path / "local.mkv"
    r = run_cli(*args[:3], str(local), *args[4:])
    assert r.returncode == 0, r.stderr
    assert _frame_md5s(out) == _frame_md5s(local)


def test_a_node_that_cannot_see_the_files_says_so(tmp_path):
    from enhancer.batch.runner import Job
    from enhancer.batch.cluster import _make_one
    from enhancer.pipeline.request import ModelChoice
    from enhancer.pipeline.engine import EnhanceOptions
    from enhancer.media.encode import EncodeOptions

    res = _make_one(Job(str(tmp_path / "nowhere" / "a.mp4"), str(tmp_path / "out" / "a.mp4")), ModelChoice("lanczos"),
                    EncodeOptions(), EnhanceOptions(progress=False), str(tmp_path / "out"), None, False, False, False)
    assert res.status == "failed" and "every node must see inputs and outputs at the same path" in res.error


def test_the_local_executor_never_imports_ray(tmp_path):
    src = make_clip(tmp_path / "a.mp4", seconds=0.2, audio=False)
    code = ("import sys\nfrom enhancer.cli import main\n"
            f"sys.argv = ['enhancer', 'enhance', {str(src)!r}, '-o', {str(tmp_path / 'o.mp4')!r}, '--model', "
            "'lanczos', '-q']\ntry:\n    main()\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
            "print('ray' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert r.stdout.strip() == "False", r.stderr


def test_without_a_cluster_to_reach_it_is_one_line(tmp_path):
    src = make_clip(tmp_path / "a.mp4", seconds=0.2, audio=False)
    r = run_cli("enhance", str(src), "-o", str(tmp_path / "o.mp4"), "--model", "lanczos", "--executor", "ray",
                "--ray-address", f"127.0.0.1:{_free_port()}", env=ENV, timeout=300)
    assert r.returncode == 2 and "cannot reach the Ray cluster" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.slow
def test_a_long_file_is_made_by_a_task_per_part_and_equals_the_local_output(cluster, tmp_path):
    """Per-part tasks: with --ray-split 0.8, a 2 s clip is cut into three spans made by the two
    workers at once; the joined output is frame for frame the local executor's (the model sees
    the real frames across each cut), with its audio, and a rerun skips it."""
    (tmp_path / "in").mkdir()
    src = make_clip(tmp_path / "in" / "long.mp4", size="96x64", seconds=2, rate="25", vf="noise=alls=20:allf=t")
    args = ["--model", "general-x2", "--codec", "ffv1", "--json", "-q"]
    local = run_cli("enhance", str(src), "-o", str(tmp_path / "local"), *args)
    assert local.returncode == 0, local.stderr
    r = run_cli("enhance", str(src), "-o", str(tmp_path / "ray"), *args, "--executor", "ray", "--ray-address",
                cluster, "--ray-split", "0.8", env=ENV)
    row = _rows(r.stdout)["long.mp4"]
    assert r.returncode == 0 and row["status"] == "done" and row["frames"] == 50, r.stderr
    assert row["resumed"] == 50  # every frame came from the spans; the last task only joined them
    out = tmp_path / "ray" / "long.mkv"
    assert _frame_md5s(out) == _frame_md5s(tmp_path / "local" / "long.mkv")
    streams = subprocess.run([MAKER, "-hide_banner", "-i", str(out)], capture_output=True, text=True).stderr
    assert "Audio:" in streams
    assert not any(p.name.startswith(".long.mkv.parts") for p in out.parent.iterdir())
    again = run_cli("enhance", str(src), "-o", str(tmp_path / "ray"), *args, "--executor", "ray", "--ray-address",
                    cluster, "--ray-split", "0.8", env=ENV)
    assert _rows(again.stdout).get("long.mp4", {}).get("status") == "skipped", (again.returncode, again.stdout,
                                                                                 again.stderr)
