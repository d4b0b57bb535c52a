"""The Python API: :func:`enhance` for files and folders, :class:`Enhancer` for frames in memory.

Everything here is public (``import enhancer`` re-exports enhance, run, watch, Enhancer and
conform_edit); the modules behind it are not.

Files (the CLI's ``enhance`` for one file, or a folder; no progress bars unless asked):

>>> import enhancer
>>> result = enhancer.enhance(clip, out / "clip.mkv", model="lanczos", codec="ffv1")
>>> result.outputs == [str(out / "clip.mkv")], result.files[0].status
(True, 'done')

A second run skips what is done, as the CLI does:

>>> enhancer.enhance(clip, out / "clip.mkv", model="lanczos", codec="ffv1").files[0].status
'skipped'

Frames in memory: one enhanced frame per frame in, streamed (RGB, uint8 or uint16):

>>> import numpy as np
>>> up = enhancer.Enhancer("bicubic")
>>> frames = (np.full((90, 160, 3), k, np.uint8) for k in range(5))
>>> [f.shape for f in up.frames(frames)]  # doctest: +NORMALIZE_WHITESPACE
[(180, 320, 3), (180, 320, 3), (180, 320, 3), (180, 320, 3), (180, 320, 3)]
>>> up.image(np.zeros((90, 160, 3), np.uint8)).shape
(180, 320, 3)

Errors are :class:`EnhancerError` subclasses with a one-line message:

>>> enhancer.enhance(out / "missing.mp4", out / "x.mp4")
Traceback (most recent call last):
...
enhancer.errors.EnhanceFailed: .../missing.mp4: no such file
"""
from __future__ import annotations

import os
import sys
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

import numpy as np

from enhancer.errors import ArgumentError, EnhanceFailed, EnhancerError, InputError, RequestError, UsageError, option
from enhancer.pipeline.request import DEFAULT_SPLIT, EnhanceRequest

if TYPE_CHECKING:
    from enhancer.batch.runner import BatchSummary, FileResult

PathLike = str | os.PathLike


def _paths(value: PathLike | Sequence[PathLike]) -> list[str]:
    if isinstance(value, (str, os.PathLike)):
        return [_path(value, "input")]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, (str, os.PathLike)) for v in value):
        raise ArgumentError(f"input must be a path or a list of paths, not {value!r}"[:200])
    return [_path(v, "input") for v in value]


def _path(value, what: str) -> str:
    """A path argument as text, or :class:`ArgumentError` for what no file system takes."""
    if not isinstance(value, (str, os.PathLike)):
        raise ArgumentError(f"{what} must be a path, not {value!r}"[:200])
    text = os.fspath(value)
    if not isinstance(text, str):
        raise ArgumentError(f"{what} must be a text path, not bytes ({text!r})"[:200])
    if "\0" in text:
        raise ArgumentError(f"{what} {text!r} holds a NUL byte, which no file name can"[:200])
    return text


def _model_and_scale(model, scale) -> None:
    """The model and scale arguments as the CLI takes them: a name or path, and 1, 2 or 4."""
    if model is not None and not isinstance(model, (str, os.PathLike)):
        raise ArgumentError(f"model must be a name or a path, not {model!r}"[:200])
    if isinstance(model, os.PathLike):
        _path(model, "model")
    if scale is not None and (isinstance(scale, bool) or scale not in (1, 2, 4) or not isinstance(scale, int)):
        raise ArgumentError(f"scale must be 1, 2 or 4 (an int), not {scale!r}"[:200])


def run(request: EnhanceRequest, *, on_result: Callable[[FileResult], None] | None = None,
        on_note: Callable[[str], None] | None = None) -> BatchSummary:
    """Run one :class:`~enhancer.pipeline.request.EnhanceRequest`: the one place the pipeline is
    assembled (find the inputs, name the outputs, load the model, check what cannot go
    together, then run the batch here or on Ray, or only plan it with ``dry_run``).

    ``on_result`` sees each file's result as it is made; ``on_note`` each note for the user
    (default: a warning). An error before any work is raised with ``before_work`` set on it;
    a failed file is a result, not an error."""
    try:
        req, restorer, jobs, found, tools = _prepare(request, on_note)
    except EnhancerError as e:
        e.before_work = True
        raise
    return _execute(req, restorer, jobs, found, tools, on_result)


