"""One output's resolved encoding (MuxPlan): encoder and options, pixel format, filters, the streams mapped."""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from enhancer.errors import InternalError, OutputError, option
from enhancer.media.colour import Colour
from enhancer.media.encode import IMAGE_CODECS, VIDEO_CODECS_IN, EncodeOptions
from enhancer.media.encoder_args import merged_params
from enhancer.media.geometry import fitted_size, output_sar, setsar_filter, square_size
from enhancer.media.pixfmt import ALPHA_FORMATS, bit_depth_of, chroma_of, has_alpha, needs_even
from enhancer.media.streams import stream_args
from enhancer.media.videoinfo import VideoInfo


# what each YUV encoder holds (chroma formats, bits per sample): the default output keeps the
# source's chroma and depth where its codec can, and says what it chose where not
_YUV_CAN = {"h264": (("420", "422", "444"), (8, 10)), "h265": (("420", "422", "444"), (8, 10, 12)),
            "prores": (("422", "444"), (10,)), "dnxhr": (("422", "444"), (8, 10)),
            "mpeg2": (("420", "422"), (8,))}
_CHROMA_ORDER = ("420", "422", "444")


# codecs for delivery: 4:2:0 unless --pix-fmt says otherwise, as players and browsers play little
# else (an RGB or 4:4:4 source made 4:4:4 H.264, High 4:4:4, which most cannot)
DELIVERY_CODECS = ("h264", "h265")


def _yuv_format(codec: str, source_pix: str, source_depth: int) -> tuple[str, str | None]:
    """The pixel format that keeps the source's chroma and depth in ``codec``, or the nearest it
    can hold, with a warning saying what was chosen; 4:2:0 (at the source's depth) for delivery
    codecs."""
    chromas, depths = _YUV_CAN[codec]
    src = chroma_of(source_pix)
    # the least chroma that loses nothing: 4:1:1 fits in 4:2:2, 4:1:0 in 4:2:0, 4:4:0 in 4:4:4
    want = {"gray": "420", "411": "422", "410": "420", "440": "444"}.get(src, src)
    if codec in DELIVERY_CODECS:
        src = want = "420"
    chroma = next((c for c in _CHROMA_ORDER[_CHROMA_ORDER.index(want):] if c in chromas), chromas[-1])
    depth = next((d for d in depths if d >= max(8, source_depth)), depths[-1])
    if codec == "dnxhr" and chroma == "444":
        depth = 10  # DNxHR 444 is 10-bit only
    pix = f"yuv{chroma}p" + (f"{depth}le" if depth > 8 else "")
    lost = []
    if _CHROMA_ORDER.index(chroma) < _CHROMA_ORDER.index(want):
        lost.append(f"{src[0]}:{src[1]}:{src[2]} chroma")
    if depth < source_depth:
        lost.append(f"{source_depth}-bit samples")
    if not lost:
        return pix, None
    keep = [c for c, (cs, ds) in _YUV_CAN.items()
            if _CHROMA_ORDER.index(want) <= _CHROMA_ORDER.index(cs[-1]) and ds[-1] >= source_depth] + ["ffv1"]
    choices = ", ".join(keep[:-1]) + f" or {keep[-1]}" if len(keep) > 1 else keep[0]
    return pix, (f"{codec} cannot hold the source's {' and '.join(lost)} ({source_pix}); the output is {pix} "
                 f"({option('codec')} {choices} would keep {'them' if len(lost) > 1 else 'it'})")


@dataclass
class MuxPlan:
    """The resolved encoding for one output (computed once the frame size is known)."""

    pix_fmt: str
    video_args: list[str]
    stream_args: list[str]
    pad: tuple[int, int] = (0, 0)  # columns, rows replicated at the right/bottom edge
    warnings: list[str] = field(default_factory=list)


def lean_threads(lookahead: int) -> int:
    """Encoder threads beside a shortened lookahead: every frame thread holds frames too (an
    output this large is made far slower by the model than by one encoder thread)."""
    return 4 if lookahead >= 10 else 1


