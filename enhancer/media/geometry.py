"""Frame sizes and pixel shapes: the output's pixel aspect, sizes fitted or made square, codecs' size limits."""
from __future__ import annotations

from fractions import Fraction

from enhancer.errors import OutputError, option
from enhancer.media.encode import EncodeOptions
from enhancer.media.videoinfo import VideoInfo


DNXHR_MIN = (256, 120)  # the smallest frame DNxHR encodes (width, height)


def output_sar(info: VideoInfo) -> Fraction:
    """The pixel aspect ratio of the output's frames: the source's (an upscale scales both axes
    alike, so it does not change), turned with the picture where rotation is applied."""
    sar = info.sar if info.sar and info.sar > 0 else Fraction(1)
    return 1 / sar if info.rotation in (90, 270) else sar


def setsar_filter(sar: Fraction) -> str:
    """The filter that gives frames this pixel aspect ratio, exactly (no rounding to 255ths)."""
    return f"setsar=r={sar.numerator}/{sar.denominator}:max={max(sar.numerator, sar.denominator, 100)}"


def fitted_size(width: int, height: int, aspect: Fraction, want: tuple[int | None, int | None],
                even: tuple[bool, bool]) -> tuple[tuple[int, int], tuple[int, int]]:
    """((picture width, height), (frame width, height)) for ``want``: the picture keeps
    ``aspect`` (display width / height of the stored frame, with the output's pixel shape) inside
    the frame asked for; one side missing follows from the aspect (the frame is then the picture)."""
    def fit(v: Fraction, must_be_even: bool) -> int:
        return max(2, 2 * round(v / 2)) if must_be_even else max(1, round(v))

    ww, wh = want
    if ww and wh:
        if Fraction(ww, wh) > aspect:  # a wider frame: full height, bars left and right
            pic = (fit(wh * aspect, even[0]), wh)
        else:
            pic = (ww, fit(ww / aspect, even[1]))
        return (min(pic[0], ww), min(pic[1], wh)), (ww, wh)
    pic = (ww, fit(ww / aspect, even[1])) if ww else (fit(wh * aspect, even[0]), wh)
    return pic, pic


def encoded_size(info: VideoInfo, opts: EncodeOptions, width: int, height: int,
                 even: tuple[bool, bool] = (False, False)) -> tuple[int, int]:
    """The frame size the encoder is given for a ``width`` x ``height`` picture: the size asked
    for (--size, bars included), else the square-pixel size, else the picture padded to the
    even sizes the pixel format may need (as :func:`~enhancer.media.plan.plan` makes it)."""
    sar = output_sar(info)
    if opts.size:
        square = opts.square_pixels and sar != 1
        aspect = Fraction(width, height) * (sar if square else 1)
        return fitted_size(width, height, aspect, opts.size, even)[1]
    if opts.square_pixels and sar != 1:
        return square_size(width, height, sar, even)
    return width + (1 if even[0] and width % 2 else 0), height + (1 if even[1] and height % 2 else 0)


# the largest side each encoder takes (x264: 16384; MPEG-2: 14 bits, of which the lower 12 may not
# all be 0, so 4096, 8192 and 12288 are refused too); the others take far larger frames
_MAX_SIDE = {"h264": 16384, "mpeg2": 16383}


def check_frame_size(info: VideoInfo, opts: EncodeOptions, width: int, height: int, path: str | None) -> None:
    """Refuse, before any work, a frame the chosen codec cannot encode: DNxHR's smallest is
    256x120, x264's largest side 16384, MPEG-2's 16383, judged on the size the encoder will be
    given (after --size)."""
    most = _MAX_SIDE.get(opts.codec)
    if most:
        w, h = encoded_size(info, opts, width, height, (True, True))
        if max(w, h) > most or (opts.codec == "mpeg2" and (w % 4096 == 0 or h % 4096 == 0)):
            raise OutputError(f"{opts.codec} cannot encode a {w}x{h} frame (its largest side is {most})", path=path,
                              hint=f"choose {option('codec')} h265, prores or ffv1, a smaller {option('scale')}, or a {option('size')}")
    if opts.codec != "dnxhr":
        return
    w, h = encoded_size(info, opts, width, height, (True, False))  # DNxHR is 4:2:2 (or 4:4:4)
    if w < DNXHR_MIN[0] or h < DNXHR_MIN[1]:
        larger = f"a larger {option('size')}, or " if opts.size else ""
        raise OutputError(f"DNxHR needs frames of at least {DNXHR_MIN[0]}x{DNXHR_MIN[1]}; this output is {w}x{h}",
                          path=path, hint=f"choose {larger}{option('codec')} prores or ffv1 for a frame this small")


def square_size(width: int, height: int, sar: Fraction, even: tuple[bool, bool]) -> tuple[int, int]:
    """The frame size that shows ``width`` x ``height`` pixels of aspect ``sar`` with square
    pixels: wide pixels widen the frame, tall ones heighten it (no detail is dropped)."""
    w, h = (width * sar, Fraction(height)) if sar >= 1 else (Fraction(width), height / sar)

    def fit(v: Fraction, must_be_even: bool) -> int:
        return max(2, 2 * round(v / 2)) if must_be_even else max(1, round(v))
    return fit(w, even[0]), fit(h, even[1])
