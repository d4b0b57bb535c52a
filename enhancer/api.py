"""The Python API: :func:`enhance` for files and folders, :class:`Enhancer` for frames in memory.

Everything here is public and re-exported by ``import enhancer``; the modules behind it are not.

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
from fractions import Fraction
from typing import Iterable, Iterator, Sequence

import numpy as np

from enhancer.errors import ArgumentError, EnhanceFailed, InputError, UsageError

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
        raise ArgumentError(f"scale must be 1, 2 or 4 (an int, as --scale takes it), not {scale!r}"[:200])


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

    ``model`` None picks the installed model for ``task`` ("web", "archive") and ``scale``:
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
    the other files were still done unless ``keep_going`` is False.
    """
    from enhancer import progress as prog
    from enhancer.batch.runner import discover, plan_jobs, reject_missing, run_batch, state_folder
    from enhancer.pipeline.engine import EnhanceOptions
    from enhancer.restore.loading import load_restorer
    from enhancer.media import ffmpeg as ff
    from enhancer.media.encode import EncodeOptions
    from enhancer.media.rates import parse_rate
    from enhancer.batch.status import FileStatus

    inputs, out = _paths(input), _path(output, "output")
    _model_and_scale(model, scale)
    if "-" in inputs or out == "-":
        raise UsageError("the Python API reads and writes files; use the CLI for stdin and stdout")
    if ffmpeg is not None or ff._tools is None:
        ff.configure(ffmpeg=ffmpeg, verbose=False)
    rate = None
    if fps is not None:
        try:
            rate = parse_rate(str(fps)) if not isinstance(fps, Fraction) else fps
        except ArgumentError as e:
            raise UsageError(f"fps: {e.reason}") from None
    found = discover(inputs, recursive=recursive, exclude=[out])
    reject_missing(found)
    jobs = plan_jobs(found, out, codec or "h264", container)
    from enhancer.media.encoder_args import check_encoder_args

    try:
        import shlex

        extra = check_encoder_args(shlex.split(encoder_args) if isinstance(encoder_args, str) else list(encoder_args))
    except (ValueError, UsageError) as e:
        raise UsageError(f"encoder_args: {e}") from None
    size = _checked_size(size)
    if deinterlace not in ("auto", "on", "off"):
        raise UsageError(f"deinterlace must be auto, on or off, not {deinterlace!r}")
    try:
        encode = EncodeOptions(codec=codec or "h264", crf=crf, preset=preset, pix_fmt=pix_fmt, audio=audio,
                               subtitles=subtitles, square_pixels=square_pixels, encoder_args=extra, size=size)
        mode = prog.mode_of(progress)
    except UsageError:  # ArgumentError included: a codec, audio mode, crf or progress setting it does not take
        raise
    except ValueError as e:
        raise UsageError(str(e)) from None
    opts = EnhanceOptions(deinterlace=deinterlace, start=start, duration=duration, chunk=chunk,
                          progress=mode != "none", part_seconds=part_seconds, fps=rate, splice=splice)
    opts.segment  # start and duration checked before any work (not once per file, as each fails)
    name = _chosen(model, task, scale)
    restorer = load_restorer(name, scale=scale, device=device, precision=precision, tile=tile, chunk=chunk,
                             temporal=temporal)
    if splice:
        from enhancer.pipeline.splice import check_request

        check_request(segment=opts.segment, preview=None, size=size, codec=codec, scale=restorer.scale,
                      deinterlace=deinterlace, output=out, pix_fmt=pix_fmt, crf=crf, api=True)
    with prog.using(mode):
        summary = run_batch(jobs, restorer, encode, opts, overwrite=overwrite, folder=state_folder(jobs, out),
                            retry_failed=retry_failed, fail_fast=not keep_going, strict=strict)
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
        from enhancer.restore.loading import load_restorer

        _model_and_scale(model, scale)
        if isinstance(model, os.PathLike):
            model = os.fspath(model)
        name = _chosen(model, task, scale)
        self._restorer = load_restorer(name, scale=scale, device=device, precision=precision, tile=tile,
                                       chunk=chunk, temporal=temporal)
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


def _chosen(model: str | None, task: str | None, scale: int | None) -> str:
    """The model to load; the note of a fallback (no model installed: lanczos) as a warning."""
    import warnings

    from enhancer.restore.loading import choose_model

    name, note = choose_model(model, task, scale)
    if note:
        warnings.warn(note, stacklevel=3)
    return name


def _checked_size(size) -> tuple[int | None, int | None] | None:
    """``size`` as (width, height), either None (from the aspect): a pair or ``"WxH"``."""
    if size is None:
        return None
    if isinstance(size, str):
        parts = size.lower().replace(":", "x").split("x")
        try:
            size = tuple(int(p) for p in parts)
        except ValueError:
            raise UsageError(f"size {size!r}: use (width, height) or 'WIDTHxHEIGHT'") from None
    if (not isinstance(size, (tuple, list)) or len(size) != 2 or all(v is None for v in size)
            or any(v is not None and (not isinstance(v, int) or isinstance(v, bool) or not 2 <= v <= 16384)
                   for v in size)):
        raise UsageError(f"size {size!r}: use (width, height), each 2 to 16384 or None (one side from the aspect)")
    return (size[0], size[1])


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


def conform_edit(edit: PathLike, media: PathLike | Sequence[PathLike], output: PathLike, *, handles: int = 12,
                 model: str | None = None, scale: int | None = None, task: str | None = None, codec: str = "prores",
                 crf: int | None = None, container: str | None = None, dry_run: bool = False,
                 overwrite: bool = False, retry_failed: bool = False, keep_going: bool = True,
                 device: str = "auto", precision: str = "auto", ffmpeg: str | None = None):
    """``enhancer conform EDIT --media DIR... -o OUTPUT``: enhance only the frames ``edit`` uses
    (plus ``handles``), one file per range into ``output``, and write the relinked edit there.
    Returns a :class:`Result` with one entry per range (``planned`` ones with ``dry_run``);
    raises :class:`UsageError` before any work, :class:`EnhanceFailed` after one range failed."""
    from enhancer import conform
    from enhancer.pipeline.engine import EnhanceOptions
    from enhancer.restore.loading import load_restorer
    from enhancer.media import ffmpeg as ff
    from enhancer.media.encode import EncodeOptions
    from enhancer.batch.status import FileStatus

    if ffmpeg is not None or ff._tools is None:
        ff.configure(ffmpeg=ffmpeg, verbose=False)
    plan = conform.plan_conform(os.fspath(edit), _paths(media), os.fspath(output), handles=handles, codec=codec,
                                container=container)
    restorer = load_restorer(_chosen(model, task, scale), scale=scale, device=device, precision=precision)
    encode, opts = EncodeOptions(codec=codec, crf=crf), EnhanceOptions(progress=False)
    if dry_run:
        return conform.dry_run(plan, restorer, encode, opts, overwrite=overwrite, retry_failed=retry_failed)
    summary = conform.run(plan, restorer, encode, opts, overwrite=overwrite, retry_failed=retry_failed,
                          fail_fast=not keep_going)
    failed = [r for r in summary.results if r.status == FileStatus.FAILED]
    if failed:
        raise EnhanceFailed(failed[0].error or "failed", result=summary)
    return summary


__all__ = ["enhance", "Enhancer", "conform_edit"]
