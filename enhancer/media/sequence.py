"""Image sequences as inputs: a folder of frames, or a printf pattern such as ``frames_%05d.png``."""
from __future__ import annotations

import collections
import glob
import os
import re
from pathlib import Path

from enhancer.media.files import IMAGE_EXTENSIONS as IMAGE_EXT, VIDEO_EXTENSIONS
_PATTERN = re.compile(r"%0?(\d*)d")
# an image sequence's frame rate: one line such as 24, 23.976 or 30000/1001 in this file, in the
# folder that holds the images (enhancer's own png/tiff outputs write it)
FPS_SIDECAR = "fps.txt"


def sidecar_path(path: str) -> Path:
    """Where an image sequence's frame rate is kept: ``fps.txt`` in the folder of its images."""
    folder = Path(path).parent if is_pattern(path) else Path(path)
    return folder / FPS_SIDECAR


def is_pattern(path: str) -> bool:
    """A printf pattern such as ``frames_%05d.png``, and no file or folder of that exact name
    (a video called ``p%d.mp4`` or a folder ``clips_%03d`` is itself, not a pattern)."""
    return bool(_PATTERN.search(os.path.basename(path))) and not os.path.lexists(path)


def _natural(p: Path) -> list:
    """Sort key: numbers in a name compare as numbers (frame 2 before frame 10)."""
    return [(0, int(t), t) if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", p.name)]


def folder_images(folder: Path) -> list[Path]:
    """A folder's images in frame order: numbers in names compare as numbers, so ``2.png``
    comes before ``10.png`` whether or not the numbers are zero-padded."""
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXT
                   and not p.name.startswith(".")), key=_natural)


def is_image_sequence(path: str) -> bool:
    """A printf pattern, or a folder that holds images and no videos."""
    if is_pattern(path):
        return True
    p = Path(path)
    if not p.is_dir():
        return False
    files = [f for f in p.iterdir() if f.is_file()]
    return any(f.suffix.lower() in IMAGE_EXT for f in files) and \
        not any(f.suffix.lower() in VIDEO_EXTENSIONS for f in files)


def sequence_files(path: str) -> list[Path]:
    """The image files an image sequence (a folder or a printf pattern) is made of, in order."""
    if is_pattern(path):
        folder, base = os.path.split(os.path.abspath(path))
        head, tail = _PATTERN.split(base, maxsplit=1)[0], _PATTERN.split(base, maxsplit=1)[-1]
        found = []
        for name in os.listdir(folder) if os.path.isdir(folder) else []:
            middle = name[len(head):len(name) - len(tail)]
            if name.startswith(head) and name.endswith(tail) and middle.isdigit():
                found.append((int(middle), Path(folder) / name))
        return [p for _, p in sorted(found)]
    return folder_images(Path(path))


def sequence_input(path: str, fps: str = "25") -> tuple[str, list[str]]:
    """(the name ffmpeg reads, the input options before -i) for an image sequence. Paths are
    absolute, so a name can never be taken for an option or a protocol."""
    if is_pattern(path):
        pattern = os.path.abspath(path)
        folder, base = os.path.split(pattern)
        head, tail = _PATTERN.split(base, maxsplit=1)[0], _PATTERN.split(base, maxsplit=1)[-1]
        numbers = []
        for name in os.listdir(folder) if os.path.isdir(folder) else []:
            if name.startswith(head) and name.endswith(tail) and name[len(head):len(name) - len(tail)].isdigit():
                numbers.append(int(name[len(head):len(name) - len(tail)]))
        start = min(numbers) if numbers else 0
        _refuse_gaps(sorted(numbers), path)
        return pattern, ["-f", "image2", "-framerate", fps, "-start_number", str(start)]
    folder = Path(path).resolve()
    files = folder_images(folder)
    exts = collections.Counter(f.suffix for f in files)
    ext = exts.most_common(1)[0][0]
    names = [f.name for f in files if f.suffix == ext]
    if names != sorted(names):
        # ffmpeg's glob reads names in character order (10.png before 2.png): numbers that are not
        # zero-padded are read through a printf pattern instead, which counts
        return _unpadded_pattern(folder, names, fps)
    return glob.escape(str(folder)) + "/*" + ext, ["-f", "image2", "-pattern_type", "glob", "-framerate", fps]


def _refuse_gaps(numbers: list[int], path: str) -> None:
    """InputError where sorted frame numbers skip one: ffmpeg's numbered-image reader stops at
    the first gap, so every frame after it would be lost without a word."""
    from enhancer.errors import InputError

    for a, b in zip(numbers, numbers[1:]):
        if b != a + 1:
            raise InputError(f"frame {a + 1} is missing (the numbers jump from {a} to {b}); the frames after the gap "
                             "would be lost", path=path, hint="renumber the images without gaps, or put the missing "
                                                              "ones back")


def _unpadded_pattern(folder: Path, names: list[str], fps: str) -> tuple[str, list[str]]:
    """The image2 pattern (``frame_%d.png`` from -start_number N) that reads ``names`` (in frame
    order) as ffmpeg should, or InputError where no one pattern does."""
    from enhancer.errors import InputError

    parts = [re.fullmatch(r"(.*?)(\d+)(\D*)", n) for n in names]
    heads = {(m.group(1), m.group(3)) for m in parts if m}
    numbers = [int(m.group(2)) for m in parts if m]
    if None in parts or len(heads) != 1:
        raise InputError("the images' names do not sort in frame order (numbers not zero-padded, with different "
                         "prefixes)", path=str(folder),
                         hint="name the frames with zero-padded numbers (frame_0001.png)")
    _refuse_gaps(numbers, str(folder))
    head, tail = heads.pop()
    pattern = str(folder / (head.replace("%", "%%") + "%d" + tail.replace("%", "%%")))
    return pattern, ["-f", "image2", "-framerate", fps, "-start_number", str(numbers[0])]


def sequence_name(path: str) -> str:
    """A name for outputs made from a sequence: the folder's, or the pattern's without %0Nd."""
    if is_pattern(path):
        stem = _PATTERN.sub("", Path(path).stem).strip("_-. ")
        return stem or Path(path).parent.name or "frames"
    return Path(path).resolve().name
