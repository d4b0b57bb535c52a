"""Streaming decode to RGB frames with their timestamps, and sliding windows of frames.

ffmpeg decodes to raw RGB on a pipe (8-bit sources to uint8, deeper ones to uint16 so 10-bit
survives); a ``showinfo`` filter in the same graph reports each frame's exact pts on stderr, so
variable frame rate survives too. Frames come out upright (ffmpeg applies rotation) and, where
asked, deinterlaced with bwdif (one frame out per frame in). A bounded queue keeps memory flat.
"""
from __future__ import annotations

import collections
import queue
import re
import threading
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator

import numpy as np

from enhancer.errors import ArgumentError, FFmpegError, InputError, option
from enhancer.media import ffmpeg as ff
from enhancer.media.colour import is_rgb_format, source_colour
from enhancer.media.planar import planar_of
from enhancer.media.segment import Segment
from enhancer.media.videoinfo import VideoInfo


@dataclass
class Frame:
    index: int
    pts: int  # in time_base units
    time_base: Fraction
    image: np.ndarray  # (H, W, 3) uint8 or uint16, RGB; a flat uint8 array of planes from a planar reader

    @property
    def time(self) -> float:
        return float(self.pts * self.time_base)


_SHOWINFO = re.compile(r"\[Parsed_showinfo_(\d+) @ [^\]]+\] n: *(\d+) pts: *(-?\d+) ")
_SIZE = re.compile(r" s:(\d+)x(\d+) ")
_TIMEBASE = re.compile(r"\[Parsed_showinfo_(\d+) @ [^\]]+\] config in time_base: (\d+)/(\d+)")
_DONE = object()
# what demuxers and decoders print when a file is cut short or damaged
_DAMAGE = re.compile(r"partial file|ended prematurely|truncat|invalid data found|error splitting|missing picture|"
                     r"corrupt|decoding error|error while decoding|concealing|invalid nal|unexpected end|"
                     r"incomplete frame|packet too small|moov atom not found", re.I)


def deinterlace_filter(info: VideoInfo, mode: str) -> str | None:
    """bwdif keeps one frame per frame (send_frame); auto only touches frames flagged interlaced,
    and only where the stream does not say it is progressive (nor in image sequences)."""
    if mode == "off":
        return None
    if mode == "on":
        return "bwdif=mode=send_frame:parity=auto:deint=all"
    if mode != "auto":
        raise ArgumentError(f"deinterlace must be auto|on|off, not {mode!r}")
    if info.field_order == "progressive" or info.image_sequence:  # pictures are whole frames
        return None
    return "bwdif=mode=send_frame:parity=auto:deint=interlaced"


