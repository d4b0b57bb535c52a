"""The join: the encoded picture (parts, or a pipe) and the source's other streams made one output, no re-encode."""
from __future__ import annotations

import errno
import os
import shutil
from fractions import Fraction
from pathlib import Path

from enhancer.errors import EnhancerError, OutputError
from enhancer.media import ffmpeg as ff
from enhancer.media.colour import Colour
from enhancer.media.encode import CONTAINERS, EncodeOptions
from enhancer.media.segment import Segment
from enhancer.media.streams import stream_args, timecode_args, video_tag_args
from enhancer.media.temps import hidden_sibling, publish, temp_path_for
from enhancer.media.videoinfo import VideoInfo


def join_args(video_input: list[str], first: Fraction, container: str, source: VideoInfo, opts: EncodeOptions,
              colour: Colour, time_base: Fraction | None, segment: Segment) -> tuple[list[str], list[str]]:
    """The one place the source's other streams are mapped: ffmpeg options (up to the output
    name) that put the encoded picture (input 0, ``video_input``: the parts' list, or a stream
    on a pipe, its own timeline starting at its first frame) at ``first`` seconds after the
    segment's origin and add the source's audio, subtitles, attachments, chapters, metadata,
    stream tags and timecode, without re-encoding the picture. Returns (argv, warnings)."""
    # the streams it maps, and what they lose (the picture and its warnings are the encoder's own)
    warnings: list[str] = []
    streams = stream_args(source, opts, container, warnings)
    argv = [ff.tools().ffmpeg, "-hide_banner", "-nostats", "-nostdin", "-loglevel", "error", "-y"]
    if first:
        argv += ["-itsoffset", f"{float(first):.9f}"]
    argv += video_input
    if not source.image_sequence:
        argv += [*segment.input_args(), "-i", ff.file_arg(source.path)]
    argv += ["-map", "0:v:0"]
    if not source.image_sequence:
        argv += streams + ["-map_metadata", "1", "-map_chapters", "1"]
    argv += ["-c:v", "copy", "-fps_mode", "passthrough"] + colour.tag_args()
    if segment.start and not source.image_sequence:
        # a seek copies the source's audio and subtitle packets from the key frame before the
        # segment, at negative times: Matroska cannot hold those and moves the whole file later
        # (the picture seconds after the sound), MP4 keeps them as an edit. Packets that end by
        # the segment's start go; the one across it stays, as a whole file's lead-in does.
        for kind, streams in (("a", source.audio), ("s", source.subtitles)):
            if streams:
                argv += [f"-bsf:{kind}", "noise=drop=lte((pts+duration)*tb\\,0)"]
    if opts.field_order:  # the parts' NUT does not carry it
        argv += ["-field_order", opts.field_order]
    if not source.image_sequence:
        argv += video_tag_args(source) + timecode_args(source, container, (segment.start or 0) + first)
    if container in ("mp4", "mov"):
        if time_base and time_base.numerator == 1 and time_base.denominator <= 10_000_000:
            argv += ["-video_track_timescale", str(time_base.denominator)]
        argv += ["-movflags", "+faststart" if container == "mp4" else "+write_colr"]
        if opts.codec == "h265":
            argv += ["-tag:v", "hvc1"]
    return argv + ["-f", container], warnings


def short_join(output: str | Path, joined: int | None, expected: int) -> OutputError:
    """The error for a joined file that does not hold every frame encoded, or cannot be read back
    (``joined`` None): a full disk, most often."""
    hint = "run the same command again to redo this file"
    try:
        free = shutil.disk_usage(Path(output).parent).free
        if free < 64 << 20:
            hint = f"the disk holding it has {free / 2**20:.1f} MB free: free some space, then run the same command again"
    except OSError:
        pass
    what = "cannot be read back" if joined is None else f"holds {joined} frames"
    return OutputError(f"the joined output {what}, not the {expected} frames that were encoded",
                       path=str(output), hint=hint)


def assemble(parts: list[Path], starts: list[Fraction], output: Path, source: VideoInfo, opts: EncodeOptions,
             colour: Colour, time_base: Fraction | None, *, segment: Segment | None = None,
             expect_frames: int | None = None) -> list[str]:
    """Join encoded parts (each starting with a key frame, its own timeline starting at its first
    frame) without re-encoding, at the exact times in ``starts`` (each part's first frame,
    relative to the segment's origin), with the source's other streams (:func:`join_args`).
    Writes ``output`` via a temporary name (where, with ``expect_frames``, the frames are counted
    first: a join that lost or repeated any never takes the output's name) and returns the
    warnings."""
    segment = segment or Segment()
    ext = output.suffix.lower()
    container = CONTAINERS.get(ext)
    if container is None:
        raise OutputError(f"unknown output extension {ext}", path=str(output))
    # the list lies beside the parts and names them relative to itself: a line break in a folder's
    # or the output's name cannot be written in a concat list (a part named with one is linked)
    where = parts[0].parent if all(p.parent == parts[0].parent for p in parts) else output.parent
    listing = where / hidden_sibling(output, f".{os.getpid()}.ffconcat").name
    lines = ["ffconcat version 1.0"]
    links: list[Path] = []
    for k, part in enumerate(parts):
        name = part.name if part.parent == where else str(part.resolve())
        if "\n" in name or "\r" in name:
            link = temp_path_for(where / f"join{k}{part.suffix}")
            try:
                os.link(part, link)
            except OSError:
                os.symlink(part.resolve(), link)
            links.append(link)
            name = link.name
        lines.append("file '" + name.replace("'", "'\\''") + "'")
        if k + 1 < len(parts):
            lines.append(f"duration {float(starts[k + 1] - starts[k]):.6f}")
    temp = temp_path_for(output)
    argv, warnings = join_args(["-f", "concat", "-safe", "0", "-i", ff.file_arg(listing)], starts[0], container,
                               source, opts, colour, time_base, segment)
    argv.append(ff.file_arg(temp))
    try:
        try:
            listing.write_text("\n".join(lines) + "\n")
        except OSError as e:
            raise OutputError(f"cannot write beside the output: {e.strerror}", path=str(output),
                              hint="free some disk space or choose another output folder" if e.errno == errno.ENOSPC
                              else None) from None
        ff.run(argv, path=str(output), what="joining the parts failed")
        if expect_frames is not None:
            from enhancer.media.probe import count_frames

            try:
                joined = count_frames(str(temp))
            except EnhancerError:
                joined = None
            if joined != expect_frames:
                raise short_join(output, joined, expect_frames)
        publish(temp, output)
    finally:
        listing.unlink(missing_ok=True)
        temp.unlink(missing_ok=True)
        for link in links:
            link.unlink(missing_ok=True)
    return warnings
