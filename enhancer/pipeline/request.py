"""One typed request for ``enhance`` (and ``watch``, ``conform`` and Ray): what it reads and writes,
the model, the encoding, what is read of each input, the batch's policy and where it runs.

:meth:`EnhanceRequest.check` holds every validation of the request itself, in one place, before
any work; what needs the inputs' content (an ``fps`` for image sequences only, a report path that
must not name an output) is checked by :func:`enhancer.api.run` before any work too. An error is a
:class:`~enhancer.errors.RequestError` naming the field; the command line shows its flag.
"""
from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field, fields, replace
from fractions import Fraction
from pathlib import Path

from enhancer.errors import ArgumentError, EnhancerError, RequestError, UsageError, option

TASKS = ("web", "archive", "clean")
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
CONTAINERS = ("mp4", "mkv", "mov")
DEINTERLACE = ("auto", "on", "off")
EXECUTORS = ("local", "ray")
DEFAULT_SPLIT = 600.0  # seconds: a file longer than this is made by several Ray tasks, one per span


@dataclass(frozen=True)
class ModelChoice:
    """Which model, and how it runs: what a Ray worker loads, too."""

    model: str | None = None  # a shipped name, a path (enhancer's card or the field's file) or a classical method
    task: str | None = None  # web | archive: picks the installed model where ``model`` is None
    scale: int | None = None  # 1, 2 or 4 (None: the model's own)
    device: str = "auto"
    precision: str = "auto"
    tile: int | str = "auto"  # pixels, 0 (whole frames) or auto
    chunk: int | None = None  # core frames per model call
    temporal: int | str = "auto"  # auto | on | off | a radius in frames (the field's per-frame models)

    def check(self) -> ModelChoice:
        from enhancer.restore.loading import parse_temporal, parse_tile

        model = self.model
        if model is not None:
            model = _text(model, "model")
        if self.scale is not None and (isinstance(self.scale, bool) or self.scale not in (1, 2, 4)
                                       or not isinstance(self.scale, int)):
            raise RequestError("scale", f"scale must be 1, 2 or 4, not {self.scale!r}"[:200])
        if self.task is not None and self.task not in TASKS:
            raise RequestError("task", f"task must be web or archive, not {self.task!r}"[:200])
        if not isinstance(self.device, str) or not self.device:
            raise RequestError("device", f"device must be auto, cpu, cuda or cuda:N, not {self.device!r}"[:200])
        if self.precision not in PRECISIONS:
            raise RequestError("precision", f"precision must be one of {', '.join(PRECISIONS)}, not "
                                            f"{self.precision!r}"[:200])
        try:
            tile = parse_tile(self.tile)
        except UsageError as e:
            raise RequestError("tile", e.reason) from None
        try:
            parse_temporal(self.temporal)
        except UsageError as e:
            raise RequestError("temporal", e.reason) from None
        if self.chunk is not None and (isinstance(self.chunk, bool) or not isinstance(self.chunk, int)
                                       or not 1 <= self.chunk <= 1024):
            raise RequestError("chunk", f"chunk must be 1 to 1024 frames, not {self.chunk!r}"[:200])
        return replace(self, model=model, tile=tile)

    def resolved(self) -> tuple[ModelChoice, str | None]:
        """The model named, else the installed one for ``task`` and ``scale``; and a note for the
        user where none is installed (lanczos then)."""
        from enhancer.restore.loading import choose_model

        name, note = choose_model(self.model, self.task, self.scale)
        return replace(self, model=name), note

    def load(self):
        """The ready :class:`~enhancer.restore.restorer.Restorer` (``model`` resolved first)."""
        from enhancer.restore.loading import load_restorer

        return load_restorer(self.model, scale=self.scale, device=self.device, precision=self.precision,
                             tile=self.tile, chunk=self.chunk, temporal=self.temporal)