def can_hold_alpha(opts: EncodeOptions) -> bool:
    """Whether the output keeps an alpha plane: the codec can hold one (ProRes only in its 4444 and
    4444 XQ profiles; FFV1, PNG, TIFF), and the pixel format asked for, if any, has one."""
    if opts.codec == "prores":
        args = list(opts.encoder_args)
        profile = next((args[i + 1] for i in range(len(args) - 1) if args[i] in ("-profile:v", "-profile")),
                       opts.profile)
        if profile is not None and str(profile).lower() not in ("4", "5", "4444", "4444xq"):
            return False
    return opts.codec in ALPHA_FORMATS and (opts.pix_fmt is None or has_alpha(opts.pix_fmt))


def _video_args(opts: EncodeOptions, depth: int, container: str, source_pix: str = "yuv420p",
                source_depth: int = 8, alpha: bool = False) -> tuple[str, list[str], list[str]]:
    """(pixel format, encoder options, warnings). YUV codecs keep the source's chroma format and
    bit depth where they can (``source_pix``, ``source_depth``); RGB outputs hold every source.
    ``alpha``: the frames carry an alpha plane, which the output keeps."""
    c = opts.codec
    notes: list[str] = []
    pix = opts.pix_fmt
    if pix is None and alpha:
        pix = ALPHA_FORMATS[c][depth > 8]
        if c == "prores" and source_depth > 10:
            notes.append(f"prores cannot hold the source's {source_depth}-bit samples ({source_pix}); the output is "
                         f"{pix} ({option('codec')} ffv1 would keep them, and the alpha channel)")
    if pix is None and c in _YUV_CAN:
        pix, note = _yuv_format(c, source_pix, source_depth)
        notes += [note] if note else []
    if c == "h264":
        quality = ["-qp", "0"] if opts.lossless else ["-crf", str(opts.crf if opts.crf is not None else 18)]
        args = ["-c:v", "libx264", *quality, "-preset", opts.preset or "medium"]
        if opts.lookahead is not None:
            args += ["-x264-params", f"rc-lookahead={opts.lookahead}:sync-lookahead=0",
                     "-threads:v", str(lean_threads(opts.lookahead))]
    elif c == "h265":
        lean = (f":rc-lookahead={opts.lookahead}:frame-threads={lean_threads(opts.lookahead)}"
                if opts.lookahead is not None else "")
        quality = [] if opts.lossless else ["-crf", str(opts.crf if opts.crf is not None else 20)]
        args = ["-c:v", "libx265", *quality, "-preset", opts.preset or "medium",
                "-x265-params", "log-level=error" + (":lossless=1" if opts.lossless else "") + lean]
        if container in ("mp4", "mov"):
            args += ["-tag:v", "hvc1"]

    elif c == "prores":
        # 4444 for 4:4:4, else 422 HQ
        args = ["-c:v", "prores_ks", "-profile:v", opts.profile or ("4" if chroma_of(pix) == "444" else "3"),
                "-vendor", "apl0"]
        if opts.crf is not None:
            args += ["-qscale:v", str(opts.crf)]
    elif c == "dnxhr":
        pix = pix or "yuv422p"
        profile = "dnxhr_444" if chroma_of(pix) == "444" else ("dnxhr_hqx" if bit_depth_of(pix) > 8 else "dnxhr_hq")
        args = ["-c:v", "dnxhd", "-profile:v", opts.profile or profile]
    elif c == "mpeg2":
        args = ["-c:v", "mpeg2video", "-q:v", str(opts.crf if opts.crf is not None else 4)]
    elif c == "ffv1":
        pix = pix or {8: "gbrp", 10: "gbrp10le", 12: "gbrp12le"}.get(depth, "gbrp16le")
        args = ["-c:v", "ffv1", "-level", "3", "-g", "1", "-slicecrc", "1"]
    elif c == "png":
        pix = pix or ("rgb48be" if depth > 8 else "rgb24")
        args = ["-c:v", "png"]
    else:  # tiff
        pix = pix or ("rgb48le" if depth > 8 else "rgb24")
        args = ["-c:v", "tiff", "-compression_algo", "deflate"]
    interlaced = bool(opts.field_order) and c in ("h264", "prores", "dnxhr", "mpeg2", "ffv1")
    # interlaced coding where the codec has it (not for x264: its interlaced coding is not lossless
    # at qp 0); ffmpeg keeps only the last -flags, so one holds them all
    flags = {"mpeg2": "+ildct+ilme", "prores": "+ildct", "dnxhr": "+ildct"}.get(c, "") if interlaced else ""
    if c == "mpeg2" and _mpeg2_low_delay(opts):
        flags += "+low_delay"
    args += ["-flags", flags] if flags else []
    if interlaced:  # the field order on the stream either way
        args += ["-field_order", opts.field_order]
    return pix, args, notes


