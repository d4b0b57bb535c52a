"""The recipe of an output: everything that decides what it holds, with one ``key()``.

The state file (is this output done?) and the parts of a long output (may this part be reused?)
both compare recipe keys, so an output or a part is reused only for the exact recipe that made
it: the same input (path, size, modification time), the same weights (a content hash, not a
model name), the same restorer settings that change pixels (scale, precision), the same encoding
options and the same segment and deinterlacing. Settings that cannot change a pixel (tile size,
chunk length, device) are left out, so changing them redoes nothing.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass

RECIPE_VERSION = 1


def input_identity(path: str) -> dict:
    """Path, size and modification time of an input. An image sequence (a folder or a pattern)
    counts its frames and sums their sizes, with the newest modification time."""
    from enhancer.media.sequence import is_image_sequence, sequence_files, sidecar_path

    if is_image_sequence(path):
        stats = [f.stat() for f in sequence_files(path)]
        ident = {"path": os.path.abspath(path), "frames": len(stats), "size": sum(s.st_size for s in stats),
                 "mtime_ns": max((s.st_mtime_ns for s in stats), default=0)}
        try:  # the frame rate beside the images decides the output's timing (only where there is one)
            ident["fps_file"] = sidecar_path(path).read_text(encoding="utf-8").strip()[:64]
        except (OSError, UnicodeDecodeError):
            pass
        return ident
    st = os.stat(path)
    return {"path": os.path.abspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def restorer_identity(restorer) -> dict:
    """The restorer settings that change pixels, and the weights' content hash (of the file, for
    the field's models). The temporal stage's settings enter only where it runs, so the keys of
    outputs made without it still hold."""
    d = restorer.describe()
    ident = {k: d.get(k) for k in ("model", "kind", "scale", "precision")}
    ident["weights_sha256"] = getattr(restorer, "weights_sha256", None)
    if d.get("temporal"):
        ident["temporal"] = d["temporal"]
    if d.get("int8"):  # the int8 ranges on the card
        ident["int8"] = d["int8"]
    return ident


@dataclass(frozen=True)
class Recipe:
    """What made (or will make) one output."""

    input: dict
    restorer: dict
    encode: dict
    segment: dict
    version: int = RECIPE_VERSION

    @classmethod
    def of(cls, input_path: str, restorer, encode, opts) -> "Recipe":
        """The recipe for enhancing ``input_path`` with ``restorer``, ``encode``
        (:class:`~enhancer.media.encode.EncodeOptions`) and ``opts``
        (:class:`~enhancer.pipeline.engine.EnhanceOptions`). Raises OSError when the input is gone."""
        segment = {"deinterlace": opts.deinterlace, "start": opts.start, "duration": opts.duration,
                   "preview": opts.preview}
        if getattr(opts, "fps", None):  # settings added later enter only where set, so older keys still hold
            segment["fps"] = str(opts.fps)
        if getattr(opts, "splice", False):
            segment["splice"] = True
        enc = asdict(encode)
        enc.pop("lookahead", None)  # fitted to the memory of the machine, like tile and chunk
        for later in ("square_pixels", "profile", "lossless", "field_order"):
            if not enc.get(later):
                enc.pop(later, None)
        return cls(input=input_identity(input_path), restorer=restorer_identity(restorer), encode=enc,
                   segment=segment)

    def to_dict(self) -> dict:
        return asdict(self)

    def key(self) -> str:
        """A short, stable digest of the whole recipe."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(text.encode()).hexdigest()[:32]
