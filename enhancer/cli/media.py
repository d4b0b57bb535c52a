"""``degrade``, ``compare`` and ``probe``: the media tools."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from enhancer.cli.common import CONTEXT, check_writable, configure_ffmpeg, fail, seconds, until_done
from enhancer.data.degrade import PRESETS
from enhancer.errors import EnhancerError

@click.command(context_settings=CONTEXT, name="degrade")
@click.argument("input_path", metavar="INPUT")
@click.option("-o", "--output", required=True, help="Output video file.")
@click.option("--preset", type=click.Choice(list(PRESETS)), default="web", show_default=True)
@click.option("--scale", type=click.Choice(["1", "2", "4"]), default="2", show_default=True,
              help="Downscale factor (the enhancement that undoes it upscales by the same).")
@click.option("--seed", type=int, default=None, help="Seed for the drawn damage (reproducible).")
@click.option("--start", default=None, help="Segment start (seconds or HH:MM:SS).")
@click.option("--duration", default=None, help="Segment length.")
@click.option("--json", "as_json", is_flag=True, help="Print the drawn damage parameters as JSON.")
@click.option("--ffmpeg", "ffmpeg_path", default=None, help="ffmpeg binary to use.")
@click.option("-q", "--quiet", is_flag=True)
@click.option("-v", "--verbose", is_flag=True)
def degrade_cmd(input_path, output, preset, scale, seed, start, duration, as_json, ffmpeg_path, quiet, verbose):
    """Make a damaged low-quality copy of a clean video (for evaluation and trying models)."""
    from enhancer.data.degrade import degrade_video

    configure_ffmpeg(ffmpeg_path, verbose)
    d = until_done(lambda: degrade_video(input_path, output, preset=preset, scale=int(scale), seed=seed,
                                          progress=not quiet, start=seconds(start, "--start"), duration=seconds(duration, "--duration")))
    if as_json:
        print(json.dumps({"input": input_path, "output": output, "preset": preset, **d.to_dict()}))
    elif not quiet:
        print(f"done: {input_path} -> {output} ({preset}, x{scale}, seed {d.seed}, codec {d.codec} "
              f"q{d.codec_quality})", file=sys.stderr)


@click.command(context_settings=CONTEXT, name="compare")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", required=True, help="OUT.mp4 (video) or OUT.png (still).")
@click.option("--mode", type=click.Choice(["side", "split", "grid"]), default="side", show_default=True)
@click.option("--frame", type=int, default=None, help="Frame index for a still (default 0).")
@click.option("--crop", default=None, help="x,y,w,h in the largest input's pixels.")
@click.option("--labels", default=None, help="Comma-separated labels (default: file names).")
@click.option("--start", default=None)
@click.option("--duration", default=None)
@click.option("-q", "--quiet", is_flag=True)
def compare_cmd(inputs, output, mode, frame, crop, labels, start, duration, quiet):
    """Show versions of a clip side by side, split, or in a grid, labelled and time-aligned."""
    from enhancer.media.compare import Crop, compare

    configure_ffmpeg(None, False)
    path = until_done(lambda: compare(list(inputs), output, mode=mode, labels=labels.split(",") if labels else None,
                                       frame=frame, crop=Crop.parse(crop) if crop else None, start=seconds(start, "--start"),
                                       duration=seconds(duration, "--duration"), progress=not quiet))
    if output != "-":  # stdout holds the video
        print(path)


@click.command(context_settings=CONTEXT, name="probe")
@click.argument("file")
@click.option("--json", "as_json", is_flag=True, help="Print the VideoInfo as JSON.")
@click.option("--count", is_flag=True, help="Count frames exactly (reads the whole file, no decoding).")
@click.option("--ffmpeg", "ffmpeg_path", default=None, help="ffmpeg binary to use.")
@click.option("-v", "--verbose", is_flag=True, help="Print every ffmpeg command.")
def probe_cmd(file, as_json, count, ffmpeg_path, verbose):
    """Describe a video file."""
    from enhancer.media.probe import count_frames, probe

    configure_ffmpeg(ffmpeg_path, verbose)
    try:
        info = probe(file)
        if count and not info.repeats:  # an AVI's ticks were counted by probing (empty packets too)
            info.frame_count = count_frames(file, stream=info.video_index)
            info.frame_count_exact = True
    except EnhancerError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    if as_json:
        print(json.dumps(info.to_dict(), ensure_ascii=False))
        return
    d = info.to_dict()
    fc = f"{info.frame_count}" + ("" if info.frame_count_exact else " (estimate)") if info.frame_count else "unknown"
    if info.repeats:
        fc += (f" ({info.repeats} of them empty packets: the frame before, shown again; {info.frame_count - info.repeats} "
               "pictures decode)")
    lines = [
        f"file:        {info.path}",
        f"container:   {info.container}",
        f"video:       {info.codec}, {info.width}x{info.height}"
        + (f" (shown {info.display_width}x{info.display_height}, rotated {info.rotation})" if info.rotation else "")
        + f", SAR {d['sar']}, {info.pix_fmt} ({info.bit_depth}-bit)",
        f"frame rate:  {d['fps']} ({d['fps_float']} fps), time base {d['time_base'] or 'unknown'}",
        f"duration:    {info.duration if info.duration is not None else 'unknown'} s, start {info.start_time} s",
        f"frames:      {fc}",
        f"colour:      range {info.color_range or '?'}, matrix {info.color_space or '?'}, "
        f"primaries {info.color_primaries or '?'}, transfer {info.color_transfer or '?'}",
        f"scan:        {info.field_order}",
        "audio:       " + (", ".join(f"#{a.index} {a.codec} {a.sample_rate or '?'} Hz {a.channels or ''}".strip()
                                      for a in info.audio) or "none"),
        "subtitles:   " + (", ".join(f"#{s.index} {s.codec}" for s in info.subtitles) or "none"),
        f"chapters:    {info.chapters}",
        f"probed with: {info.probed_with}",
    ]
    print("\n".join(lines))