@dataclass(frozen=True)
class EncodeChoice:
    """How the output is encoded (see :class:`~enhancer.media.muxer.EncodeOptions`)."""

    codec: str | None = None  # None: h264 (with splice, "not given": the source's codec where it can be kept)
    crf: int | None = None
    preset: str | None = None
    pix_fmt: str | None = None
    container: str | None = None  # mp4 | mkv | mov for folder outputs (None: the input's, else mp4)
    audio: str = "copy"  # copy | aac | none
    subtitles: bool = True
    square_pixels: bool = False
    encoder_args: tuple[str, ...] | str = ()
    size: tuple[int | None, int | None] | str | None = None  # (width, height), either None: from the aspect

    def check(self) -> EncodeChoice:
        from enhancer.media.encode import CODECS
        from enhancer.media.encoder_args import check_encoder_args

        if self.codec is not None and self.codec not in CODECS:
            raise RequestError("codec", f"codec must be one of {', '.join(CODECS)}, not {self.codec!r}"[:200])
        if self.container is not None and self.container not in CONTAINERS:
            raise RequestError("container", f"container must be mp4, mkv or mov, not {self.container!r}"[:200])
        if self.audio not in ("copy", "aac", "none"):
            raise RequestError("audio", f"audio must be copy, aac or none, not {self.audio!r}"[:200])
        if self.preset is not None and (not isinstance(self.preset, str) or not self.preset):
            raise RequestError("preset", f"preset must be an x264/x265 preset name, not {self.preset!r}"[:200])
        args = self.encoder_args
        try:
            if isinstance(args, str):
                args = shlex.split(args)
            elif not isinstance(args, (list, tuple)) or not all(isinstance(a, str) for a in args):
                raise RequestError("encoder_args", "give a string of options or a list of strings")
            args = check_encoder_args(list(args))
        except RequestError:
            raise
        except (ValueError, EnhancerError) as e:  # shlex's quoting errors, and the options' own
            raise RequestError("encoder_args", str(e)) from None
        checked = replace(self, encoder_args=tuple(args), size=parse_size(self.size))
        try:
            checked.options()  # the crf against the codec's range
        except (ArgumentError, ValueError) as e:
            raise RequestError("crf", getattr(e, "reason", str(e))) from None
        return checked

    def options(self):
        from enhancer.media.encode import EncodeOptions

        return EncodeOptions(codec=self.codec or "h264", crf=self.crf, preset=self.preset, pix_fmt=self.pix_fmt,
                             audio=self.audio, subtitles=self.subtitles, square_pixels=self.square_pixels,
                             encoder_args=tuple(self.encoder_args), size=self.size)


@dataclass(frozen=True)
class Processing:
    """What is read of each input and how: the segment, deinterlacing, the rate of image
    sequences, splice, preview and the length of resumable parts."""

    start: float | str | None = None  # seconds, or [HH:]MM:SS(.ms)
    duration: float | str | None = None
    deinterlace: str = "auto"
    fps: Fraction | float | str | None = None  # image-sequence inputs only
    splice: bool = False
    preview: float | None = None  # seconds: a before/after comparison only
    part_seconds: float = 120.0

    def check(self) -> Processing:
        from enhancer.media.rates import parse_rate

        start, duration = seconds(self.start, "start"), seconds(self.duration, "duration")
        if duration is not None and duration <= 0:
            raise RequestError("duration", "must be more than 0")
        if self.deinterlace not in DEINTERLACE:
            raise RequestError("deinterlace", f"deinterlace must be auto, on or off, not {self.deinterlace!r}"[:200])
        fps = self.fps
        if fps is not None and not isinstance(fps, Fraction):
            try:
                fps = parse_rate(str(fps))
            except ArgumentError as e:
                raise RequestError("fps", e.reason) from None
        if self.preview is not None and (not isinstance(self.preview, (int, float)) or not self.preview > 0):
            raise RequestError("preview", "must be more than 0 seconds")
        if (not isinstance(self.part_seconds, (int, float)) or isinstance(self.part_seconds, bool)
                or not self.part_seconds >= 0.1):
            raise RequestError("part_seconds", f"part_seconds must be 0.1 or more, not {self.part_seconds!r}"[:200])
        return replace(self, start=start, duration=duration, fps=fps)


@dataclass(frozen=True)
class BatchPolicy:
    """What a batch does about outputs already there, earlier failures and this run's own."""

    overwrite: bool = False  # make outputs again that an earlier run made (never replaces what it did not write)
    retry_failed: bool = False  # try again inputs recorded as failed
    strict: bool = False  # an input with fewer frames than announced fails instead of a warning
    fail_fast: bool = False  # stop at the first failure
    dry_run: bool = False  # decide as a run would, do nothing


@dataclass(frozen=True)
class Executor:
    """Where the batch runs: here, or as Ray tasks (``address`` None: a local Ray instance)."""

    kind: str = "local"
    address: str | None = None
    split: float | None = None  # seconds: longer files as a task per span (None: DEFAULT_SPLIT; 0: never)

    def check(self) -> Executor:
        if self.kind not in EXECUTORS:
            raise RequestError("executor", f"executor must be local or ray, not {self.kind!r}"[:200])
        if self.kind != "ray":  # Ray's settings mean nothing to a local run: say so rather than ignore them
            for name, value in (("ray_address", self.address), ("ray_split", self.split)):
                if value is not None:
                    raise RequestError(name, f"{option(name)} is for {option('executor', 'ray')}")
        if self.split is not None and (isinstance(self.split, bool) or not isinstance(self.split, (int, float))
                                       or self.split < 0):
            raise RequestError("ray_split", f"ray_split must be 0 or more seconds, not {self.split!r}"[:200])
        return self


