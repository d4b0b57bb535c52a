"""How much memory the encoder takes, and how many frames the restorer gets at once beside it."""
from __future__ import annotations

import dataclasses

from enhancer.media.encode import EncodeOptions
from enhancer.media.videoinfo import VideoInfo
from enhancer.pipeline.engine import EnhanceOptions
from enhancer.restore.restorer import Restorer


# x264 at its default preset holds about 200-220 bytes per output pixel once its lookahead is full
# (measured on 2 cores at 1440p and 4320p, benchmarks/memory.py --encoder): 6.8 GB for 4320p.
ENCODER_BYTES_PER_PIXEL = {"h264": 210, "h265": 210}
# shorter lookaheads (no sync lookahead, fewer frame threads: muxer.lean_threads), tried in turn,
# with the bytes per output pixel x264 then holds: 3,592 and 2,476 MiB measured at 4320p
# (2 cores), against 6,832 MiB at the preset's lookahead; even no lookahead and one thread
# holds 2,280 MiB there, so an 8K H.264 output needs about 2.5 GB whatever is done
LEAN = ((10, 120), (5, 80))
# the encoder may plan on this share of the memory available (the model's buffers get half)
ENCODER_SHARE = 0.25


def encoder_bytes(info: VideoInfo, scale: int, encode: EncodeOptions) -> int:
    """About how much memory the encoder of this output will hold."""
    pixels = info.display_width * info.display_height * scale * scale
    if encode.lookahead is not None and encode.codec in ENCODER_BYTES_PER_PIXEL:
        return pixels * dict(LEAN).get(encode.lookahead, LEAN[0][1])
    return pixels * ENCODER_BYTES_PER_PIXEL.get(encode.codec, 24)


def fit_encoder(info: VideoInfo, scale: int, encode: EncodeOptions) -> EncodeOptions:
    """``encode``, with a shorter x264/x265 lookahead where the encoder at its preset's would take
    more than its share of the memory available (an 8K output on a machine with less than about
    28 GB): the first of :data:`LEAN` that fits, else the leanest."""
    if encode.codec not in ENCODER_BYTES_PER_PIXEL or encode.lookahead is not None:
        return encode
    from enhancer.restore.memory import host_available

    share = host_available() * ENCODER_SHARE
    if encoder_bytes(info, scale, encode) <= share:
        return encode
    for lookahead, _ in LEAN:
        lean = dataclasses.replace(encode, lookahead=lookahead)
        if encoder_bytes(info, scale, lean) <= share:
            return lean
    return lean


def _chunk(restorer: Restorer, info: VideoInfo, opts: EnhanceOptions, encode: EncodeOptions) -> int:
    """Core frames per restorer call: the user's, else what fits the restorer's memory budget
    beside the encoder's."""
    fit = getattr(restorer, "chunk_for", None)
    if fit is None:
        return max(1, opts.chunk or restorer.chunk)
    planned = fit(info.display_height, info.display_width, reserve=encoder_bytes(info, restorer.scale, encode))
    return max(1, opts.chunk or planned)
