"""ffmpeg's stream listing (``ffmpeg -i FILE``) parsed into a VideoInfo, for when there is no ffprobe."""
from __future__ import annotations

import re
from fractions import Fraction

from enhancer.media.pixfmt import bit_depth_of
from enhancer.media.rates import plausible_rate, read_rate
from enhancer.media.videoinfo import (FIELD_ORDERS, Attachment, AudioStream, SubtitleStream, VideoInfo, main_video,
                                      no_video, other_video)


def _split_top(text: str) -> list[str]:
    """Split on ', ' outside parentheses and brackets."""
    out, depth, cur = [], 0, []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if depth == 0 and text.startswith(", ", i):
            out.append("".join(cur))
            cur = []
            i += 2
            continue
        cur.append(ch)
        i += 1
    out.append("".join(cur))
    return [s.strip() for s in out]


def _banner_tags(block: str) -> dict[str, str]:
    """The ``Metadata:`` section of one stream in ffmpeg's listing, as a dict (side data, such
    as a display matrix, is not metadata and is left out)."""
    tags: dict[str, str] = {}
    indent = None
    for line in block.splitlines()[1:]:
        depth = len(line) - len(line.lstrip())
        if line.strip() == "Metadata:":
            indent = depth
            continue
        if indent is None:
            continue
        if depth <= indent:
            indent = None
            continue
        m = re.match(r"\s*(\S.*?)\s*:\s(.*)$", line)
        if m and m.group(1):
            tags[m.group(1)] = m.group(2).strip()
    return tags