# the request's flat keyword names (as enhancer.enhance and the command line take them) -> (group, field)
FLAT: dict[str, tuple[str | None, str]] = {
    **{f.name: ("model", f.name) for f in fields(ModelChoice)},
    **{f.name: ("encode", f.name) for f in fields(EncodeChoice)},
    **{f.name: ("processing", f.name) for f in fields(Processing)},
    **{f.name: ("batch", f.name) for f in fields(BatchPolicy)},
    "executor": ("executor", "kind"), "ray_address": ("executor", "address"), "ray_split": ("executor", "split"),
    "recursive": (None, "recursive"), "report": (None, "report"), "ffmpeg": (None, "ffmpeg"),
    "progress": (None, "progress"), "verbose": (None, "verbose"),
}


@dataclass(frozen=True)
class EnhanceRequest:
    """Everything one ``enhance`` is asked to do. Build it with :meth:`of` from the flat keyword
    names (``EnhanceRequest.of(["a.mp4"], "out", tile=256, overwrite=True)``), check it with
    :meth:`check`, run it with :func:`enhancer.api.run`."""

    inputs: tuple[str, ...]
    output: str
    recursive: bool = False
    model: ModelChoice = field(default_factory=ModelChoice)
    encode: EncodeChoice = field(default_factory=EncodeChoice)
    processing: Processing = field(default_factory=Processing)
    batch: BatchPolicy = field(default_factory=BatchPolicy)
    executor: Executor = field(default_factory=Executor)
    report: str | None = None  # a JSON summary of the batch, written here
    ffmpeg: str | None = None  # the ffmpeg binary (None: ENHANCER_FFMPEG, PATH, then the bundled one)
    progress: str = "none"  # bar | json | none
    verbose: bool = False  # log every ffmpeg command

    @classmethod
    def of(cls, inputs, output, **flat) -> EnhanceRequest:
        """A request from flat keyword names (those of :func:`enhancer.enhance`)."""
        groups: dict[str | None, dict] = {}
        for name, value in flat.items():
            if name not in FLAT:
                raise ArgumentError(f"EnhanceRequest has no option {name!r}")
            group, key = FLAT[name]
            groups.setdefault(group, {})[key] = value
        kinds = {"model": ModelChoice, "encode": EncodeChoice, "processing": Processing, "batch": BatchPolicy,
                 "executor": Executor}
        parts = {g: kinds[g](**kw) for g, kw in groups.items() if g is not None}
        if isinstance(inputs, (str, os.PathLike)):
            inputs = [inputs]
        return cls(inputs=tuple(inputs) if isinstance(inputs, (list, tuple)) else inputs, output=output,
                   **groups.get(None, {}), **parts)

    def check(self) -> EnhanceRequest:
        """The request with every value checked and in its one form (times in seconds, the tile
        parsed, the size as a pair, the encoder's options split), or a RequestError naming the
        first field that does not hold."""
        from enhancer.progress import mode_of

        inputs = [self.inputs] if isinstance(self.inputs, (str, os.PathLike)) else self.inputs
        if not isinstance(inputs, (tuple, list)) or not inputs:
            raise RequestError("inputs", f"inputs must be a path or a list of paths, not {self.inputs!r}"[:200])
        inputs = tuple(_text(i, "inputs") for i in inputs)
        if "-" in inputs and len(inputs) != 1:
            raise RequestError("inputs", "- (stdin) cannot be mixed with other inputs")
        output = _text(self.output, "output")
        for name in ("report", "ffmpeg"):
            if getattr(self, name) is not None:
                _text(getattr(self, name), name)
        try:
            progress = mode_of(self.progress)
        except ArgumentError as e:
            raise RequestError("progress", e.reason) from None
        req = replace(self, inputs=inputs, output=output, model=self.model.check(), encode=self.encode.check(),
                      processing=self.processing.check(), executor=self.executor.check(), progress=progress)
        try:
            req.processing_options().segment  # start and duration, once, not once per file as each fails
        except UsageError as e:
            raise RequestError("start", e.reason) from None
        if req.executor.kind == "ray" and ("-" in inputs or output == "-"):
            raise RequestError("executor", f"{option('executor', 'ray')} reads and writes files on a shared path: "
                                           "stdin and stdout are not for it")
        if req.processing.splice:
            req.check_splice(None)
        return req

    def check_splice(self, scale: int | None) -> None:
        """The splice settings that cannot go together (``scale``: the model's, once it is known)."""
        p, e = self.processing, self.encode
        splice = option("splice", True)
        if self.processing_options().segment.whole:
            raise RequestError("splice", f"{splice} puts an enhanced segment back into the whole file: give a "
                                         f"{option('start')} after 0 and/or a {option('duration')}")
        if p.preview:
            raise RequestError("preview", f"{splice} and {option('preview')} cannot be combined")
        if e.size:
            raise RequestError("size", f"{splice} keeps the source's frame size (times the model's scale): drop "
                                       f"{_size_option(e.size)}")
        if p.deinterlace == "on":
            raise RequestError("deinterlace", f"{splice} keeps the rest of the file as it is, fields and all: "
                                              f"{option('deinterlace', 'on')} cannot be combined with it")
        if self.output == "-" or Path(self.output).suffix.lower() not in (".mp4", ".m4v", ".mov", ".mkv", ""):
            raise RequestError("output", f"{splice} writes a video file: give {option('output')} NAME.mov, .mp4 "
                                         "or .mkv")
        if e.codec in ("png", "tiff"):
            raise RequestError("codec", f"{splice} writes a video file, not an image sequence: drop "
                                        f"{option('codec', e.codec)}")
        for name, value in (("codec", e.codec), ("pix_fmt", e.pix_fmt), ("crf", e.crf)):
            if value is not None and scale == 1:
                raise RequestError(name, f"{splice} with a model of scale 1 keeps the source's codec and pixel "
                                         f"format where it can be copied, else encodes losslessly: drop "
                                         f"{option(name, value)}")

    def processing_options(self, progress: bool | None = None):
        """The engine's options for each file (:class:`~enhancer.pipeline.engine.EnhanceOptions`)."""
        from enhancer.pipeline.engine import EnhanceOptions

        p = self.processing
        return EnhanceOptions(deinterlace=p.deinterlace, start=p.start, duration=p.duration, chunk=self.model.chunk,
                              progress=self.progress != "none" if progress is None else progress, preview=p.preview,
                              part_seconds=p.part_seconds, fps=p.fps, splice=p.splice)