def _prepare(request: EnhanceRequest, on_note):
    from enhancer.batch.runner import discover, plan_jobs, reject_missing
    from enhancer.media import ffmpeg as ff

    req = request.check()
    tools = _tools(req)
    if "-" in req.inputs and sys.stdin.isatty():
        raise RequestError("inputs", "- reads a video from stdin; pipe one in")
    found = discover(req.inputs, recursive=req.recursive, exclude=[req.output] if req.output != "-" else [])
    reject_missing(found)
    jobs = plan_jobs(found, req.output, req.encode.codec or "h264", req.encode.container,
                     preview=req.processing.preview is not None)
    if req.report:
        from enhancer.batch.naming import preview_path
        from enhancer.batch.runner import check_report_path

        check_report_path(req.report, [src for src, _ in found],
                          [str(preview_path(j.output)) if req.processing.preview is not None else j.output
                           for j in jobs])
    if req.processing.fps is not None:
        from enhancer.media.sequence import is_image_sequence

        if not any(src != "-" and is_image_sequence(src) for src, _ in found):
            raise RequestError("fps", "sets the rate of image-sequence inputs, and no input is one (videos keep "
                                      "their own timing)")
    choice, note = req.model.resolved()
    if note:
        (on_note or _warn)(note)
    req = replace(req, model=choice)
    restorer = choice.load()
    if req.processing.splice:
        req.check_splice(restorer.scale)
    return req, restorer, jobs, found, tools


def _execute(req: EnhanceRequest, restorer, jobs, found, tools, on_result) -> BatchSummary:
    from enhancer import progress as prog
    from enhancer.batch.runner import Job, plan_batch, run_batch, spool_stdin, state_folder, write_report

    encode, opts = req.encode.options(), req.processing_options()
    b = req.batch
    folder = state_folder(jobs, req.output)
    if b.dry_run:  # the same decisions as a real run (state file, existing outputs), nothing written
        return plan_batch(jobs, restorer, encode, opts, overwrite=b.overwrite, folder=folder,
                          retry_failed=b.retry_failed, strict=b.strict)
    spooled = None
    try:
        with prog.using(req.progress):
            if req.executor.kind == "ray":
                from enhancer.batch.cluster import run_batch_ray

                summary = run_batch_ray(
                    jobs, req.model, encode, opts, address=req.executor.address, folder=folder,
                    ffmpeg=req.ffmpeg or os.environ.get("ENHANCER_FFMPEG"),  # the same on every node
                    overwrite=b.overwrite, retry_failed=b.retry_failed, strict=b.strict,
                    parameters=_parameters(restorer),
                    split=req.executor.split if req.executor.split is not None else DEFAULT_SPLIT,
                    on_result=on_result)
            else:
                if req.inputs == ("-",):
                    spooled = spool_stdin()
                    jobs = [Job(spooled, req.output if req.output == "-" else jobs[0].output, display="-")]
                summary = run_batch(jobs, restorer, encode, opts, overwrite=b.overwrite, verbose=req.verbose,
                                    folder=folder, retry_failed=b.retry_failed, fail_fast=b.fail_fast,
                                    strict=b.strict, on_result=on_result)
    finally:
        if spooled:
            Path(spooled).unlink(missing_ok=True)
    if req.report:
        summary.report_written = write_report(req.report, {**summary.to_dict(), "ffmpeg": tools.describe()})
    return summary


def watch(request: EnhanceRequest, *, settle: float = 5.0, interval: float = 2.0, once: bool = False,
          on_result: Callable[[FileResult], None] | None = None, on_start: Callable[[object], None] | None = None,
          on_note: Callable[[str], None] | None = None, status: dict | None = None) -> int:
    """Enhance videos as they arrive in the request's inputs (folders) into its output folder,
    with the request's model, encoding and policy; ``once``: what is there, then return. Returns
    the number of files that failed; KeyboardInterrupt propagates (the file in progress is
    cleaned up first). ``on_start`` sees the loaded restorer before the first look."""
    from enhancer.batch.watch import watch as watch_folders

    try:
        req = request.check()
        _tools(req)
        for folder in req.inputs:
            if not os.path.isdir(folder):
                raise RequestError("inputs", "not a folder (watch takes folders to watch; use enhance for files)",
                                   path=folder)
        if Path(req.output).exists() and not Path(req.output).is_dir():
            raise RequestError("output", "is a file; watch writes into a folder", path=req.output)
        for folder in req.inputs:
            if os.path.abspath(folder) == os.path.abspath(req.output):
                raise RequestError("output", "the output folder is the watched folder; give another",
                                   path=req.output)
        choice, note = req.model.resolved()
        if note:
            (on_note or _warn)(note)
        restorer = choice.load()
    except EnhancerError as e:
        e.before_work = True
        raise
    if on_start:
        on_start(restorer)
    from enhancer import progress as prog

    with prog.using(req.progress):
        return watch_folders(list(req.inputs), req.output, restorer, req.encode.options(), req.processing_options(),
                             container=req.encode.container, recursive=req.recursive, settle=settle,
                             interval=interval, once=once, strict=req.batch.strict, verbose=req.verbose,
                             status=status, retry_failed=req.batch.retry_failed, on_result=on_result)


