"""A blind A/B study people can take offline: pairs of versions of the same clip, side by side.

``make_study(["out/general-x2", "out/lanczos"], "study")`` pairs the files of the same clip (the
same name without its extension) in each folder; a method is named after its folder. For every
clip and every pair of methods it makes one trial (``repeats`` of them), puts the two sides in a
random order, shuffles the trials, and writes ``study/index.html`` (script and styles inline), the
videos in ``study/media/`` under names that do not give the method away, and ``study/study.json``
(the trials as shown, with the seed). Videos a browser plays as they are (H.264 8-bit 4:2:0 in
MP4, VP8/VP9/AV1 in WebM) are copied; any other (FFV1 in MKV, ProRes, 10-bit ...) is transcoded
to H.264 MP4 at its own size (CRF 16, nothing lost that a viewer could see).

The page plays both sides muted, looping and in step. Keys: left arrow or A (left is better),
right arrow or D (right is better), down arrow or S (the same), space (pause), backspace (undo).
Choices are kept in the browser's localStorage, so a page closed halfway resumes, and are
exported as CSV with the columns ``clip,left,right,choice`` (``left``/``right``: the methods as
shown; ``choice``: ``left``, ``right`` or ``same``). ``enhancer study score`` reads those files.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import random
import shutil
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

from enhancer.errors import InputError, UsageError, escape
from enhancer.media import ffmpeg as ff
from enhancer.batch.naming import VIDEO_EXTENSIONS

CRF = 16
_PLAYABLE = {".mp4": {"h264"}, ".m4v": {"h264"}, ".webm": {"vp8", "vp9", "av1"}}


@dataclass
class Trial:
    clip: str
    left: str  # method names, as shown
    right: str
    left_video: str  # relative to the study folder
    right_video: str


@dataclass
class Study:
    folder: Path
    page: Path
    methods: list[str]
    clips: list[str]
    trials: list[Trial]
    skipped: list[str] = field(default_factory=list)  # clips that some folder lacks
    transcoded: int = 0
    # clips left out because their versions differ in length (not the same clip): "x (1.0 s in a, 3.0 s in b)"
    unequal: list[str] = field(default_factory=list)


def _videos(folder: Path) -> dict[str, Path]:
    """The clips of one method's folder by name (the file name without its extension)."""
    if not folder.is_dir():
        raise InputError("is not a folder", path=str(folder), hint="give one folder of results per method")
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS and not p.name.startswith("."):
            if p.stem in found:
                raise UsageError(f"holds two videos of clip {p.stem!r} ({found[p.stem].name}, {p.name})",
                                 path=str(folder), hint="keep one file per clip in each method's folder")
            found[p.stem] = p
    return found


def _playable(path: Path) -> bool:
    from enhancer.media.probe import probe

    info = probe(str(path))
    return (info.codec in _PLAYABLE.get(path.suffix.lower(), set()) and info.pix_fmt in ("yuv420p", "yuvj420p"))


def _transcode(src: Path, out: Path) -> None:
    ff.run([ff.tools().ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", ff.file_arg(src),
            "-map", "0:v:0", "-vf", "crop=trunc(iw/2)*2:trunc(ih/2)*2,scale=out_color_matrix=bt709:out_range=tv,"
            "format=yuv420p", "-c:v", "libx264", "-preset", "medium", "-crf", str(CRF), "-colorspace", "bt709",
            "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv", "-movflags", "+faststart",
            "-an", ff.file_arg(out)], path=str(src), what="transcoding for the study page failed")


def _asset(name: str) -> str:
    return (resources.files("enhancer") / "assets" / name).read_text(encoding="utf-8")


