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
    from enhancer.quality import evaluate
    from enhancer.batch import naming
    from enhancer.data import dataset
    from enhancer.media import files as media
    from enhancer.media import sequence

    assert naming.VIDEO_EXTENSIONS is media.VIDEO_EXTENSIONS is dataset.VIDEO_EXT
    assert sequence.IMAGE_EXT is media.IMAGE_EXTENSIONS is evaluate.IMAGE_EXT is dataset.IMAGE_EXT
    assert ".exr" in media.IMAGE_EXTENSIONS and ".mxf" in media.VIDEO_EXTENSIONS


def test_exr_and_dpx_frames_are_images_to_evaluate_too(tmp_path):
    """.exr frames were an image sequence to enhance but held "no images" to evaluate."""
    import subprocess

    import numpy as np

    from enhancer.quality.evaluate import frames
    from enhancer.media import ffmpeg as ff
    from enhancer.media.sequence import is_image_sequence

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


# The layers, lowest first: a module imports only its own layer and those below it. errors and progress
# are the two plain modules every layer may use; api assembles the pipeline, cli only parses flags.
LAYERS = ["errors", "progress", "media", "models", "restore", "pipeline", "batch", "data", "quality", "reports",
          "train", "conform", "api", "cli", "__main__"]


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_layers_import_only_downwards():
    """The design's rules: each layer imports only downwards; the media layer never imports torch,
    the pure models never import the media layer, nothing imports the command line (only
    ``python -m enhancer`` runs it), and click is the command line's alone."""
    files = {p: _imports(p) for p in PACKAGE.rglob("*.py")}
    assert len(files) > 40
    top = {p.stem for p in PACKAGE.glob("*.py")} | {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert top - {"__init__"} <= set(LAYERS), f"a module or folder outside the layers: {top - set(LAYERS)}"
    assert len(list(PACKAGE.glob("*.py"))) <= 8
    for p, mods in files.items():
        rel = p.relative_to(PACKAGE).as_posix()
        own = rel.split("/")[0].removesuffix(".py")
        if own == "__init__":
            continue
        for m in mods:
            if m.startswith("enhancer.") and _layer(m) in LAYERS:
                assert LAYERS.index(_layer(m)) <= LAYERS.index(own), f"{rel} imports {m}: a layer above its own"
        if rel.startswith("media/"):
            assert not any(m == "torch" or m.startswith("torch.") for m in mods), rel
        if rel.startswith("models/"):
            assert not any(m.startswith("enhancer.media") for m in mods), rel
        if not rel.startswith("cli/") and rel != "__main__.py":
            assert not any(m == "enhancer.cli" or m.startswith("enhancer.cli.") for m in mods), rel
            assert not any(m == "click" or m.startswith("click.") for m in mods), rel
    assert "torch" in files[PACKAGE / "models" / "st3d.py"]  # the imports were read
    assert "enhancer.restore.restorer" in files[PACKAGE / "pipeline" / "engine.py"]



def test_files_are_renamed_into_place_in_one_module():
    """Every file written for others to read takes its name through enhancer.media.temps
    (atomic_write, publish): no other module calls os.replace or os.rename."""
    pending: set[str] = set()
    found = []
    for p in PACKAGE.rglob("*.py"):
        rel = p.relative_to(PACKAGE).as_posix()
        if rel == "media/temps.py" or any(rel == x or (x.endswith("/") and rel.startswith(x)) for x in pending):
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("replace", "rename") \
                    and isinstance(node.value, ast.Name) and node.value.id == "os":
                found.append(f"{rel}:{node.lineno}")
    assert found == [], "use enhancer.media.temps.atomic_write or publish"


def test_no_module_over_600_lines():
    long = {p.relative_to(PACKAGE).as_posix(): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 600}
    assert long == {}


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                found.add(id(first.value))
    return found


def test_no_flag_strings_outside_the_command_line():
    """The library names options by their request fields (errors.option); only cli/ spells flags,
    so a message reads --tile on the command line and tile in Python."""
    import re

    flag = re.compile(r"(?<![\w-])--[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
    found = []
    for p in PACKAGE.rglob("*.py"):
        if p.relative_to(PACKAGE).parts[0] == "cli":
            continue
        tree = ast.parse(p.read_text())
        skip = _docstrings(tree)
        found += [f"{p.relative_to(PACKAGE)}:{n.lineno} {m}" for n in ast.walk(tree)
                  if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in skip
                  for m in flag.findall(n.value)]
    # other programs' flags: Ray's own command line, a CSS custom property in the HTML report
    assert [f for f in found if not f.endswith((" --head", " --pos"))] == []
    assert flag.findall("use --tile 256 or -o x, not x264-params") == ["--tile"]  # the scan sees a flag
