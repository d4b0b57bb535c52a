"""Enhance one whole video: :func:`enhance_video`.

A file output is made in resumable parts (:mod:`enhancer.pipeline.parts`); any other output (a
pipe, an image sequence, a preview) in one pass of the pump (:mod:`enhancer.pipeline.engine`)
straight into its muxer.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable

from enhancer.errors import OutputError, UsageError, option
from enhancer.restore.restorer import Restorer
from enhancer.media.encode import EncodeOptions
from enhancer.media.muxer import Muxer
from enhancer.media.geometry import check_frame_size
from enhancer.media.videoinfo import VideoInfo
from enhancer.media.reader import FrameReader
from enhancer.pipeline.budget import _chunk, fit_encoder
from enhancer.pipeline.engine import EnhanceOptions, EnhanceResult, _pump, alpha_frames, planar_frames, _stop, _Writer, finished
from enhancer.pipeline.notes import _expected_frames, _incomplete_warning, _unique, input_notes, shortfall
from enhancer.pipeline.parts import _enhance_in_parts, _resumable
from enhancer.progress import bar


def enhance_video(info: VideoInfo, output: str, restorer: Restorer, encode: EncodeOptions,
                  opts: EnhanceOptions | None = None, *, desc: str | None = None,
                  recipe_key: str | None = None, started: float | None = None,
                  on_staged: Callable[[Path, int], None] | None = None) -> EnhanceResult:
    """Enhance ``info.path`` into ``output``. Raises an :class:`~enhancer.errors.EnhancerError`
    on failure, after removing any partial output. File outputs are made in parts (a short file
    is one part) kept in a hidden folder beside the output: an interrupted run leaves them, and
    the next run with the same recipe (``recipe_key``, by default this call's
    :class:`~enhancer.pipeline.recipe.Recipe`) continues after the last finished part. ``started``
    (a ``time.perf_counter()`` reading, default now) is when the work on this file began: the
    result's seconds and the progress bar's rate both count from it. ``on_staged`` (path, frames)
    sees the joined file, checked, just before it takes the output's name: the batch records it
    there, so no crash leaves an output that no record knows."""
    opts = opts or EnhanceOptions()
    t0 = time.perf_counter() if started is None else started
    splan = None
    if opts.splice:
        from enhancer.pipeline import splice

        splice.check(info, output, opts.segment, preview=opts.preview)
        if opts.deinterlace == "on":
            raise UsageError(f"{option('splice', True)} keeps the rest of the file as it is, fields and all: {option('deinterlace')} on "
                             "cannot be combined with it", path=info.path)
        opts = dataclasses.replace(opts, deinterlace="off")
        splan = splice.plan_splice(info, encode, restorer.scale, output)
        encode = splan.encode
    encode = fit_encoder(info, restorer.scale, encode)
    check_frame_size(info, encode, info.display_width * restorer.scale, info.display_height * restorer.scale, output)
    if _resumable(info, output, encode, opts):
        if recipe_key is None:
            from enhancer.pipeline.recipe import Recipe

            recipe_key = Recipe.of(info.path, restorer, encode, opts).key()
        return _enhance_in_parts(info, output, restorer, encode, opts, recipe_key, desc, t0, splan=splan,
                                 on_staged=on_staged)
    chunk = _chunk(restorer, info, opts, encode)
    reader = FrameReader(info, deinterlace=opts.deinterlace, segment=opts.segment,
                         buffer=max(8, chunk + 2 * restorer.margin), planar=planar_frames(restorer, opts),
                         alpha=alpha_frames(info, encode, opts))
    muxer = Muxer(output, info, encode, reader.colour, segment=opts.segment)
    writer = _Writer(muxer, depth=max(4, chunk))
    expected = _expected_frames(info, opts)
    ok = False
    try:
        reader.start()
        writer.start()
        with bar(total=expected, desc=desc, unit="frame", enabled=opts.progress, start=t0) as pbar:
            frames = _pump(iter(reader), 0, restorer, writer, chunk, pbar)
            final = muxer.close()
            finished(pbar)
        ok = True
    finally:
        if not ok:
            _stop(writer, muxer.abort)
        reader.close()
    if muxer.frames != frames:
        raise OutputError(f"encoded {muxer.frames} frames but the model produced {frames}", path=output)
    why = shortfall(info, opts, reader, frames, list(reader.last_times))
    notes = [_incomplete_warning(why)] if why else []
    return EnhanceResult(output=str(final) if final else None, frames=frames, seconds=time.perf_counter() - t0,
                         warnings=_unique(input_notes(info) + reader.warnings + notes + muxer.warnings),
                         incomplete=why)
