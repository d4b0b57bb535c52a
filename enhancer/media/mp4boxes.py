"""MP4/MOV track titles read from the file's own boxes (ffmpeg 5.1 does not report them)."""
from __future__ import annotations

import os


_CONTAINER_BOXES = {b"moov", b"trak", b"udta"}
_MOOV_LIMIT = 64 << 20  # a moov box larger than this is not read (titles are only a nicety)


def _boxes(buf: bytes, start: int, end: int):
    """(type, payload start, payload end) of the ISO-BMFF boxes in buf[start:end]."""
    off = start
    while off + 8 <= end:
        size = int.from_bytes(buf[off:off + 4], "big")
        kind = buf[off + 4:off + 8]
        head = 8
        if size == 1 and off + 16 <= end:
            size, head = int.from_bytes(buf[off + 8:off + 16], "big"), 16
        elif size == 0:
            size = end - off
        if size < head or off + size > end:
            return
        yield kind, off + head, off + size
        off += size


def mov_track_titles(path: str) -> dict[int, str]:
    """Each MP4/MOV track's title (its ``udta/name``, or a QuickTime ``udta/\xa9nam``), by the
    stream index ffmpeg gives the track (tracks in file order). Empty where there are none or the
    file cannot be read as MP4/MOV."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            total = f.tell()
            off = 0
            moov = None
            while off + 8 <= total:
                f.seek(off)
                head = f.read(16)
                if len(head) < 8:
                    return {}
                size, kind = int.from_bytes(head[:4], "big"), head[4:8]
                hlen = 8
                if size == 1 and len(head) == 16:
                    size, hlen = int.from_bytes(head[8:16], "big"), 16
                elif size == 0:
                    size = total - off
                if size < hlen:
                    return {}
                if kind == b"moov":
                    if size > _MOOV_LIMIT:
                        return {}
                    f.seek(off)
                    moov = f.read(size)
                    break
                off += size
    except OSError:
        return {}
    if moov is None:
        return {}
    titles: dict[int, str] = {}
    index = 0
    for kind, a, b in _boxes(moov, 8, len(moov)):
        if kind != b"trak":
            continue
        for k2, a2, b2 in _boxes(moov, a, b):
            if k2 != b"udta":
                continue
            for k3, a3, b3 in _boxes(moov, a2, b2):
                raw = moov[a3:b3]
                encoding = "utf-8"
                if k3 == b"\xa9nam" and len(raw) >= 4:  # QuickTime: length, language, text
                    if int.from_bytes(raw[2:4], "big") < 0x400:  # a Macintosh language code: Mac Roman text
                        encoding = "mac_roman"
                    raw = raw[4:4 + int.from_bytes(raw[:2], "big")]
                elif k3 != b"name":
                    continue
                text = raw.split(b"\0", 1)[0].decode(encoding, "replace")
                if text.strip():
                    titles.setdefault(index, text)
        index += 1
    return titles