def _tools(req: EnhanceRequest):
    """The ffmpeg the request names (or the one chosen already); with ``verbose``, which one, logged."""
    from enhancer.media import ffmpeg as ff

    tools = ff.configure(ffmpeg=req.ffmpeg, verbose=req.verbose) if req.ffmpeg or ff._tools is None else ff.tools()
    if req.verbose:
        import logging

        logging.getLogger("enhancer").info(tools.line())
    return tools


def _parameters(restorer) -> int | None:
    """A model's parameter count (what a Ray task reserves of a GPU), None for classical methods."""
    net = getattr(restorer, "model", None)
    return sum(p.numel() for p in net.parameters()) if net is not None else None


def _warn(note: str) -> None:
    import warnings

    warnings.warn(note, stacklevel=4)


def enhance(input: PathLike | Sequence[PathLike], output: PathLike, *, model: str | None = None,
            scale: int | None = None, task: str | None = None, codec: str | None = None, crf: int | None = None,
            preset: str | None = None, pix_fmt: str | None = None, container: str | None = None,
            audio: str = "copy", subtitles: bool = True, square_pixels: bool = False,
            encoder_args: str | Sequence[str] = (), size: tuple[int | None, int | None] | None = None,
            start: float | None = None, duration: float | None = None, splice: bool = False, deinterlace: str = "auto",
            fps: float | str | Fraction | None = None, recursive: bool = False, overwrite: bool = False,
            retry_failed: bool = False, keep_going: bool = True, strict: bool = False,
            part_seconds: float = 120.0, device: str = "auto", precision: str = "auto",
            tile: int | str = "auto", chunk: int | None = None, ffmpeg: str | None = None,
            progress: bool | str = False, temporal: int | str = "auto"):
    """Enhance ``input`` (a video, an image-sequence folder, a folder of videos, or a list of
    them) into ``output`` (a file for one input, else a folder that mirrors the inputs' tree),
    with the CLI's semantics: ``enhancer enhance INPUT -o OUTPUT`` and the same option names.

    ``model`` None picks the installed model for ``task`` ("web", "archive", "clean") and ``scale``:
    general-x2 by default; a path to a file of the field's models (.pth, .pt, .ckpt, .safetensors,
    .onnx) runs it frame by frame, with the temporal-consistency stage unless ``temporal`` is
    "off" (``temporal``: "auto", "on" for any per-frame model, "off", or a radius of 1 to 4 frames
    in place of "on"). ``codec`` None is h264 (with ``splice`` and a model of scale 1: the
    source's codec where the rest of the file can be copied, else a lossless one). ``progress``
    False (the default) shows nothing; True shows bars on a terminal; "json" writes JSON
    progress lines to stderr.

    Returns a :class:`Result` (``.files``, ``.outputs``, ``.frames``, ``.seconds``). Raises
    :class:`UsageError` before any work for what cannot run as asked (unknown model, names that
    collide), and :class:`EnhanceFailed` (with ``.result``) after the batch when any file failed;
    the other files were still done unless ``keep_going`` is False. The same run as a request:
    :func:`run` (``EnhanceRequest.of(input, output, **options)``).
    """
    from enhancer.batch.status import FileStatus

    inputs, out = _paths(input), _path(output, "output")
    _model_and_scale(model, scale)
    if "-" in inputs or out == "-":
        raise UsageError("the Python API reads and writes files; use the CLI for stdin and stdout")
    request = EnhanceRequest.of(
        inputs, out, model=os.fspath(model) if model is not None else None, scale=scale, task=task, codec=codec,
        crf=crf, preset=preset, pix_fmt=pix_fmt, container=container, audio=audio, subtitles=subtitles,
        square_pixels=square_pixels, encoder_args=encoder_args, size=size, start=start, duration=duration,
        splice=splice, deinterlace=deinterlace, fps=fps, recursive=recursive, overwrite=overwrite,
        retry_failed=retry_failed, fail_fast=not keep_going, strict=strict, part_seconds=part_seconds,
        device=device, precision=precision, tile=tile, chunk=chunk, ffmpeg=ffmpeg, temporal=temporal,
        progress=progress if progress is not True else "bar")
    summary = run(request)
    failed = [r for r in summary.results if r.status == FileStatus.FAILED]
    if failed:
        first = failed[0].error or "failed"
        more = f" (and {len(failed) - 1} more failed)" if len(failed) > 1 else ""
        raise EnhanceFailed(first + more, result=summary)
    return summary


