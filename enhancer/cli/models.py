"""``models``: the installed models, one line each; one model's card; a model file inspected."""
from __future__ import annotations

import json
from pathlib import Path

import click

from enhancer.cli.common import CONTEXT, fail
from enhancer.errors import EnhancerError


@click.command(context_settings=CONTEXT, name="models")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the model cards as JSON lines.")
@click.option("--inspect", "inspect_path", default=None, metavar="PATH|NAME",
              help="Describe one model (a .pth, .pt, .ckpt, .safetensors or .onnx file, or an installed model's "
                   "name) and what enhance will do with it on this machine, one item a line.")
def models_cmd(name, as_json, inspect_path):
    """The installed models, one line each (name, task and scale, what it repairs, where it is);
    NAME: that model's whole card, its measured figures included."""
    from enhancer.restore import weights

    if inspect_path is not None and name is not None:
        fail("give a NAME or --inspect PATH, not both", 2)
    if inspect_path is not None:
        from enhancer.restore.inspect import inspect_model

        try:
            items = inspect_model(inspect_path)
        except EnhancerError as e:
            fail(str(e), 2)
        print(json.dumps(dict(items)) if as_json else "\n".join(f"{k}: {v}" for k, v in items))
        return
    cards = weights.catalogue()  # a file that does not read is a warning; its name's next file stands in
    if name is not None:
        found = [(n, path, card) for n, path, card in cards if n == name]
        from enhancer.restore.restorer import CLASSICAL

        if not found and name in CLASSICAL:
            print(f"{name}: a classical method (no model file; any scale): enhance --model {name}")
            return
        if not found:
            fail(f"no installed model is named {name!r} (installed: {', '.join(n for n, _, _ in cards) or 'none'}; "
                 "a model file is described by --inspect PATH)", 2)
        cards = found
    if not cards:
        print("no models installed (classical: lanczos, bicubic, bilinear, nearest)")
        return
    if as_json:
        for n, path, card in cards:
            print(json.dumps({"name": n, "path": str(path), **card.__dict__}))
        return
    if name is not None:
        _card(*cards[0])
        return
    defaults = set()
    for task in weights.TASKS:
        for scale in (1, 2, 4):
            try:
                defaults.add(weights.pick(task, scale))
            except EnhancerError:
                pass
    width = max(len(n) for n, _, _ in cards)
    for n, path, card in sorted(cards, key=lambda e: (weights.task_of(e[2]) != "web", e[2].scale,
                                                      e[2].variant != "fidelity", e[0])):
        task = weights.task_of(card)
        what = (card.damage or "").split(":")[0].split(" (")[0].strip() or "-"
        tag = card.variant + (", default" if n in defaults else "")
        print(f"{n:<{width}}  {task} x{card.scale} [{tag}]  repairs {what}  ({_where(path)})")
    print("classical: lanczos, bicubic, bilinear, nearest; one model's card: enhancer models NAME")


def _where(path: Path) -> str:
    """A model file as the list shows it: relative to here where it is below, else as it is."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _card(name: str, path: Path, card) -> None:
    from enhancer.restore import weights

    task = weights.task_of(card)
    print(f"{name}: {weights.TASKS[task]} (--task {task}), x{card.scale}, {card.variant}")
    print(f"  file: {path}")
    print(f"  architecture: {card.arch}, {card.config.get('channels', '?')} channels")
    if card.damage:
        print(f"  repairs: {card.damage}")
    if card.int8:
        print(f"  int8: calibrated on training windows ({len(card.int8)} feature-map ranges; --precision int8)")
    for key, val in card.metrics.items():
        print(f"  {key}: {val}")
    if card.notes:
        print(f"  notes: {card.notes}")
