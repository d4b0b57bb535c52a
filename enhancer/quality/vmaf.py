"""VMAF: ffmpeg's libvmaf on two files in one ffmpeg pass, after or beside the other metrics."""
from __future__ import annotations

import itertools
import json
import os
import tempfile
import threading
from pathlib import Path

from enhancer.errors import EnhancerError, option
from enhancer.media import ffmpeg as ff
from enhancer.quality.clips import frames


def _as_video(path: str, tmpdir: str) -> str:
    """A video file for ffmpeg: image folders are packed losslessly (FFV1) first."""
    if not Path(path).is_dir():
        return path
    import subprocess

    it = frames(path)
    first = next(it)
    h, w = first.shape[:2]
    out = str(Path(tmpdir) / (Path(path).name + ".mkv"))
    proc = ff.Process([ff.tools().ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo",
                       "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", "25", "-i", "pipe:0", "-c:v", "ffv1",
                       "-pix_fmt", "gbrp", ff.file_arg(out)], stdin=subprocess.PIPE, path=path,
                      what="packing images failed")
    proc.feed(itertools.chain([first], it))
    return out


def vmaf_ffmpeg(candidate: str) -> str:
    """The ffmpeg that measures VMAF: the configured one where it has libvmaf, else the bundled
    one (Debian's ffmpeg 5.1, for one, is built without libvmaf)."""
    exe = ff.with_filter("libvmaf")
    if exe is None:
        t = ff.tools()
        raise EnhancerError(f"VMAF needs ffmpeg's libvmaf filter, which ffmpeg {t.version_text} ({t.ffmpeg}) lacks",
                            path=candidate, hint=f"leave vmaf out of {option('metrics')}, or pip install imageio-ffmpeg (its "
                                                 "ffmpeg has libvmaf)")
    return exe


def vmaf(reference: str, candidate: str, threads: int = 0, *, reference_resize: str = "",
         candidate_resize: str = "", progress: bool = False, total: int | None = None,
         seen: list[int] | None = None, cancel: threading.Event | None = None) -> list[float]:
    """Per-frame VMAF of ``candidate`` against ``reference`` with ffmpeg's libvmaf. A ``*_resize``
    is a scale filter (``scale=352:288:flags=lanczos,``) that brings one to the other's size.
    ``progress`` shows a bar over ``total`` frames, fed by ffmpeg's own progress report; ``seen[0]``
    (where given) follows the same count, for a bar drawn elsewhere; ``cancel`` set stops ffmpeg
    (the call then raises :class:`Cancelled`)."""
    import subprocess

    from enhancer.progress import bar

    exe = vmaf_ffmpeg(candidate)
    with tempfile.TemporaryDirectory() as tmp:
        log = str(Path(tmp) / "vmaf.json")
        dist, ref = _as_video(candidate, tmp), _as_video(reference, tmp)
        n = threads or (os.cpu_count() or 1)
        # libvmaf pairs frames by timestamp: give both inputs one clock (1/25 s) and frame k the
        # time k on it, whatever their containers' time bases and start times (an MKV at 1/1000
        # against an MP4 at 1/12800 would otherwise pair the wrong frames)
        frame_clock = "settb=1/25,setpts=N"
        graph = (f"[0:v]{candidate_resize}format=yuv444p,{frame_clock}[d];"
                 f"[1:v]{reference_resize}format=yuv444p,{frame_clock}[r];"
                 f"[d][r]libvmaf=log_fmt=json:log_path={log}:n_threads={n}")
        proc = ff.Process([exe, "-hide_banner", "-nostdin", "-loglevel", "error", "-nostats", "-progress", "pipe:1",
                           "-i", ff.file_arg(dist), "-i", ff.file_arg(ref), "-lavfi", graph, "-f", "null", "-"],
                          stdout=subprocess.PIPE, path=candidate, what="VMAF failed")
        try:
            with bar(total=total, desc="VMAF", unit="frame", enabled=progress) as b:
                for line in iter(proc.stdout.readline, b""):  # key=value lines, a block every half second
                    if cancel is not None and cancel.is_set():
                        raise Cancelled("VMAF cancelled")
                    if line.startswith(b"frame=") and line[6:].strip().isdigit():
                        done = int(line[6:])
                        b.update(done - b.n)
                        if seen is not None:
                            seen[0] = done
            proc.check()
        finally:
            proc.kill()  # where the caller was interrupted; a no-op after the exit
        data = json.loads(Path(log).read_text())
    return [float(fr["metrics"]["vmaf"]) for fr in data["frames"]]


class Cancelled(Exception):
    """A metric's pass stopped because the evaluation it belonged to failed first."""


class VmafBeside:
    """VMAF's own ffmpeg pass, run beside the frame-by-frame metrics rather than after them (it
    reads the files itself; on a machine with a core to spare the wall time is the longer of the
    two, not their sum)."""

    def __init__(self, reference: str, candidate: str, resized: tuple[str, str, int, int] | None):
        which, how, w, h = resized or ("", "", 0, 0)
        scale = f"scale={w}:{h}:flags={how}," if resized else ""
        self.seen = [0]
        self.cancel = threading.Event()
        self.result: list[float] | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="vmaf", daemon=True, args=(
            reference, candidate, scale if which == "reference" else "", scale if which == "candidate" else ""))
        self._thread.start()

    def _run(self, reference: str, candidate: str, reference_resize: str, candidate_resize: str) -> None:
        try:
            self.result = vmaf(reference, candidate, reference_resize=reference_resize,
                               candidate_resize=candidate_resize, seen=self.seen, cancel=self.cancel)
        except BaseException as e:  # noqa: BLE001  (given back to the caller's thread by wait())
            self.error = e

    def wait(self, progress: bool, total: int) -> list[float]:
        """VMAF's per-frame values once its pass ends, with a bar meanwhile where it is still running."""
        from enhancer.progress import bar

        if self._thread.is_alive():
            with bar(total=total, desc="VMAF", unit="frame", enabled=progress, initial=self.seen[0]) as b:
                while self._thread.is_alive():
                    self._thread.join(0.25)
                    b.update(self.seen[0] - b.n)
        if self.error is not None:
            raise self.error
        return self.result

    def stop(self) -> None:
        self.cancel.set()
        self._thread.join(10)