def parse_banner(path: str, text: str) -> VideoInfo:
    """Parse the stream listing that ``ffmpeg -i FILE`` prints."""
    container = ""
    m = re.search(r"^Input #0, (.+?), from ", text, re.M)
    if m:
        container = m.group(1)
    duration = None
    start = 0.0
    m = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", text)
    if m:
        duration = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    m = re.search(r"start: (-?\d+(?:\.\d+)?)", text)
    if m:
        start = float(m.group(1))
    chapters = len(re.findall(r"^\s+Chapter #0:\d+", text, re.M))

    # Split into per-stream blocks so side data and metadata stay with their stream.
    blocks = re.split(r"^(?=\s*Stream #0:)", text, flags=re.M)
    videos: list[dict] = []
    audio: list[AudioStream] = []
    subs: list[SubtitleStream] = []
    attachments: list[Attachment] = []
    pics: list[str] = []
    for block in blocks:
        m = re.match(r"\s*Stream #0:(\d+)(?:\[0x[0-9a-fA-F]+\])?(?:\((\w+)\))?: (Video|Audio|Subtitle|Data|Attachment): "
                     r"(.*)", block)
        if not m:
            continue
        idx, lang, kind, rest = int(m.group(1)), m.group(2), m.group(3), m.group(4)
        tokens = _split_top(rest)
        codec = tokens[0].split()[0] if tokens and tokens[0] else "unknown"
        if kind == "Audio":
            sr = next((int(t.split()[0]) for t in tokens if t.endswith(" Hz")), None)
            layout = tokens[2] if len(tokens) > 2 else None
            audio.append(AudioStream(idx, codec, sr, layout, lang if lang != "und" else None))
        elif kind == "Subtitle":
            subs.append(SubtitleStream(idx, codec, lang if lang != "und" else None))
        elif kind == "Attachment":
            fm = re.search(r"^\s+filename\s*:\s*(.*)$", block, re.M)
            mm = re.search(r"^\s+mimetype\s*:\s*(.*)$", block, re.M)
            attachments.append(Attachment(idx, fm.group(1).strip() if fm else None,
                                          mm.group(1).strip() if mm else None))
        elif kind == "Video":
            if "(attached pic)" in rest:
                pics.append(f"cover art (stream {idx}, {codec})")
                continue
            v: dict = {"index": idx, "codec": codec}
            # "prores (HQ) (apch / 0x68637061)": the first bracket that is not the codec tag
            prof = re.match(r"\S+ \(([^()]*)\)", tokens[0] if tokens else "")
            if prof and " / 0x" not in prof.group(1):
                v["profile"] = prof.group(1)
            for t in tokens[1:]:
                sm = re.match(r"(\d+)x(\d+)(?:\s*\[SAR (\d+):(\d+) DAR \d+:\d+\])?", t)
                if sm and "width" not in v:
                    v["width"], v["height"] = int(sm.group(1)), int(sm.group(2))
                    if sm.group(3) and int(sm.group(4)):
                        v["sar"] = Fraction(int(sm.group(3)), int(sm.group(4)))
                    continue
                am = re.match(r"SAR (\d+):(\d+) DAR \d+:\d+$", t)
                if am:  # the container's aspect, where it differs from the codec's: what players use
                    if int(am.group(2)):
                        v["sar"] = Fraction(int(am.group(1)), int(am.group(2)))
                    continue
                pm = re.match(r"([a-z0-9_]+)(?:\((.*)\))?$", t)
                if pm and "pix_fmt" not in v and not re.match(r"\d", t):
                    v["pix_fmt"] = pm.group(1)
                    for part in _split_top(pm.group(2) or ""):
                        if part in ("tv", "pc"):
                            v["color_range"] = part
                        elif part in FIELD_ORDERS:
                            v["field_order"] = FIELD_ORDERS[part]
                        elif re.match(r"^[a-z0-9_\-]+(/[a-z0-9_\-]+){0,2}$", part):
                            bits = part.split("/")
                            if len(bits) == 1:
                                bits = bits * 3
                            for key, val in zip(("color_space", "color_primaries", "color_transfer"), bits):
                                if val != "unknown":
                                    v[key] = val
                    continue
                fm = re.match(r"([\d.]+k?) (fps|tbr|tbn)\b", t)
                if fm:
                    v[fm.group(2)] = fm.group(1)
            rm = re.search(r"rotation of (-?\d+(?:\.\d+)?) degrees", block, re.I)
            if rm:
                v["rotation"] = int(round(float(rm.group(1)))) % 360
            v["tags"] = _banner_tags(block)
            if lang:
                v["tags"].setdefault("language", lang)
            nm = re.search(r"^\s+NUMBER_OF_FRAMES(?:-\w+)?\s*:\s*(\d+)", block, re.M)
            if nm:
                v["nb_frames"] = int(nm.group(1))
            dm = re.search(r"^\s+DURATION(?:-\w+)?\s*:\s*(\d+):(\d+):(\d+(?:\.\d+)?)", block, re.M)
            if dm:
                v["duration"] = int(dm.group(1)) * 3600 + int(dm.group(2)) * 60 + float(dm.group(3))
            videos.append(v)
    video = main_video(videos, lambda v: (v.get("width", 0), v.get("height", 0))) if videos else None
    if video is None or "width" not in video:
        raise no_video(path, audio)
    fps = plausible_rate(read_rate(video.get("fps")), read_rate(video.get("tbr")))
    tbn = read_rate(video.get("tbn"))
    vdur = video.get("duration", duration)
    own_duration = "duration" in video
    count = video.get("nb_frames")
    exact = count is not None
    if count is None and vdur and fps:
        count = max(1, int(round(vdur * float(fps))))
    pix_fmt = video.get("pix_fmt", "unknown")
    return VideoInfo(
        path=path, container=container, codec=video["codec"], width=video["width"], height=video["height"],
        pix_fmt=pix_fmt, bit_depth=bit_depth_of(pix_fmt), fps=fps,
        time_base=(1 / tbn) if tbn else None, duration=vdur, start_time=start, frame_count=count,
        frame_count_exact=exact, sar=video.get("sar", Fraction(1)), color_range=video.get("color_range"),
        color_space=video.get("color_space"), color_primaries=video.get("color_primaries"),
        color_transfer=video.get("color_transfer"), rotation=video.get("rotation", 0),
        field_order=video.get("field_order", "unknown"), video_index=video["index"], audio=audio,
        subtitles=subs, attachments=attachments, chapters=chapters, probed_with="ffmpeg",
        stream_duration=own_duration, video_tags=video.get("tags", {}),
        timecode=_banner_value("timecode", text), reel_name=_banner_value("reel_name", text),
        profile=video.get("profile"),
        others=pics + [other_video(v["index"], v["codec"], v.get("width"), v.get("height"))
                       for v in videos if v is not video])


def _banner_value(key: str, text: str) -> str | None:
    """A metadata value from ffmpeg's banner: the first anywhere (the video stream and a tmcd track carry the same)."""
    m = re.search(rf"^\s+{key}\s*:\s*(.+?)\s*$", text, re.M | re.I)
    return m.group(1) if m else None