class Enhancer:
    """A model (or a classical method) for frames held in memory.

    ``model``: a shipped model name (``enhancer models``), a .safetensors path, a file of the
    field's models (.pth, .pt, .ckpt, .safetensors, .onnx; ``temporal`` as :func:`enhance`), or lanczos |
    bicubic | bilinear | nearest; None picks the installed model for ``task`` and ``scale`` as
    :func:`enhance` does. Frames are RGB arrays (H, W, 3), uint8 or uint16 (16-bit sources keep
    their depth); OpenCV's BGR frames must be converted first (``frame[..., ::-1]``)."""

    def __init__(self, model: str | None = None, *, scale: int | None = None, task: str | None = None,
                 device: str = "auto", precision: str = "auto", tile: int | str = "auto", chunk: int | None = None,
                 temporal: int | str = "auto"):
        from enhancer.pipeline.request import ModelChoice

        _model_and_scale(model, scale)
        if isinstance(model, os.PathLike):
            model = os.fspath(model)
        choice, note = ModelChoice(model=model, task=task, scale=scale, device=device, precision=precision,
                                   tile=tile, chunk=chunk, temporal=temporal).check().resolved()
        if note:
            _warn(note)
        self._restorer = choice.load()
        self._chunk = chunk

    @property
    def scale(self) -> int:
        """Output size / input size."""
        return self._restorer.scale

    @property
    def name(self) -> str:
        return self._restorer.name

    @property
    def model_card(self) -> dict:
        """The model's card (name, task, scale, training, measured figures); {} for classical methods."""
        return dict(getattr(self._restorer, "card", {}) or {})

    @property
    def context(self) -> int:
        """Frames of context the model reads on each side of a frame (0: frame by frame)."""
        return self._restorer.margin

    def frames(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """One enhanced frame per frame in, in order, streamed: at most a few windows of frames
        are held. The ends of the stream are handled as the CLI handles a video's ends (context
        mirrored), so any length works, one frame included. All frames must share one shape and
        dtype."""
        if isinstance(frames, np.ndarray) and frames.ndim == 3 or not hasattr(frames, "__iter__"):
            raise ArgumentError(f"frames must be an iterable of (H, W, 3) arrays (a list, a generator, an (N, H, W, 3) "
                                f"array), not {type(frames).__name__}" + (" (one frame: use .image)"
                                                                          if isinstance(frames, np.ndarray) else ""))
        return self._frames(frames)

    def _frames(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        from enhancer.restore.restorer import planned_chunk
        from enhancer.media.reader import Frame, windows

        restorer = self._restorer
        first: dict = {}

        def checked() -> Iterator[Frame]:
            for k, image in enumerate(frames):
                image = _as_frame(image, k)
                if not first:
                    first.update(shape=image.shape, dtype=image.dtype)
                elif image.shape != first["shape"] or image.dtype != first["dtype"]:
                    raise InputError(f"frame {k} is {_describe(image)}, frame 0 was "
                                     f"{_describe_as(first['shape'], first['dtype'])}",
                                     hint="every frame of one stream must share its size and dtype")
                yield Frame(index=k, pts=k, time_base=Fraction(1), image=image)

        stream = checked()
        head = next(stream, None)
        if head is None:
            return
        chunk = planned_chunk(restorer, *head.image.shape[:2], requested=self._chunk)

        def again() -> Iterator[Frame]:
            yield head
            yield from stream

        for window in windows(again(), restorer.margin, chunk):
            out = restorer.restore(np.stack(window.images))
            yield from out

    def image(self, image: np.ndarray) -> np.ndarray:
        """One still: the model sees it as a one-frame video."""
        return next(self.frames([image]))

    def __repr__(self) -> str:
        return f"Enhancer({self.name!r}, scale={self.scale})"


def _describe_as(shape, dtype) -> str:
    return f"{'x'.join(map(str, shape))} {np.dtype(dtype).name}"


def _describe(a: np.ndarray) -> str:
    return _describe_as(a.shape, a.dtype)


def _as_frame(image, k: int) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise InputError(f"frame {k} is a {type(image).__name__}, not a numpy array",
                         hint="give (H, W, 3) uint8 or uint16 RGB arrays")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype not in (np.uint8, np.uint16):
        raise InputError(f"frame {k} is {_describe(image)}", hint="give (H, W, 3) uint8 or uint16 RGB arrays")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise InputError(f"frame {k} is {_describe(image)}: too small", hint="frames need at least 2x2 pixels")
    return np.ascontiguousarray(image)


def conform(request: EnhanceRequest, edit: PathLike, *, handles: int = 12,
            on_result: Callable[[FileResult], None] | None = None, on_note: Callable[[str], None] | None = None,
            on_plan: Callable[[object], None] | None = None):
    """Enhance only the frames ``edit`` uses (plus ``handles``) from the media folders that are the
    request's inputs, one file per range into its output folder, with its model, encoding, policy
    and executor; the relinked edit is written there once every range is made. Returns
    ``(plan, summary)``: ``plan.relinked`` names the edit, ``summary`` has one result per range
    (``planned`` with ``dry_run``); ``on_plan`` sees the plan before any work (the codec defaults to
    prores, for editing applications). An error before any work is raised with ``before_work`` set."""
    from enhancer import conform as conforming

    try:
        req = request.check()
        req = replace(req, encode=replace(req.encode, codec=req.encode.codec or "prores"))
        tools = _tools(req)
        plan = conforming.plan_conform(_path(edit, "edit"), list(req.inputs), req.output, handles=handles,
                                       codec=req.encode.codec, container=req.encode.container)
        if on_plan:
            on_plan(plan)
        if req.report:
            from enhancer.batch.runner import check_report_path

            check_report_path(req.report, [os.fspath(edit)] + [r.media.path for r in plan.ranges])
        choice, note = req.model.resolved()
        if note:
            (on_note or _warn)(note)
        req = replace(req, model=choice)
        restorer = choice.load()
    except EnhancerError as e:
        e.before_work = True
        raise
    encode, opts, b = req.encode.options(), req.processing_options(), req.batch
    if b.dry_run:
        return plan, conforming.dry_run(plan, restorer, encode, opts, overwrite=b.overwrite,
                                        retry_failed=b.retry_failed, strict=b.strict)
    ray = None
    if req.executor.kind == "ray":
        from enhancer.batch.cluster import run_batch_ray

        def ray(jobs, each):
            return run_batch_ray(jobs, req.model, encode, each, address=req.executor.address, folder=Path(req.output),
                                 ffmpeg=req.ffmpeg or os.environ.get("ENHANCER_FFMPEG"), overwrite=b.overwrite,
                                 retry_failed=b.retry_failed, strict=b.strict, parameters=_parameters(restorer),
                                 split=req.executor.split if req.executor.split is not None else DEFAULT_SPLIT,
                                 on_result=on_result)
    from enhancer import progress as prog

    with prog.using(req.progress):
        summary = conforming.run(plan, restorer, encode, opts, overwrite=b.overwrite, verbose=req.verbose,
                                 retry_failed=b.retry_failed, fail_fast=b.fail_fast, strict=b.strict,
                                 on_result=on_result, executor=ray)
    if req.report:
        from enhancer.batch.runner import write_report

        summary.report_written = write_report(req.report, {**summary.to_dict(), "ffmpeg": tools.describe(),
                                                           "relinked": plan.relinked if conforming.complete(summary)
                                                           else None})
    return plan, summary


def conform_edit(edit: PathLike, media: PathLike | Sequence[PathLike], output: PathLike, *, handles: int = 12,
                 model: str | None = None, scale: int | None = None, task: str | None = None, codec: str = "prores",
                 crf: int | None = None, container: str | None = None, dry_run: bool = False,
                 overwrite: bool = False, retry_failed: bool = False, keep_going: bool = True,
                 device: str = "auto", precision: str = "auto", ffmpeg: str | None = None):
    """``enhancer conform EDIT --media DIR... -o OUTPUT``: enhance only the frames ``edit`` uses
    (plus ``handles``), one file per range into ``output``, and write the relinked edit there.
    Returns a :class:`Result` with one entry per range (``planned`` ones with ``dry_run``);
    raises :class:`UsageError` before any work, :class:`EnhanceFailed` after one range failed."""
    from enhancer.batch.status import FileStatus

    _model_and_scale(model, scale)
    request = EnhanceRequest.of(_paths(media), _path(output, "output"), model=model, scale=scale, task=task,
                                codec=codec, crf=crf, container=container, dry_run=dry_run, overwrite=overwrite,
                                retry_failed=retry_failed, fail_fast=not keep_going, device=device,
                                precision=precision, ffmpeg=ffmpeg)
    _, summary = conform(request, edit, handles=handles)
    failed = [r for r in summary.results if r.status == FileStatus.FAILED]
    if failed and not dry_run:
        raise EnhanceFailed(failed[0].error or "failed", result=summary)
    return summary


__all__ = ["enhance", "run", "watch", "conform", "EnhanceRequest", "Enhancer", "conform_edit"]
