"""The package's shape: no import circles (module-level or inside functions), one media table."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "enhancer"


def _graph() -> dict[str, set[str]]:
    mods = {}
    for p in PACKAGE.rglob("*.py"):
        name = ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = p
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("enhancer"):
                edges[m] |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in mods}
                if node.module in mods and node.module != "enhancer":
                    edges[m].add(node.module)
            elif isinstance(node, ast.Import):
                edges[m] |= {a.name for a in node.names if a.name in mods}
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_no_import_circles():
    edges = _graph()
    assert len(edges) > 40 and edges["enhancer.cli"]  # the graph was read
    assert _cycles(edges) == []
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]  # and a circle is seen


def test_one_table_of_media_extensions():
    from enhancer import evaluate, naming
    from enhancer.data import dataset
    from enhancer.io import media, sequence

    assert naming.VIDEO_EXTENSIONS is media.VIDEO_EXTENSIONS is dataset.VIDEO_EXT
    assert sequence.IMAGE_EXT is media.IMAGE_EXTENSIONS is evaluate.IMAGE_EXT is dataset.IMAGE_EXT
    assert ".exr" in media.IMAGE_EXTENSIONS and ".mxf" in media.VIDEO_EXTENSIONS


def test_exr_and_dpx_frames_are_images_to_evaluate_too(tmp_path):
    """.exr frames were an image sequence to enhance but held "no images" to evaluate."""
    import subprocess

    import numpy as np

    from enhancer.evaluate import frames
    from enhancer.io import ffmpeg as ff
    from enhancer.io.sequence import is_image_sequence

    for ext, pix in ((".exr", "gbrpf32le"), (".dpx", "rgb48le")):
        folder = tmp_path / ext[1:]
        folder.mkdir()
        subprocess.run([ff.tools().ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=5",
                        "-frames:v", "3", "-pix_fmt", pix, str(folder / f"f_%03d{ext}")], check=True)
        assert is_image_sequence(str(folder))
        got = list(frames(str(folder)))
        assert len(got) == 3 and got[0].shape == (48, 64, 3) and got[0].dtype == np.uint8 and got[0].mean() > 20


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at module level or inside functions."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return out


def test_layers_import_only_downwards():
    """The design's rules: the media layer (io) never imports torch, the pure models never
    import the media layer, and nothing imports the command line."""
    files = {p: _imports(p) for p in PACKAGE.rglob("*.py")}
    assert len(files) > 40
    for p, mods in files.items():
        rel = p.relative_to(PACKAGE).as_posix()
        if rel.startswith("io/"):
            assert not any(m == "torch" or m.startswith("torch.") for m in mods), rel
        if rel.startswith("models/"):
            assert not any(m.startswith("enhancer.io") for m in mods), rel
        if not rel.startswith("cli") and rel != "__main__.py":  # python -m enhancer runs the CLI
            assert not any(m == "enhancer.cli" or m.startswith("enhancer.cli.") for m in mods), rel
    assert "torch" in files[PACKAGE / "models" / "st3d.py"]  # the imports were read