def make_study(folders: list[str], out: str, *, seed: int | None = None, repeats: int = 1,
               log=lambda msg: None) -> Study:
    """Build the study folder ``out`` from one folder of results per method."""
    dirs = [Path(f) for f in folders]
    if len(dirs) < 2:
        raise UsageError("a study needs at least two folders, one per method")
    methods = [d.resolve().name for d in dirs]
    for name in set(methods):
        if methods.count(name) > 1:
            raise UsageError(f"two folders are both called {name!r}, and a method is named after its folder",
                             hint="rename one of them")
    if repeats < 1:
        raise UsageError("repeats must be at least 1")
    videos = [_videos(d) for d in dirs]
    every = sorted(set().union(*videos))
    clips = [c for c in every if all(c in v for v in videos)]
    skipped = [c for c in every if c not in clips]
    if not clips:
        raise UsageError("no clip is in every folder (clips are matched by file name without the extension)",
                         path=str(dirs[0]))
    differ = {clip: why for clip in clips if (why := _lengths_differ(methods, [v[clip] for v in videos]))}
    unequal = [f"{clip} ({why})" for clip, why in differ.items()]
    clips = [c for c in clips if c not in differ]
    if not clips:
        raise UsageError("the versions of every clip differ in length, so no pair shows the same clip: "
                         + "; ".join(unequal), path=str(dirs[0]),
                         hint="make each method's version of a clip from the same source, start and duration")
    folder = Path(out)
    media = folder / "media"
    media.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    salt = f"{rng.getrandbits(64):016x}"  # media names that do not say which method made them
    files: dict[tuple[str, str], str] = {}
    transcoded = 0
    for method, found in zip(methods, videos):
        for clip in clips:
            src = found[clip]
            key = hashlib.sha256(f"{salt}/{method}/{clip}".encode()).hexdigest()[:16]
            if _playable(src):
                dest = media / f"{key}{src.suffix.lower()}"
                shutil.copyfile(src, dest)
            else:
                dest = media / f"{key}.mp4"
                log(f"transcoding {src} to H.264")
                _transcode(src, dest)
                transcoded += 1
            files[(method, clip)] = f"media/{dest.name}"
    trials = []
    for clip in clips:
        for a, b in itertools.combinations(methods, 2):
            for _ in range(repeats):
                left, right = (a, b) if rng.random() < 0.5 else (b, a)
                trials.append(Trial(clip, left, right, files[(left, clip)], files[(right, clip)]))
    rng.shuffle(trials)
    design = {"methods": methods, "clips": clips, "seed": seed, "repeats": repeats,
              "trials": [asdict(t) for t in trials]}
    study_id = hashlib.sha256(json.dumps(design, sort_keys=True).encode()).hexdigest()[:16]
    (folder / "study.json").write_text(json.dumps({"id": study_id, **design}, indent=1), encoding="utf-8")
    page_data = json.dumps({"id": study_id, "trials": [asdict(t) for t in trials]}).replace("</", "<\\/")
    page = folder / "index.html"
    page.write_text(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' "
        "content='width=device-width, initial-scale=1'><title>Which looks better?</title>"
        f"<style>{_asset('study.css')}</style></head><body>{_asset('study.html')}"
        f"<script id='study-data' type='application/json'>{page_data}</script>"
        f"<script>{_asset('study.js')}</script></body></html>", encoding="utf-8")
    return Study(folder, page, methods, clips, trials, skipped, transcoded, unequal)


def _lengths_differ(methods: list[str], paths: list[Path]) -> str | None:
    """Why the versions of one clip are not the same clip (their lengths differ by more than a
    frame and a half), or None: a 1 s clip beside a 3 s one is no fair pair."""
    from enhancer.media.probe import probe

    infos = [probe(str(p)) for p in paths]
    known = [(m, i) for m, i in zip(methods, infos) if i.duration]
    if len(known) < 2:
        return None
    fps = max((float(i.fps) for _, i in known if i.fps), default=0.0)
    slack = 1.5 / fps if fps else 0.1
    lengths = [i.duration for _, i in known]
    if max(lengths) - min(lengths) <= slack:
        return None
    return ", ".join(f"{i.duration:.2f} s in {m}" for m, i in known)


def describe(study: Study) -> str:
    """What was made, for the command line."""
    lines = [f"{len(study.trials)} pairs ({len(study.clips)} clips, methods {', '.join(study.methods)}): "
             f"{study.page}"]
    if study.transcoded:
        lines.append(f"{study.transcoded} videos transcoded to H.264 for the browser")
    if study.skipped:
        lines.append("left out (not in every folder): " + ", ".join(escape(c) for c in study.skipped))
    if study.unequal:
        lines.append("left out (its versions differ in length, so they are not the same clip): "
                     + "; ".join(escape(c) for c in study.unequal))
    return "\n".join(lines)
