"""ffmpeg pixel format names: bits per sample, chroma format, and whether a frame's sides must be even."""
from __future__ import annotations

import re

from enhancer.media.colour import is_rgb_format


def bit_depth_of(pix_fmt: str) -> int:
    """Bits per component of an ffmpeg pixel format name (yuv420p10le -> 10, rgb48le -> 16)."""
    m = re.search(r"p(\d{2})(?:le|be)?$", pix_fmt) or re.search(r"(?:y|x|v|ayuv)(\d{2})\d*(?:le|be)$", pix_fmt)
    if m:
        return int(m.group(1))
    if re.match(r"(rgb|bgr)(48|64)|rgba64|bgra64|gray16|ya16|gbrap?16|yuva?4\d\dp16|p016|xyz12", pix_fmt):
        return 16
    if re.match(r"gray(9|10|12|14)", pix_fmt):
        return int(re.match(r"gray(\d+)", pix_fmt).group(1))
    if re.match(r"(p010|y210|xv30|x2rgb10|x2bgr10|v30x)", pix_fmt):
        return 10
    if re.match(r"(p012|y212|xv36)", pix_fmt):
        return 12
    if re.match(r"(grayf32|gbrpf32|gbrapf32|rgbf32|rgbaf32)", pix_fmt):
        return 16
    return 8


def needs_even(pix_fmt: str) -> tuple[bool, bool]:
    """(width must be even, height must be even) for a pixel format."""
    if "420" in pix_fmt or pix_fmt in ("nv12", "p010le", "p016le"):
        return True, True
    if "422" in pix_fmt or "411" in pix_fmt:
        return True, False
    return False, False


def chroma_of(pix_fmt: str) -> str:
    """The chroma format of an ffmpeg pixel format: 444 (RGB included), 422, 420, 411, 410, 440,
    or gray (no chroma)."""
    if is_rgb_format(pix_fmt):
        return "444"
    if pix_fmt.startswith(("gray", "ya", "monob", "monow")):
        return "gray"
    m = re.match(r"yuva?j?(4\d\d)", pix_fmt)
    if m:
        return m.group(1)
    if pix_fmt.startswith(("nv16", "nv20", "p21", "y21", "yuyv422", "uyvy422", "yvyu422")):
        return "422"
    if pix_fmt.startswith(("nv24", "nv42", "p41", "xv", "ayuv", "vuya", "vuyx", "v30x")):
        return "444"
    return "420"


def has_alpha(pix_fmt: str | None) -> bool:
    """Whether an ffmpeg pixel format carries an alpha (transparency) plane: yuva444p10le,
    rgba, bgra, argb, gbrap16le, ya8, rgba64le ... (not pal8, whose palette may or may not)."""
    return bool(pix_fmt) and re.match(r"(yuva|rgba|bgra|argb|abgr|gbrap|ya8|ya16|ayuv|vuya)", pix_fmt) is not None


# the codecs whose output keeps an alpha plane, and the pixel format each gets for it (8-bit, deeper)
ALPHA_FORMATS = {"prores": ("yuva444p10le", "yuva444p10le"), "ffv1": ("gbrap", "gbrap16le"),
                 "png": ("rgba", "rgba64be"), "tiff": ("rgba", "rgba64le")}
