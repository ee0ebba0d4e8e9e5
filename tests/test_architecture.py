"""The package's shape: layers import one way, no import cycle, every module imports alone."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sirst_synth"

#: layer of each subpackage: a module may import its own layer and the layers below it, never above;
#: layers of the same rank (run and transforms; inspect, interop, train) do not import each other.
RANKS = {"method": 0, "store": 1, "plan": 2, "run": 3, "transforms": 3, "inspect": 4, "interop": 4, "train": 4,
         "cli": 5}
#: top-level modules: ``errors``, ``progress`` (what the CLI hands down) and the version are below
#: everything; ``demo`` (the demo data, written through the store) is one more of the layers the CLI
#: calls; ``__main__`` is the CLI.
TOP: dict[str, float] = {"sirst_synth": -1, "sirst_synth.errors": -1, "sirst_synth.progress": -1,
                         "sirst_synth.demo": 4, "sirst_synth.__main__": 6}


def modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def imports(module: str) -> set[str]:
    """Every sirst_synth module ``module`` imports, at the top or inside a function."""
    path = PACKAGE.parent / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = PACKAGE.parent / module.replace(".", "/") / "__init__.py"
    found = set()
    known = set(modules())
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sirst_synth"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in known else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("sirst_synth")}
    return found - {module}


def rank(module: str) -> tuple[float, str]:
    if module in TOP:
        return TOP[module], module
    layer = module.split(".")[1]
    return RANKS[layer], layer


def test_every_subpackage_has_a_layer():
    layers = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert layers == set(RANKS)


@pytest.mark.parametrize("module", modules())
def test_imports_point_down_the_layers(module):
    own, layer = rank(module)
    for target in imports(module):
        other, other_layer = rank(target)
        assert other < own or (other == own and other_layer == layer), \
            f"{module} (layer {layer}) imports {target} (layer {other_layer})"


def test_no_import_cycle():
    graph = {m: imports(m) for m in modules()}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(n):] + [n]))
            if n not in state:
                visit(n, path + [n])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])


def test_click_is_imported_by_the_cli_only():
    """Progress bars, echo and prompts belong to the CLI, which hands a progress to the layers below."""
    outside = []
    for module in modules():
        if module.startswith("sirst_synth.cli") or module == "sirst_synth.__main__":
            continue
        path = PACKAGE.parent / (module.replace(".", "/") + ".py")
        path = path if path.exists() else PACKAGE.parent / module.replace(".", "/") / "__init__.py"
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "click" or n.startswith("click.") for n in names):
                outside.append(module)
    assert outside == []


@pytest.mark.slow  # one interpreter per module
def test_every_module_imports_alone_in_a_fresh_interpreter():
    code = ("import importlib, subprocess, sys\n"
            "bad = []\n"
            "for m in sys.argv[1:]:\n"
            "    r = subprocess.run([sys.executable, '-c', f'import {m}'], capture_output=True, text=True)\n"
            "    if r.returncode: bad.append(m + ': ' + r.stderr.strip().splitlines()[-1])\n"
            "print('\\n'.join(bad))\n")
    alone = [m for m in modules() if m != "sirst_synth.__main__"]  # runs the program when imported
    out = subprocess.run([sys.executable, "-c", code, *alone], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