class FrameReader:
    """Iterate over the decoded frames of one video, in order, with exact timestamps.

    >>> with FrameReader(info) as reader:
    ...     for frame in reader: ...
    """

    def __init__(self, info: VideoInfo, *, deinterlace: str = "auto", segment: Segment | None = None,
                 buffer: int = 8, planar: bool = False, alpha: bool = False):
        self.info = info
        # alpha: RGBA frames (H, W, 4), the source's alpha plane beside the picture
        self.channels = 4 if alpha else 3
        # planar: the source's own YUV planes where it can (see enhancer.media.planar), else RGB
        self.planar = planar_of(info.pix_fmt, info.bit_depth, info.display_width, info.display_height) \
            if planar and not alpha and not info.image_sequence else None
        self.segment = segment or Segment()
        self.depth = 16 if info.bit_depth > 8 else 8
        self.dtype = np.uint16 if self.depth == 16 else np.uint8
        self.width, self.height = info.display_width, info.display_height
        self.colour = source_colour(info)
        self.warnings: list[str] = []
        self.frames_read = 0
        self.damage: list[str] = []  # the first lines where ffmpeg said the file is cut short or damaged
        self.stopped: str | None = None  # why decoding ended with an error after some frames
        self.last_times: collections.deque[Fraction] = collections.deque(maxlen=2)  # of frames delivered
        # an AVI's empty packets show the frame before again: so does the reader, one frame a tick
        filters = [f"fps={info.fps.numerator}/{info.fps.denominator}"] if info.repeats and info.fps else []
        dein = deinterlace_filter(info, deinterlace)
        if dein:
            # a showinfo before bwdif counts the frames decoded, with their sizes: bwdif holds a
            # frame, which is lost where ffmpeg rebuilds its filters (a stream that changes size),
            # and that loss is said, not silent
            filters = ["showinfo=checksum=0", *filters, dein]
        self._sizes_at = 0 if dein else None  # the showinfo that sees the frames as decoded
        self._times_at = len(filters)  # the showinfo whose frames are delivered, with their times
        self._decoded = 0
        filters.append("showinfo=checksum=0")
        pix = ("rgba64le" if self.depth == 16 else "rgba") if alpha else ("rgb48le" if self.depth == 16 else "rgb24")
        if self.planar is not None:
            pix = self.planar.pix_fmt
            filters.append(f"format={pix}")
        elif is_rgb_format(info.pix_fmt):
            filters.append(f"format={pix}")
        else:
            filters.append(f"scale=in_color_matrix={self.colour.sws_matrix}:in_range={self.colour.range}"
                           f":flags=bicubic+accurate_rnd+full_chroma_int,format={pix}")
        # a stream that changes size mid-way (broadcast captures, files joined end to end): its later
        # frames are fitted inside the first size with black bars, keeping their shape, instead of
        # being stretched to it by the scaler ffmpeg would insert. Last, in the format delivered: RGB
        # at any size, the planar path's YUV only at even sizes (pad cannot make an odd 4:2:0 frame).
        # While the size holds, both filters pass frames through untouched.
        # The shape is the display's: a new pixel shape (1440x1080 at SAR 4:3 after 1920x1080 at 1:1,
        # both 16:9) is first brought to the first frames' (the output's) pixel shape, so such a
        # switch fills the frame instead of being squashed between bars. Bars are transparent where
        # frames carry alpha.
        even = self.planar is not None
        sar = info.sar if info.sar and info.sar > 0 else Fraction(1)
        sar = 1 / sar if info.rotation in (90, 270) else sar  # turned with the picture
        width = f"iw*sar*{sar.denominator}/{sar.numerator}"
        filters.append(f"scale=w='{f'trunc({width}/2+0.5)*2' if even else f'round({width})'}':h=ih")
        filters.append(f"scale={self.width}:{self.height}:force_original_aspect_ratio=decrease"
                       + (":force_divisible_by=2" if even else ""))
        filters.append(f"pad={self.width}:{self.height}:(ow-iw)/2:(oh-ih)/2:{'black@0' if alpha else 'black'}")
        src = info.path if info.image_sequence else ff.file_arg(info.path)
        self.argv = [ff.tools().ffmpeg, "-hide_banner", "-nostats", "-loglevel", "info", "-copyts", "-nostdin",
                     *self.segment.input_args(), *info.input_args,
                     "-i", src, "-map", f"0:{info.video_index}", "-an", "-sn", "-dn",
                     "-vf", ",".join(filters), "-fps_mode", "passthrough",
                     "-f", "rawvideo", "-pix_fmt", pix, "pipe:1"]
        self._frame_bytes = self.planar.frame_bytes if self.planar is not None else \
            self.width * self.height * self.channels * (2 if self.depth == 16 else 1)
        self._pts: collections.deque[int] = collections.deque()
        self._first_size: tuple[int, int] | None = None  # the frames' size as decoded (showinfo's s:)
        self._resized_to: tuple[int, int] | None = None
        self._shown = 0  # frames showinfo has reported
        self._pts_cond = threading.Condition()
        self.time_base: Fraction | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, buffer))
        self._stop = threading.Event()
        self._proc: ff.Process | None = None
        self._thread: threading.Thread | None = None

    # stderr -> timestamps
    def _on_line(self, line: str) -> None:
        m = _SHOWINFO.search(line)
        if m:
            at = int(m.group(1))
            if at == self._times_at:
                with self._pts_cond:
                    self._pts.append(int(m.group(3)))
                    self._pts_cond.notify_all()
            if at != (self._times_at if self._sizes_at is None else self._sizes_at):
                return
            self._decoded += 1
            self._shown += 1  # showinfo's own n starts again at 0 when ffmpeg rebuilds its filters
            size = _SIZE.search(line, m.end())
            if size:
                wh = (int(size.group(1)), int(size.group(2)))
                if self._first_size is None:
                    self._first_size = wh
                elif wh != self._first_size and wh != self._resized_to:
                    # a stream that changes size (broadcast captures, joined files): the filters
                    # fit the rest inside the first size (see __init__)
                    self._resized_to = wh
                    first = self._first_size
                    self.warnings.append(f"the picture changes size at frame {self._shown - 1} ({first[0]}x{first[1]} to "
                                         f"{wh[0]}x{wh[1]}): frames of another size are fitted inside the first's "
                                         "with black bars, keeping their shape; cut the file there to keep both sizes")
            return
        m = _TIMEBASE.search(line)
        if m:
            if int(m.group(1)) == self._times_at:
                self.time_base = Fraction(int(m.group(2)), int(m.group(3)))
            return
        if len(self.damage) < 3 and _DAMAGE.search(line):
            self.damage.append(ff.summarize([line]).rstrip("."))

    def _next_pts(self) -> int:
        with self._pts_cond:
            ok = self._pts_cond.wait_for(lambda: self._pts or self._proc.proc.poll() is not None, timeout=30)
            if not self._pts:
                # the process ended: give its stderr drain a moment to deliver the last lines
                self._pts_cond.wait_for(lambda: self._pts, timeout=2 if ok else 0)
            if not self._pts:
                raise FFmpegError("lost frame timestamps from the decoder", argv=self.argv,
                                  stderr_tail=list(self._proc.tail), path=self.info.path)
            return self._pts.popleft()

    def _read_exact(self, buf: memoryview) -> int:
        got = 0
        stream = self._proc.stdout
        while got < len(buf):
            n = stream.readinto(buf[got:])
            if not n:
                break
            got += n
        return got

    def _run(self) -> None:
        try:
            index = 0
            while not self._stop.is_set():
                image = np.empty((self.height, self.width, self.channels), dtype=self.dtype) if self.planar is None \
                    else np.empty(self.planar.frame_bytes, dtype=np.uint8)
                got = self._read_exact(memoryview(image).cast("B"))
                if got == 0:
                    break
                if got < self._frame_bytes:
                    self.warnings.append(f"last frame incomplete ({got} of {self._frame_bytes} bytes), dropped")
                    break
                pts = self._next_pts()
                if self.time_base is None:  # never guessed: a wrong clock would move every frame
                    raise FFmpegError("the decoder did not report its time base", argv=self.argv,
                                      stderr_tail=list(self._proc.tail), path=self.info.path)
                frame = Frame(index, pts, self.time_base, image)
                self.last_times.append(pts * frame.time_base)
                self._put(frame)
                index += 1
            if self._stop.is_set():
                return
            rc = self._proc.wait()
            self.frames_read = index
            if self._sizes_at is not None and self._decoded > index and self._resized_to and not self.info.repeats:
                lost = self._decoded - index
                self.warnings.append(f"{lost} frame(s) lost where the picture changes size: ffmpeg rebuilds its "
                                     "filters there, and the deinterlacer's held frame goes with them; "
                                     f"{option('deinterlace')} off keeps every frame of a progressive source")
            if rc != 0:
                err = self._proc.error()
                if index == 0:
                    raise InputError(f"cannot decode: {ff.summarize(err.stderr_tail)}", path=self.info.path)
                self.stopped = ff.summarize(err.stderr_tail)
            if index == 0:
                start, length = self.segment.start, self.info.duration
                if start and length and start >= length:  # a careless --start, not a damaged file
                    raise InputError(f"{option('start')} {start:g} s is past the end of the video ({length:.2f} s long)",
                                     path=self.info.path, hint="give a start inside the video")
                raise InputError("no frames could be decoded (empty or damaged video stream)", path=self.info.path)
            self._put(_DONE)
        except BaseException as e:  # handed to the consumer, raised there
            self._put(e)

    def _put(self, item) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def start(self) -> "FrameReader":
        import subprocess

        self._proc = ff.Process(self.argv, stdout=subprocess.PIPE, path=self.info.path,
                                on_line=self._on_line, what="decoding failed")
        self._thread = threading.Thread(target=self._run, name="decode", daemon=True)
        self._thread.start()
        return self

    def __iter__(self) -> Iterator[Frame]:
        if self._proc is None:
            self.start()
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        if self._proc is not None:
            self._proc.kill()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "FrameReader":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class Window:
    """``core`` frames to produce, with ``margin`` frames of context on each side in ``images``
    (len(images) == len(core) + 2 * margin). Context beyond the video's ends is mirrored."""

    images: list[np.ndarray]
    core: list[Frame]
    margin: int