def _mpeg2_low_delay(opts: EncodeOptions) -> bool:
    """MPEG-2 without B-frames (ffmpeg's default) is told so: otherwise the encoder reports a frame
    of reordering delay, its first packet's decoding time is negative, and the NUT parts (which
    hold no negative times) move the whole picture one frame later than the sound. Not where the
    user's own encoder options ask for B-frames (low delay forbids them)."""
    extra = list(opts.encoder_args)
    for key in ("-bf", "-bf:v", "-b_frames"):
        if key in extra[:-1] and extra[extra.index(key) + 1] != "0":
            return False
    return True


def plan(info: VideoInfo, opts: EncodeOptions, container: str, colour: Colour, width: int, height: int,
         depth: int, planar: bool = False, alpha: bool = False) -> MuxPlan:
    """Decide encoder, pixel format, padding and stream mapping for one output. ``planar``: the
    frames come in the source's own YUV (:mod:`enhancer.media.planar`), in ``colour``'s matrix
    and range, not in RGB. ``alpha``: the frames are RGBA, and the output keeps the alpha plane."""
    warnings: list[str] = []
    if container != "image2" and opts.codec not in VIDEO_CODECS_IN.get(container, set()):
        raise OutputError(f"the {container} container cannot hold {opts.codec} video",
                          hint=f"choose another {option('codec')} or output extension (.mkv holds them all)")
    pix, vargs, notes = _video_args(opts, depth, container, info.pix_fmt, info.bit_depth, alpha)
    warnings += notes
    if has_alpha(info.pix_fmt) and not alpha:
        if can_hold_alpha(opts):  # --splice and --preview show or put back the picture only
            warnings.append(f"the source's alpha channel (transparency, {info.pix_fmt}) is not kept here: the output "
                            "is opaque")
        else:
            hold = f"{option('pix_fmt')} {opts.pix_fmt}" if opts.codec in ALPHA_FORMATS and opts.pix_fmt \
                else "prores (in a profile other than 4444)" if opts.codec == "prores" else opts.codec
            warnings.append(f"{hold} cannot hold the source's alpha channel (transparency, {info.pix_fmt}): the "
                            f"output is opaque ({'ProRes 4444, ' if opts.codec == 'prores' else ''}"
                            f"{option('codec')} {'' if opts.codec == 'prores' else 'prores, '}ffv1, png or tiff "
                            "would keep it)")
    if opts.codec == "mpeg2" and info.fps and not mpeg2_exact(info.fps):
        near = min(_MPEG2_RATES + _MPEG2_UNOFFICIAL, key=lambda r: abs(r - info.fps))
        warnings.append(f"MPEG-2 has no {float(info.fps):.6g} fps: the stream's header says {float(near):.6g} fps, "
                        "while every frame keeps its time (players that follow the header play it at that rate); "
                        f"{option('codec')} h264, h265, prores or ffv1 keep the rate as it is")
    if opts.codec in ("h264", "h265") and opts.lookahead is not None:
        warnings.append(f"the encoder looks ahead {opts.lookahead} frames (not its preset's 40) to fit the memory "
                        "available for an output this large (a slightly larger file at the same quality)")
    even_w, even_h = needs_even(pix)
    sar = output_sar(info)
    resize = ""
    pad = (0, 0)
    if opts.size:
        # the model's output resized to the size asked for, aspect kept (the display aspect where
        # pixels are made square), bars only where both sides were given and the aspects differ
        square = opts.square_pixels and sar != 1
        aspect = Fraction(width, height) * (sar if square else 1)
        (pw, ph), (fw, fh) = fitted_size(width, height, aspect, opts.size, (even_w, even_h))
        if (fw % 2 and even_w) or (fh % 2 and even_h):
            raise OutputError(f"{pix} needs an even size; {fw}x{fh} was asked for",
                              hint=f"give even numbers to {option('size')}, or {option('pix_fmt')} yuv444p")
        resize = f"scale={pw}:{ph}:flags=lanczos+accurate_rnd+full_chroma_int,"
        if (pw, ph) != (fw, fh):
            # (transparent where the output keeps an alpha plane)
            resize += f"pad={fw}:{fh}:{(fw - pw) // 2}:{(fh - ph) // 2}:{'black@0' if alpha else 'black'},"
            warnings.append(f"the picture ({pw}x{ph}) keeps its aspect inside the {fw}x{fh} asked for: "
                            f"{'transparent' if alpha else 'black'} bars fill the rest "
                            f"(give only {option('width')} or {option('height')} for no bars)")
        if square:
            sar = Fraction(1)
    elif opts.square_pixels and sar != 1:
        # resampled to square pixels (to an even size where the format needs one: no padding)
        sw, sh = square_size(width, height, sar, (even_w, even_h))
        resize = f"scale={sw}:{sh}:flags=lanczos+accurate_rnd+full_chroma_int,"
        sar = Fraction(1)
    else:
        pad = (1 if even_w and width % 2 else 0, 1 if even_h and height % 2 else 0)
    if any(pad):
        warnings.append(f"{pix} needs even dimensions: {width}x{height} padded to "
                        f"{width + pad[0]}x{height + pad[1]} by repeating the edge "
                        f"(use {option('pix_fmt')} yuv444p to keep the exact size)")
    # the pixel aspect ratio travels as a frame property (the raw pipe carries none)
    setsar = setsar_filter(sar)
    rgb_out = pix.startswith(("gbr", "rgb", "bgr"))
    if planar and any(pad):
        raise InternalError(f"planar frames of {width}x{height} cannot be padded for {pix}")
    # planar frames: the raw stream carries no colour tags, so their matrix and range are said
    source_yuv = f"in_color_matrix={colour.sws_matrix}:in_range={colour.range}:" if planar else ""
    if not rgb_out and opts.codec not in IMAGE_CODECS:
        # any YUV output: the exact conversion with the source's matrix and range, whatever the codec
        # (from planar frames in the same matrix and range: a copy, or the chroma resampled)
        conv = (f"{resize}scale={source_yuv}out_color_matrix={colour.sws_matrix}:out_range={colour.range}"
                f":flags=bicubic+accurate_rnd+full_chroma_int,format={pix},{colour.setparams()},{setsar}")
        vargs = ["-vf", conv, *vargs, "-pix_fmt", pix, *colour.tag_args()]
    else:
        to_rgb = f"scale={source_yuv}flags=bicubic+accurate_rnd+full_chroma_int,format={pix}," if planar else ""
        vargs = ["-vf", resize + to_rgb + setsar, *vargs, "-pix_fmt", pix]
        if container != "image2":
            tags = ["-color_primaries", colour.primaries] if colour.primaries else []
            tags += ["-color_trc", colour.trc_option] if colour.transfer else []
            vargs += tags + ["-colorspace", "rgb"]
    streams = stream_args(info, opts, container, warnings)
    vargs, extra = merged_params(vargs, list(opts.encoder_args))
    vargs += extra  # last: the user's options override the defaults above
    return MuxPlan(pix_fmt=pix, video_args=vargs, stream_args=streams, pad=pad, warnings=warnings)


