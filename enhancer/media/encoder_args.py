"""The user's own video encoder options (--encoder-args): checked before any work, merged with enhancer's."""
from __future__ import annotations

import re

from enhancer.errors import ArgumentError, option


# options --encoder-args may not hold: they would change inputs, outputs, timing, length, the
# picture's size, format or colour tags, other streams, or the log enhancer reads its errors from
# (each is enhancer's to set, through its own option or not at all)
_DENIED_OPTIONS = re.compile(
    r"^-(i|f|y|n|map\w*|vf|filter(_complex\w*|_script)?|lavfi|af|an|sn|dn|vn|ss|sseof|t|to|fs|fpsmax|shortest|"
    r"frames\w*|vframes|aframes|fps_mode|vsync|r|s|aspect|pix_fmt|c|codec|vcodec|acodec|scodec|c:[^v].*|codec:[^v].*|"
    r"a[rcq]|b:a\w*|q:a|progress|stdin|nostdin|dump\w*|attach|timecode|metadata\w*|itsoffset|copyts|"
    r"enc_time_base\w*|bitexact|color_\w+|colorspace|streamid|program|v|loglevel|report|pass\w*|vstats\w*|"
    r"h|help|\?|version|buildconf|formats|muxers|demuxers|devices|codecs|decoders|encoders|bsfs|protocols|filters|"
    r"pix_fmts|layouts|sample_fmts|L|sources|sinks|hwaccels)(:.*)?$")
# options that take no value: a word after one of them would be an output file name
_FLAGS = {"-psnr", "-hide_banner", "-stats", "-nostats", "-benchmark", "-benchmark_all", "-copyinkf", "-apad",
          "-re", "-dn", "-xerror", "-ignore_unknown", "-copytb", "-intra", "-deinterlace", "-debug_ts",
          "-qphist", "-shortest_buf_duration", "-autorotate", "-noautorotate", "-autoscale", "-noautoscale",
          "-accurate_seek", "-noaccurate_seek", "-fix_sub_duration"}


def check_encoder_args(args: list[str]) -> tuple[str, ...]:
    """``--encoder-args`` split into options, each followed by one value (or none, for the few
    flags ffmpeg has); raises ValueError (the message names the token) for what enhancer cannot
    allow: an option it manages itself, an option missing its value, or a word that is no
    option's value (ffmpeg would take it for another output file)."""
    out: list[str] = []
    expect_value = False
    for tok in args:
        if not isinstance(tok, str):
            raise ArgumentError(f"{tok!r} is not text")
        is_option = len(tok) > 1 and tok[0] == "-" and (tok[1].isalpha() or tok[1] in "_/?")
        if is_option:
            if expect_value:
                raise ArgumentError(f"{out[-1]} needs a value before {tok}")
            if any(ch.isspace() for ch in tok):
                raise ArgumentError(f"{tok!r}: an option and its value are two words")
            name = "-" + tok[1:].lstrip("/")  # -/opt reads opt's value from a file
            base = name.split(":")[0] if not name.startswith(("-c:", "-codec:")) else name
            if _DENIED_OPTIONS.match(name) or _DENIED_OPTIONS.match(base):
                raise ArgumentError(f"{tok} is set by enhancer itself, from its own options ("
                                    + ", ".join(option(o) for o in ("codec", "crf", "preset", "pix_fmt", "size",
                                                                    "audio")) + " ...)")
            expect_value = base not in _FLAGS
        elif expect_value:
            expect_value = False
        else:
            raise ArgumentError(f"{tok!r} is not the value of an option (ffmpeg would write another output file)")
        out.append(tok)
    if expect_value:
        raise ArgumentError(f"{out[-1]} needs a value")
    return tuple(out)


def merged_params(vargs: list[str], extra: list[str]) -> tuple[list[str], list[str]]:
    """The user's -x264-params / -x265-params appended to enhancer's own (ffmpeg keeps only the last
    of a repeated option, which would drop the memory fitting and x265's quiet log): later keys win
    in x264 and x265, so the user's choices still override enhancer's."""
    extra = list(extra)
    for key in ("-x264-params", "-x265-params"):
        while key in extra:
            k = extra.index(key)
            theirs = extra[k + 1]
            del extra[k:k + 2]
            if key in vargs:
                j = vargs.index(key)
                vargs = vargs[:j + 1] + [f"{vargs[j + 1]}:{theirs}"] + vargs[j + 2:]
            else:
                vargs = vargs + [key, theirs]
    return vargs, extra
