"""The encoder and muxer processes: enhanced frames in, an encoded file out, the rest from the source.

One path for every video output: an :class:`Encoder` encodes the picture into parts (a short
file is one part), and :func:`~enhancer.media.join.assemble` joins the parts without re-encoding
and maps the source's audio and subtitle streams (copied, not re-encoded, where the container
allows), its chapters, metadata and timecode. Frames travel to the encoder as raw RGB inside a
tiny Matroska stream (see :mod:`matroska`), so each keeps its original timestamp (constant and
variable frame rate alike). Files are written under hidden temporary names beside the output and
renamed into place only after ffmpeg succeeded and the frames were counted.
"""
from __future__ import annotations

import dataclasses
import errno
import os
import shutil
import subprocess
import sys
import threading
import uuid
from fractions import Fraction
from pathlib import Path

import numpy as np

from enhancer.errors import EnhancerError, FFmpegError, InternalError, OutputError, option
from enhancer.media import ffmpeg as ff
from enhancer.media.colour import Colour
from enhancer.media.encode import IMAGE_CODECS, VIDEO_CODECS_IN, EncodeOptions, container_of
from enhancer.media.geometry import check_frame_size
from enhancer.media.join import assemble, join_args
from enhancer.media.matroska import RawMatroskaWriter
from enhancer.media.plan import MuxPlan, mpeg2_rate, plan
from enhancer.media.planar import planar_of
from enhancer.media.segment import Segment
from enhancer.media.temps import hidden_sibling, publish, temp_path_for
from enhancer.media.videoinfo import VideoInfo


TIMECODE_SIDECAR = "timecode.txt"


def went_back_warning(frames: int) -> str:
    """What an output says of frames whose time went back (the encoder's, or the parts' across them)."""
    return (f"{frames} frame(s) came with a timestamp before the previous frame's (files joined end to end, or a "
            "clock that restarted): they follow on at the frame rate")