def _text(value, what: str) -> str:
    """A path or name as text, or a RequestError for what no file system takes."""
    if not isinstance(value, (str, os.PathLike)):
        raise RequestError(what, f"{what} must be a path, not {value!r}"[:200])
    text = os.fspath(value)
    if not isinstance(text, str):
        raise RequestError(what, f"{what} must be a text path, not bytes ({text!r})"[:200])
    if "\0" in text:
        raise RequestError(what, f"{what} {text!r} holds a NUL byte, which no file name can"[:200])
    return text


def seconds(value, what: str) -> float | None:
    """A time as seconds: a number, or text as people write it ('90', '1:30', '00:01:30.5')."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not value >= 0:
            raise RequestError(what, f"{what} must be 0 or more seconds, not {value!r}")
        return float(value)
    text = str(value).strip()
    if not re.fullmatch(r"\d+(\.\d+)?|(\d+:)?\d{1,2}:\d{1,2}(\.\d+)?", text):
        raise RequestError(what, f"{what} must be a number of seconds or a time ([HH:]MM:SS(.ms)), not "
                                 f"{value!r}"[:200])
    total = 0.0
    for part in text.split(":"):
        total = total * 60 + float(part)
    return total


def parse_size(size) -> tuple[int | None, int | None] | None:
    """An output size as (width, height), either None (from the aspect): a pair, or 'WxH' text."""
    if size is None:
        return None
    if isinstance(size, str):
        m = re.fullmatch(r"\s*(\d+)\s*[xX:]\s*(\d+)\s*", size)
        if not m or not (2 <= int(m.group(1)) <= 16384 and 2 <= int(m.group(2)) <= 16384):
            raise RequestError("size", f"{size!r}: use WIDTHxHEIGHT, each 2 to 16384, e.g. 1920x1080"[:200])
        size = (int(m.group(1)), int(m.group(2)))
    if (not isinstance(size, (tuple, list)) or len(size) != 2 or all(v is None for v in size)
            or any(v is not None and (not isinstance(v, int) or isinstance(v, bool) or not 2 <= v <= 16384)
                   for v in size)):
        raise RequestError("size", f"size {size!r}: use (width, height), each 2 to 16384 or None (one side from "
                                   "the aspect)"[:200])
    return (size[0], size[1])


def _size_option(size) -> str:
    """How the user gave an output size: ``--width`` or ``--height`` on the command line where the
    size has one side only (the other from the aspect), else ``--size`` (``size`` in Python)."""
    if isinstance(size, (tuple, list)) and len(size) == 2 and (size[0] is None) != (size[1] is None):
        name = option("width" if size[0] is not None else "height")
        if name.startswith("-"):
            return name
    return option("size")
