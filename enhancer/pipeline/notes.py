"""What a result's warnings say about its input: the frames it announced but did not give
(:func:`shortfall`), and how it was read and what of it is left out (:func:`input_notes`)."""
from __future__ import annotations

from fractions import Fraction

from enhancer.errors import option
from enhancer.media.videoinfo import VideoInfo
from enhancer.media.reader import FrameReader
from enhancer.pipeline.engine import EnhanceOptions


def _expected_frames(info: VideoInfo, opts: EnhanceOptions) -> int | None:
    expected = info.frame_count
    if expected and (opts.start or opts.duration) and info.fps:
        span = opts.duration or max(0.0, (info.duration or 0) - (opts.start or 0))
        expected = max(1, int(round(span * float(info.fps))))
    return expected


def shortfall(info: VideoInfo, opts: EnhanceOptions, reader: FrameReader, frames: int,
              last_times: list[Fraction]) -> str | None:
    """Why the input gave fewer frames than its container announced, or None when it gave them
    all. Announced: an exact frame count, or the video stream's own duration; a duration of the
    whole file counts only where ffmpeg also reported damage (audio may outlast the picture), and
    so does a frame count the picture reaches the end without (an edit list can drop frames)."""
    if info.image_sequence:
        return None
    if reader.stopped:
        expected = _expected_frames(info, opts)
        return (f"decoding stopped after {frames} frames" + (f" of about {expected}" if expected else "")
                + f" ({reader.stopped})")
    fps = float(info.fps) if info.fps else 0.0
    damage = reader.damage[0] if reader.damage else None
    short = 0.0
    wanted_end = origin = 0.0
    if fps and info.duration and last_times:
        origin = (info.start_time or 0.0) + (opts.start or 0.0)
        wanted_end = (info.start_time or 0.0) + info.duration
        if opts.duration:
            wanted_end = min(wanted_end, origin + opts.duration)
        frame_len = 1 / fps
        if len(last_times) == 2 and last_times[1] > last_times[0]:
            frame_len = max(frame_len, float(last_times[1] - last_times[0]))
        short = wanted_end - (float(last_times[-1]) + frame_len)
    # a whole frame short at least: a stream-copy cut's edit list may end its last frame early by
    # a fraction of one (a cut at 0.3 s of a 25 fps file: 12 frames over its 0.5 s), which is no damage
    ends_early = fps > 0 and short > 0.99 / fps
    whole = not opts.start and not opts.duration
    if info.frame_count_exact and info.frame_count and whole and frames < info.frame_count \
            and (damage or ends_early):
        return (f"decoded {frames} of the {info.frame_count} frames its container lists"
                + (f" ({damage})" if damage else ""))
    if not ends_early or not (info.stream_duration or damage):
        return None
    expected = max(frames + 1, int(round((wanted_end - origin) * fps)))
    return (f"decoded {frames} of about {expected} frames: the picture ends {short:.2f} s before the "
            f"{wanted_end - origin:.2f} s its container announces" + (f" ({damage})" if damage else ""))


def _incomplete_warning(why: str) -> str:
    return f"incomplete input: {why}; the output holds what decoded"


def _unique(warnings: list[str]) -> list[str]:
    return list(dict.fromkeys(warnings))


def input_notes(info: VideoInfo) -> list[str]:
    """What the output's warnings say about how the input was read (an image sequence's rate, an
    AVI's empty packets) and what of it is left out (cover art, other video streams)."""
    notes = []
    if info.repeats:
        notes.append(f"{info.repeats} of the {info.frame_count} frames are empty packets (in AVI: the frame before, "
                     f"shown again); each was made as a repeat of that frame, so timing and the "
                     f"{float(info.fps):g} fps rate stay the source's")
    if info.others:
        notes.append(f"{' and '.join(info.others)} left out: only the video enhanced is written")
    if info.alpha_unread:
        from enhancer.media import ffmpeg as ff

        notes.append(f"the {info.codec.upper()} stream's alpha channel needs ffmpeg's {info.alpha_unread} decoder, "
                     f"which ffmpeg {ff.tools().version_text} lacks: the output is opaque")
    if not info.image_sequence:
        return notes
    from enhancer.media.sequence import FPS_SIDECAR

    rate = f"{float(info.fps):g}" if info.fps else "unknown"
    if info.fps_from == "assumed":
        return notes + [f"image sequence: no frame rate given, {rate} fps assumed "
                        f"(give {option('fps')}, or put the rate in {FPS_SIDECAR} beside the images)"]
    return notes + ([f"image sequence: {rate} fps, from {info.fps_from}"] if info.fps_from else [])