def _mirror(i: int, n: int) -> int:
    """Index i reflected into [0, n) without repeating the edge frame (... 2 1 | 0 1 2 ...)."""
    if n == 1:
        return 0
    period = 2 * (n - 1)
    i = i % period
    return i if i < n else period - i


def windows(frames: Iterator[Frame], margin: int, chunk: int, skip: int = 0) -> Iterator[Window]:
    """Group a frame stream into windows of ``chunk`` core frames plus ``margin`` context frames
    each side. Holds at most ``chunk + 3 * margin + 1`` frames; each core frame sees the same
    context whatever ``chunk`` is, so chunking cannot change the result. The first ``skip``
    frames are context only (a resumed run replays them to give its first frame its neighbours)."""
    if chunk < 1 or margin < 0 or skip < 0:
        raise ArgumentError("chunk must be >= 1, margin and skip >= 0")
    buf: collections.deque[Frame] = collections.deque()  # frames first, first+1, ...
    first = 0
    head: list[Frame] = []  # frames 0..margin, kept to mirror the start
    total: int | None = None
    core_start = skip
    it = iter(frames)
    while True:
        need = core_start + chunk + margin
        while total is None and first + len(buf) < need:
            f = next(it, None)
            if f is None:
                total = first + len(buf)
                break
            buf.append(f)
            if f.index <= margin:
                head.append(f)
        end = core_start + chunk if total is None else min(core_start + chunk, total)
        if end <= core_start:
            return

        def get(i: int) -> Frame:
            j = _mirror(i, total) if total is not None else abs(i)
            return head[j] if j < first else buf[j - first]

        images = [get(i).image for i in range(core_start - margin, end + margin)]
        core = [buf[i - first] for i in range(core_start, end)]
        yield Window(images=images, core=core, margin=margin)
        core_start = end
        while buf and first < core_start - margin:
            buf.popleft()
            first += 1