_MPEG2_RATES = tuple(Fraction(n, d) for n, d in ((24000, 1001), (24, 1), (25, 1), (30000, 1001), (30, 1), (50, 1),
                                                   (60000, 1001), (60, 1)))


# the rates ffmpeg's MPEG-2 encoder also writes, with -strict unofficial (libmpeg3 and Xing's codes)
_MPEG2_UNOFFICIAL = (Fraction(5), Fraction(10), Fraction(12), Fraction(15))


def mpeg2_exact(fps: Fraction) -> bool:
    """Whether an MPEG-2 stream's header can say this frame rate (ffmpeg's encoder otherwise writes
    the nearest one it has, 12 for 12.5)."""
    return any(abs(r - fps) <= r / 1000 for r in _MPEG2_RATES + _MPEG2_UNOFFICIAL)


def mpeg2_rate(fps: Fraction) -> tuple[Fraction, list[str]]:
    """The frame rate an MPEG-2 encode runs at, and the options it needs. A rate within 0.1 % of
    a standard one is that rate (29.97 written as 2997/100 is 30000/1001); any other needs the
    encoder's unofficial rate extension."""
    near = min(_MPEG2_RATES, key=lambda r: abs(r - fps))
    if abs(near - fps) <= near / 1000:
        return near, []
    return fps, ["-strict", "unofficial"]
