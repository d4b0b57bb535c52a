"""ffprobe's JSON (``-show_format -show_streams -show_chapters``) parsed into a VideoInfo."""
from __future__ import annotations

from fractions import Fraction

from enhancer.media.pixfmt import bit_depth_of
from enhancer.media.rates import plausible_rate, read_rate
from enhancer.media.videoinfo import (FIELD_ORDERS, Attachment, AudioStream, SubtitleStream, VideoInfo, main_video,
                                      no_video, other_video)


def from_ffprobe_json(path: str, data: dict) -> VideoInfo:
    """A VideoInfo from ffprobe's ``-show_format -show_streams -show_chapters -of json``."""
    fmt = data.get("format", {})
    streams = data.get("streams", [])
    audio = [AudioStream(s["index"], s.get("codec_name", "unknown"), int(s["sample_rate"]) if s.get("sample_rate") else None,
                         s.get("channel_layout"), (s.get("tags") or {}).get("language"))
             for s in streams if s.get("codec_type") == "audio"]
    subs = [SubtitleStream(s["index"], s.get("codec_name", "unknown"), (s.get("tags") or {}).get("language"))
            for s in streams if s.get("codec_type") == "subtitle"]
    attachments = [Attachment(s["index"], (s.get("tags") or {}).get("filename"), (s.get("tags") or {}).get("mimetype"))
                   for s in streams if s.get("codec_type") == "attachment"]
    vids = [s for s in streams if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")]
    if not vids:
        raise no_video(path, audio)
    v = main_video(vids, lambda s: (s.get("width") or 0, s.get("height") or 0))
    rotation = 0
    for sd in v.get("side_data_list", []) or []:
        if "rotation" in sd:
            rotation = int(round(float(sd["rotation"]))) % 360
    if not rotation and (v.get("tags") or {}).get("rotate"):
        rotation = (-int((v["tags"])["rotate"])) % 360
    fps = plausible_rate(read_rate(v.get("avg_frame_rate")), read_rate(v.get("r_frame_rate")))
    tb = read_rate(v.get("time_base")) or None
    own = v.get("duration") not in (None, "N/A")
    dur = v.get("duration") if own else fmt.get("duration")
    dur = float(dur) if dur not in (None, "N/A") else None
    tags = v.get("tags") or {}
    nb = v.get("nb_frames") or next((tags[k] for k in tags if k.upper().startswith("NUMBER_OF_FRAMES")), None)
    count = int(nb) if nb not in (None, "N/A") and str(nb).isdigit() else None
    exact = count is not None and count > 0
    if not exact:
        count = max(1, int(round(dur * float(fps)))) if dur and fps else None
    pix_fmt = v.get("pix_fmt") or "unknown"
    depth = int(v["bits_per_raw_sample"]) if str(v.get("bits_per_raw_sample", "")).isdigit() else bit_depth_of(pix_fmt)
    sar = read_rate((v.get("sample_aspect_ratio") or "1:1").replace(":", "/")) or Fraction(1)

    def known(key):
        val = v.get(key)
        return None if val in (None, "unknown", "reserved") else val

    return VideoInfo(
        path=path, container=fmt.get("format_name", ""), codec=v.get("codec_name", "unknown"),
        width=int(v.get("width", 0)), height=int(v.get("height", 0)), pix_fmt=pix_fmt,
        bit_depth=max(depth, bit_depth_of(pix_fmt)), fps=fps, time_base=tb, duration=dur,
        start_time=float(fmt.get("start_time", 0) or 0), frame_count=count, frame_count_exact=exact, sar=sar,
        color_range=known("color_range"), color_space=known("color_space"), color_primaries=known("color_primaries"),
        color_transfer=known("color_transfer"), rotation=rotation,
        field_order=FIELD_ORDERS.get(v.get("field_order", ""), "unknown"), video_index=int(v["index"]),
        audio=audio, subtitles=subs, attachments=attachments, chapters=len(data.get("chapters", [])),
        probed_with="ffprobe", stream_duration=own, video_tags={str(k): str(val) for k, val in tags.items()},
        timecode=_first_tag("timecode", [v, *streams, fmt]), reel_name=_first_tag("reel_name", [v, *streams, fmt]),
        profile=v.get("profile") if v.get("profile") not in (None, "unknown") else None,
        others=[f"cover art (stream {s['index']}, {s.get('codec_name', 'unknown')})" for s in streams
                if s.get("codec_type") == "video" and (s.get("disposition") or {}).get("attached_pic")]
        + [other_video(int(s["index"]), s.get("codec_name", "unknown"), s.get("width"), s.get("height"))
           for s in vids if s is not v])


def _first_tag(key: str, holders: list[dict]) -> str | None:
    """The first value of tag ``key`` (any case) among the holders' tags, in order."""
    for h in holders:
        for k, val in (h.get("tags") or {}).items():
            if str(k).lower() == key and str(val).strip():
                return str(val).strip()
    return None