class _Output:
    """``with``: finish (``close``) on success; on any error, Ctrl-C included, leave nothing
    behind (``abort``)."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class Encoder(_Output):
    """Encode frames, the picture only, to one file (a part) or to a folder of PNG/TIFF frames.

    Call :meth:`write` for each frame in presentation order, then :meth:`close` (which renames the
    finished file into place) or :meth:`abort` (which removes every temporary trace). The file's
    own timeline starts at its first frame; :func:`assemble` places it at that frame's time and
    maps the source's other streams. Image outputs keep the rate (and timecode) in sidecars.
    """

    def __init__(self, output: str, source: VideoInfo, opts: EncodeOptions, colour: Colour, *,
                 segment: Segment | None = None, label: str | None = None):
        self.source = source
        self.opts = opts
        self.colour = colour
        self.to_pipe = output == "-"  # NUT on the process's stdout (``stdout``), for a join that streams
        self.final = Path(output)
        self.label = label or output  # the name errors give: the user's output, not a part's
        self.image_sequence = opts.codec in IMAGE_CODECS
        if self.image_sequence:
            self.container = "image2"
        elif self.to_pipe:
            self.container = "nut"
        else:
            self.container = container_of(output)
        self.segment = segment or Segment()
        self.temp: Path | None = None
        self.proc: ff.Process | None = None
        self.writer: RawMatroskaWriter | None = None
        self.plan: MuxPlan | None = None
        self.frames = 0
        self.time_base: Fraction | None = None  # the clock of the frames written
        self.first: Fraction | None = None  # the first frame's time after the segment's origin
        self._shift = Fraction(0)
        self._origin = Fraction(0)
        self._closed = False
        self._aborted = False  # abort() ran: nothing may be published after it
        self._lock = threading.Lock()

    @property
    def warnings(self) -> list[str]:
        found = list(self.plan.warnings) if self.plan else []
        went_back = getattr(getattr(self, "writer", None), "went_back", 0)
        return found + ([went_back_warning(went_back)] if went_back else [])

    def _start(self, image: np.ndarray, pts: int, time_base: Fraction) -> None:
        # a flat frame is the source's own planes (a planar reader, enhancer.media.planar)
        planar = planar_of(self.source.pix_fmt, self.source.bit_depth, self.source.display_width,
                           self.source.display_height) if image.ndim == 1 else None
        if image.ndim == 1 and (planar is None or image.size != planar.frame_bytes):
            raise InternalError(f"a flat frame of {image.size} bytes for a {self.source.pix_fmt} source of "
                                f"{self.source.display_width}x{self.source.display_height}")
        h, w = (planar.height, planar.width) if planar else image.shape[:2]
        depth = 16 if image.dtype == np.uint16 else 8
        alpha = image.ndim == 3 and image.shape[2] == 4  # RGBA: the source's alpha plane, kept
        # the picture only: plan (and warn) without the source's other streams, which the join
        # maps; image frames hold none, and their warnings say what was left out
        source = self.source if self.image_sequence else \
            dataclasses.replace(self.source, audio=[], subtitles=[], attachments=[])
        check_frame_size(self.source, self.opts, w, h, self.label)
        self.plan = plan(source, self.opts, self.container, self.colour, w, h, depth, planar=planar is not None,
                         alpha=alpha)
        # times relative to the segment's origin (the source's first frame, or the segment's start);
        # ffmpeg (without -copyts) then starts this file's timeline at its first frame
        origin = self.segment.origin(self.source.start_time)
        self._origin = origin
        self.time_base = time_base
        rel0 = pts * time_base - origin
        self.first = rel0
        self._shift = -rel0 if rel0 < 0 else Fraction(0)
        argv = [ff.tools().ffmpeg, "-hide_banner", "-nostats", "-loglevel", "error", "-y",
                "-f", "matroska", "-i", "pipe:0", "-map", "0:v:0"]
        argv += self.plan.video_args + ["-fps_mode", "passthrough"]
        if self.opts.codec == "mpeg2" and self.source.fps:
            # MPEG-2 only knows the standard frame rates: encode on the frame period
            rate, extra = mpeg2_rate(self.source.fps)
            argv += ["-enc_time_base:v", f"{rate.denominator}/{rate.numerator}", *extra]
        elif self.container != "image2":
            # the source's clock, said explicitly: ffmpeg 5.1 encodes on 1/frame rate by default,
            # which moves frames of a segment or a part that does not start on that grid
            argv += ["-enc_time_base:v", f"{time_base.numerator}/{time_base.denominator}"]
        if self.to_pipe:
            argv += ["-f", "nut", "pipe:1"]
        elif self.image_sequence:
            self.temp = temp_path_for(self.final)
            self.temp.mkdir(parents=True)
            pattern = self.temp / ("frame_%06d." + ("png" if self.opts.codec == "png" else "tif"))
            argv += ["-f", "image2", "-start_number", "0", ff.file_arg(pattern)]
        else:
            self.temp = temp_path_for(self.final)
            argv += ["-f", self.container, ff.file_arg(self.temp)]
        self.proc = ff.Process(argv, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE if self.to_pipe else subprocess.DEVNULL,
                               path=self.label, what="encoding failed")
        fps = self.source.fps
        self.writer = RawMatroskaWriter(self.proc.stdin, w + self.plan.pad[0], h + self.plan.pad[1], depth,
                                        frame_duration=(1 / fps) if fps else None, planar=planar, alpha=alpha)

    def write(self, image: np.ndarray, pts: int, time_base: Fraction) -> None:
        """Encode one (H, W, 3) RGB frame ((H, W, 4) RGBA where the output keeps the source's
        alpha; or a planar reader's flat frame) shown at ``pts * time_base`` seconds."""
        if self.proc is None:
            with self._lock:  # never start after (or while) another thread aborts
                if self._closed:
                    raise OutputError("output was aborted", path=self.label)
                try:
                    self._start(image, pts, time_base)
                except OSError as e:
                    raise OutputError(f"cannot write output: {e.strerror}", path=self.label) from None
        if any(self.plan.pad):
            image = np.pad(image, ((0, self.plan.pad[1]), (0, self.plan.pad[0]), (0, 0)), mode="edge")
        try:
            t = pts * time_base - self._origin + self._shift
            self.writer.write(np.ascontiguousarray(image), t.numerator, Fraction(1, t.denominator))
        except OSError:  # ffmpeg went away (broken pipe): its stderr says why
            self.proc.wait(timeout=30)
            raise self._error() from None
        self.frames += 1

    def _error(self) -> FFmpegError:
        err = self.proc.error()
        low = " ".join(err.stderr_tail).lower()
        if "no space left" in low or "file too large" in low:
            err.hint = "free some disk space or choose another output folder"
        return err

    def close(self) -> Path | None:
        """Finish encoding and move the file into place. Returns its path (None for a pipe).
        Raises :class:`OutputError` where :meth:`abort` came first (from another thread: a part
        stopped by Ctrl-C is never reported finished)."""
        if self._aborted:
            raise OutputError("output was aborted", path=self.label)
        if self._closed:
            return None if self.to_pipe else self.final
        if self.proc is None:
            raise OutputError("no frames to encode", path=self.label)
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        if self.proc.wait() != 0:
            err = self._error()
            self.abort()
            raise err
        if self.frames == 0:
            self.abort()
            raise OutputError("no frames were encoded", path=self.label)
        with self._lock:  # an abort from another thread now either came first (and wins) or waits
            if self._aborted:
                raise OutputError("output was aborted", path=self.label)
            final = self._publish()
            self._closed = True  # only once in place: an abort after a failed publish still cleans up
            return final

    def _publish(self) -> Path | None:
        if self.to_pipe:
            return None
        if self.image_sequence and self.source.fps:
            # the rate goes with the frames, where enhancer (and the next run) reads it back
            from enhancer.media.sequence import FPS_SIDECAR

            fps = self.source.fps
            (self.temp / FPS_SIDECAR).write_text(f"{fps.numerator}/{fps.denominator}\n" if fps.denominator != 1
                                                 else f"{fps.numerator}\n")
            from enhancer.media import timecode

            tc = timecode.at(self.source.timecode, fps, float((self.segment.start or 0) + self.first))
            if tc:  # no convention for PNG/TIFF names: the first frame's timecode beside fps.txt
                (self.temp / TIMECODE_SIDECAR).write_text(tc + (f"\nreel_name={self.source.reel_name}"
                                                               if self.source.reel_name else "") + "\n")
        # a frame folder already there is set aside and removed once the new one took its name
        aside = (hidden_sibling(self.final, f".old-{os.getpid()}-{uuid.uuid4().hex[:6]}") if self.image_sequence
                 else None)
        publish(self.temp, self.final, aside=aside)
        return self.final

    def abort(self) -> None:
        """Stop ffmpeg and remove the temporary output."""
        with self._lock:
            self._abort()

    def _abort(self) -> None:
        if self._closed and not self._aborted:
            return  # finished and in place: nothing of it is temporary any more
        self._closed = True
        self._aborted = True
        if self.proc is not None:
            self.proc.kill()
        if self.temp is not None and self.temp.exists():
            if self.temp.is_dir():
                shutil.rmtree(self.temp, ignore_errors=True)
            else:
                try:
                    self.temp.unlink()
                except OSError:
                    pass


PART_NAME = "part_{:05d}.nut"  # a part: the picture only, in NUT (it holds every codec enhancer writes)


class Muxer(_Output):
    """Encode frames to ``output`` with everything else taken from the source, by the one path of
    every output: the picture encoded by an :class:`Encoder`, then joined with the source's other
    streams by :func:`join_args`. A file is one part in a hidden folder beside the output, joined
    by :func:`assemble` (which counts the frames before the output takes its name), as the parts
    of a long file are. ``-`` streams Matroska to stdout as the frames come: the encoder's NUT
    goes on a pipe straight into the join. A folder for PNG/TIFF frames has no other streams.
    Same calls as :class:`Encoder`."""

    def __init__(self, output: str, source: VideoInfo, opts: EncodeOptions, colour: Colour, *,
                 segment: Segment | None = None):
        self.source, self.opts, self.colour = source, opts, colour
        self.segment = segment or Segment()
        self.to_stdout = output == "-"
        self.final = None if self.to_stdout else Path(output)
        self.image_sequence = opts.codec in IMAGE_CODECS
        self.work: Path | None = None
        self.joiner: ff.Process | None = None
        self._join_warnings: list[str] = []
        self._done = False
        if self.image_sequence:
            if self.to_stdout:
                raise OutputError("PNG/TIFF frames cannot go to stdout", path="-",
                                  hint="give a folder with -o, or a video codec")
            self.encoder = Encoder(output, source, opts, colour, segment=self.segment)
            return
        if self.to_stdout:
            self.container = "matroska"
        else:
            self.container = container_of(output)
        if self.opts.codec not in VIDEO_CODECS_IN.get(self.container, set()):
            raise OutputError(f"the {self.container} container cannot hold {opts.codec} video", path=output,
                              hint=f"choose another {option('codec')} or output extension (.mkv holds them all)")
        if self.to_stdout:
            self.encoder = Encoder("-", source, opts, colour, segment=self.segment, label="-")
            return
        self.work = temp_path_for(self.final)  # a temporary the sweep knows (.NAME.partial-PID-...)
        try:
            self.work.mkdir(parents=True)
        except OSError as e:
            raise OutputError(f"cannot write output: {e.strerror}", path=output,
                              hint="free some disk space or choose another output folder" if e.errno == errno.ENOSPC
                              else "choose an output folder you can write to") from None
        self.encoder = Encoder(str(self.work / PART_NAME.format(0)), source, opts, colour, segment=self.segment,
                               label=output)

    @property
    def frames(self) -> int:
        return self.encoder.frames

    @property
    def warnings(self) -> list[str]:
        return list(dict.fromkeys(self.encoder.warnings + self._join_warnings))

    def write(self, image: np.ndarray, pts: int, time_base: Fraction) -> None:
        """Encode one (H, W, 3) RGB frame shown at ``pts * time_base`` seconds."""
        try:
            self.encoder.write(image, pts, time_base)
        except FFmpegError as e:
            raise self._blame(e) from None
        if self.to_stdout and self.joiner is None:
            self._start_join()

    def _start_join(self) -> None:
        """The join for stdout, reading the encoder's NUT as it comes (started with the first frame,
        when the picture's clock and first time are known)."""
        argv, self._join_warnings = join_args(["-f", "nut", "-i", "pipe:0"], self.encoder.first, "matroska",
                                              self.source, self.opts, self.colour, self.encoder.time_base,
                                              self.segment)
        try:
            out = sys.stdout.fileno()
        except (AttributeError, OSError, ValueError):
            raise OutputError("stdout is closed", path="-", hint="give a file with -o, or pipe stdout somewhere") \
                from None
        self.joiner = ff.Process(argv + ["pipe:1"], stdin=self.encoder.proc.stdout, stdout=out, path="-",
                                 what="writing to stdout failed")
        self.encoder.proc.proc.stdout.close()  # the join holds it now: its end, when it stops, stops the encoder

    def close(self) -> Path | None:
        """Finish encoding and the join, and move the output into place (a file: after counting
        its frames). Returns the final path (None for stdout)."""
        if self._done:
            return self.final
        try:
            part = self.encoder.close()
            if self.image_sequence:  # image frames: the encoder's folder is the output
                self._done = True
                return part
            if self.to_stdout:
                if self.joiner.wait() != 0:
                    raise self._join_error(always=True)
            else:
                self._join_warnings = assemble([part], [self.encoder.first], self.final, self.source, self.opts,
                                               self.colour, self.encoder.time_base, segment=self.segment,
                                               expect_frames=self.encoder.frames)
        except FFmpegError as e:
            blamed = self._blame(e)  # before abort() kills the join and its say is lost
            self.abort()
            raise blamed from None
        except BaseException:
            self.abort()
            raise
        self._done = True
        self._cleanup()
        return self.final

    def _blame(self, err: FFmpegError) -> EnhancerError:
        """The encoder failed: its own error, unless the join for stdout stopped first (the reader
        of stdout went away, or its disk is full), which the encoder's broken pipe only echoes."""
        if self.joiner is None:
            return err
        try:
            self.joiner.wait(timeout=5)
        except subprocess.TimeoutExpired:  # still writing to a slow reader: the encoder failed first
            return err
        return self._join_error() or err

    def _join_error(self, always: bool = False) -> EnhancerError | None:
        """The join's failure where it is the cause (``always``: whatever it was)."""
        err = self.joiner.error()
        low = " ".join(err.stderr_tail).lower()
        if "broken pipe" in low:
            return OutputError("the program reading stdout stopped before the output was complete", path="-",
                               hint="check the command after the pipe")
        if "no space left" in low:
            err.hint = "free some disk space where stdout goes"
            return err
        return err if always else None

    def _cleanup(self) -> None:
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)

    def abort(self) -> None:
        """Stop encoding (and the join) and remove every temporary."""
        self._done = True
        self.encoder.abort()
        if self.joiner is not None:
            self.joiner.kill()
        self._cleanup()
