"""Which files a command line names, and what each output is called.

Two rules hold whatever the inputs: an output is never an input (not the source itself, not a
file this tool made, not another input), and no two inputs share an output. Names are decided
for the whole batch before any work starts; a collision that no rule can resolve is an error
then, not a lost file later.
"""
from __future__ import annotations

import glob
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from enhancer.errors import UsageError, option, shown
from enhancer.media.encode import CONTAINERS, IMAGE_CODECS, check_container, default_extension
from enhancer.media.temps import fit_name

from enhancer.media.files import VIDEO_EXTENSIONS  # noqa: E402  (the one table; re-exported)
from enhancer.media.files import same_file  # noqa: E402


@dataclass
class Job:
    input: str
    output: str
    display: str | None = None  # what to call the input in reports (stdin's spool file is "-")


def _is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def _inside(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or below it (both absolute and normalised)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class _Made:
    """Files this tool made, as the state files of the folders being searched record them."""

    def __init__(self) -> None:
        self.known: set[str] = set()
        self.read: set[str] = set()

    def __contains__(self, path: str) -> bool:
        from enhancer.batch.state import recorded_outputs

        folder = os.path.dirname(path)
        # a state file records outputs anywhere below its folder: read those of every ancestor
        probe = folder
        while probe not in self.read:
            self.read.add(probe)
            self.known |= recorded_outputs(probe)
            parent = os.path.dirname(probe)
            if parent == probe:
                break
            probe = parent
        return path in self.known


def discover(inputs: Iterable[str], recursive: bool = False,
             exclude: Iterable[str | os.PathLike] = ()) -> list[tuple[str, Path | None]]:
    """Expand files, folders and globs into ``(file, root)`` pairs; ``root`` is the folder an input
    was found under (outputs mirror the tree below it) or None for files named directly.
    Names that do not exist are kept, so they fail later with a clear reason.

    Searching folders and globs never finds this tool's own work: hidden files and folders (part
    folders, temporaries), anything below ``exclude`` (the output folder, when it lies inside an
    input folder), and outputs a state file records. A file named directly is always taken."""
    from enhancer.media.sequence import is_image_sequence

    found: list[tuple[str, Path | None]] = []
    seen: set[str] = set()
    made = _Made()
    excluded = [os.path.abspath(e) for e in exclude]

    def add(path: str, root: Path | None) -> None:
        key = os.path.abspath(path)
        if key not in seen:
            seen.add(key)
            found.append((path, root))

    def searched_ok(path: str, root: str | None) -> bool:
        key = os.path.abspath(path)
        for ex in excluded:
            if _inside(key, ex) and not (root and _inside(root, ex)):
                return False
        return key not in made

    for item in inputs:
        if item == "-":
            add(item, None)
        elif is_image_sequence(item):
            add(item, None)
        elif os.path.isdir(item):
            root = Path(item)
            pattern = "**/*" if recursive else "*"
            for p in sorted(root.glob(pattern)):
                rel = p.relative_to(root)
                if any(part.startswith(".") for part in rel.parts):
                    continue
                if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS and searched_ok(str(p), os.path.abspath(root)):
                    add(str(p), root)
        elif not os.path.exists(item) and _is_glob(item):
            matches = sorted(glob.glob(item, recursive=recursive))
            if not matches:
                add(item, None)  # fails as "no such file"
            base = os.path.abspath(os.path.dirname(item[:min(item.find(c) for c in "*?[" if c in item)]) or ".")
            for m in matches:
                if os.path.isfile(m) and not os.path.basename(m).startswith(".") and searched_ok(m, base):
                    add(m, None)
        else:
            add(item, None)
    return found


@dataclass
class _Plan:
    src: str
    root: Path | None
    folder: Path  # relative folder below the output folder
    stem: str
    ext: str  # output extension ("" for image sequences)
    src_ext: str  # the input's extension, lower case, without the dot
    frames: bool  # an image-sequence output folder (NAME_frames)
    raw_ext: str = ""  # the input's extension as written (a.mp4 and a.MP4 differ only there)

    def name(self) -> str:
        if self.frames:
            return fit_name(f"{self.stem}_frames", keep_suffix="_frames")
        return fit_name(self.stem + self.ext)


def _collisions(plans: list[_Plan], out: Path) -> list[list[_Plan]]:
    groups: dict[str, list[_Plan]] = defaultdict(list)
    for p in plans:
        groups[os.path.normcase(os.path.abspath(out / p.folder / p.name()))].append(p)
    return [g for g in groups.values() if len(g) > 1]


def _check_output_name(out: Path, codec: str) -> None:
    """Refuse an output named like a video file that this tool cannot write (``x.avi``), or a video
    file name for an image sequence, rather than making a folder of that name."""
    ext = out.suffix.lower()
    if out.is_dir() or ext not in VIDEO_EXTENSIONS:
        return
    writable = ", ".join(sorted(CONTAINERS))
    if codec in IMAGE_CODECS:
        raise UsageError(f"{option('codec')} {codec} writes an image sequence (a folder), not a {ext} file", path=str(out),
                         hint=f"give a folder name, or choose a video {option('codec')}")
    if ext not in CONTAINERS:
        raise UsageError(f"cannot write {ext} files", path=str(out),
                         hint=f"name the output with one of {writable} (.mkv holds every codec), or give a folder")


def preview_path(output: str) -> Path:
    """Where ``--preview`` writes for an output: ``NAME.preview.mp4`` beside it."""
    out = Path(output)
    return out.with_name(out.stem + ".preview.mp4")


def _check_previews(jobs: list[Job], sources: list[str]) -> None:
    """Previews get the outputs' checks: none lands on an input, no two share a name (``a.mov``
    and ``a.mp4`` both preview as ``a.preview.mp4``)."""
    seen: dict[str, Job] = {}
    for job in jobs:
        target = str(preview_path(job.output))
        if any(same_file(target, s) for s in sources):
            raise UsageError("the preview would replace an input", path=target, hint="choose another -o")
        key = os.path.normcase(os.path.abspath(target))
        if key in seen:
            raise UsageError(f"{shown(seen[key].input)} and {shown(job.input)} would both be previewed as "
                             f"{shown(target)}", hint="preview them in separate runs into different folders")
        seen[key] = job


def plan_jobs(found: list[tuple[str, Path | None]], output: str, codec: str,
              container: str | None = None, *, preview: bool = False) -> list[Job]:
    """Name each output. With one file input and ``output`` naming a file (an extension ffmpeg
    can write, not an existing folder), that is the output; otherwise ``output`` is a folder and
    the inputs' tree is mirrored below it.

    Collisions are resolved the same way on every run, whatever the order of the inputs: inputs
    that differ only in extension (``a.avi``, ``a.ts``) keep it in the name (``a_avi.mkv``);
    files of the same name from different folders mirror those folders, from the one they have
    in common, below the output folder (``x/clip.mp4``, ``y/clip.mp4``); an output that would land on an input is
    named ``NAME.enhanced.EXT``; names too long for the file system are shortened with a hash.
    With ``preview``, the previews written instead are checked the same way. Raises
    :class:`UsageError` for what is left."""
    if output == "-":
        if len(found) != 1:
            raise UsageError("-o - (stdout) takes exactly one input")
        return [Job(found[0][0], "-")]
    from enhancer.media.sequence import is_image_sequence, sequence_name

    out = Path(output)
    sources = [src for src, _ in found if src != "-"]
    _check_output_name(out, codec)
    is_file_target = (len(found) == 1 and found[0][1] is None and not out.is_dir()
                      and out.suffix.lower() in CONTAINERS and codec not in IMAGE_CODECS)
    if is_file_target:
        src = found[0][0]
        target = out
        if src != "-" and same_file(str(target), src):
            target = out.with_name(fit_name(f"{out.stem}.enhanced{out.suffix}"))
            if same_file(str(target), src):
                raise UsageError("the output would replace the input", path=src, hint="choose another -o")
        jobs = [Job(src, str(target))]
        check_container(codec, target)
        if preview:
            _check_previews(jobs, sources)
        return jobs

    if not out.exists() and out.suffix.lower() in CONTAINERS and codec not in IMAGE_CODECS:
        what = f"{len(found)} inputs" if len(found) > 1 else "a folder of inputs"
        raise UsageError(f"names one file, and {what} cannot all be written to it", path=output,
                         hint="give a folder for -o (it is created), or one input at a time")
    if out.exists() and not out.is_dir():
        raise UsageError("is a file, but these inputs need an output folder", path=output,
                         hint="give a folder, or one input and a file name ending in .mp4, .mkv, .mov, .m4v or .nut")
    plans: list[_Plan] = []
    for src, root in found:
        sp = Path(src) if src != "-" else Path("stdin.mkv")
        rel = sp.relative_to(root) if root is not None else Path(sp.name)
        if src != "-" and is_image_sequence(src):
            sp = rel = Path(sequence_name(src))
        ext = "" if codec in IMAGE_CODECS else (
            ("." + container.lstrip(".")) if container else default_extension(codec, sp.suffix))
        plans.append(_Plan(src, root, rel.parent, rel.stem, ext, sp.suffix.lower().lstrip("."),
                           codec in IMAGE_CODECS, sp.suffix.lstrip(".")))

    # 1. the same name with different extensions: those whose extension changed keep theirs in the
    # name, lower case unless only its case tells two apart (a.mp4 and a.MP4: a.mp4 and a_MP4.mp4)
    for group in _collisions(plans, out):
        if len({p.raw_ext for p in group}) > 1:
            for p in group:
                if p.frames or "." + p.raw_ext != p.ext:
                    tag = p.raw_ext if sum(q.src_ext == p.src_ext for q in group) > 1 else p.src_ext
                    p.stem = f"{p.stem}_{tag}" if tag else p.stem
    # 2. the same name from different folders: mirror those folders (below their common one)
    for group in _collisions(plans, out):
        direct = [p for p in group if p.src != "-"]
        if len(direct) > 1:
            parents = [os.path.dirname(os.path.abspath(p.src)) for p in direct]
            common = os.path.commonpath(parents)
            for p, parent in zip(direct, parents):
                p.folder = Path(os.path.relpath(parent, common)) if parent != common else Path()
    # 3. an output never lands on an input, this one's or another's
    for p in plans:
        target = str(out / p.folder / p.name())
        if any(same_file(target, s) for s in sources):
            p.stem = f"{p.stem}.enhanced"
    left = _collisions(plans, out)
    if left:
        g = left[0]
        names = " and ".join(shown(p.src) for p in g[:3]) + (f" (and {len(g) - 3} more)" if len(g) > 3 else "")
        raise UsageError(f"{names} would all be written to {shown(out / g[0].folder / g[0].name())}",
                         hint="rename one, or enhance them in separate runs into different folders")
    jobs = []
    for p in plans:
        target = out / p.folder / p.name()
        if any(same_file(str(target), s) for s in sources):
            raise UsageError("the output would replace an input", path=str(target), hint="choose another -o")
        check_container(codec, target)
        jobs.append(Job(p.src, str(target)))
    if preview:
        _check_previews(jobs, sources)
    return jobs
