"""The import structure (docs/architecture.md): no circle among the library's modules, no
import that runs back up a layer (:data:`LAYERS`: admmkit; the models and data sets; the
attacks; cli), and the scripts use the library's public names only.

Imports are read from the source (``ast``), those inside functions included, so a circle
cannot hide behind a function-level import.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ("admmkit", "attacks", "cli")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(*tops: str) -> Dict[str, Path]:
    return {module_name(p): p for top in tops for p in sorted((ROOT / top).rglob("*.py"))}


def imports(path: Path, known: Dict[str, Path]) -> List[Tuple[str, str, int]]:
    """``(module, imported name, line)`` of every import in ``path``; ``from X import Y``
    counts as an import of ``X.Y`` where that is a module of ``known``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, "", node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the importing package
                name = module_name(path)
                package = name if path.name == "__init__.py" else name.rpartition(".")[0]
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for a in node.names:
                full = f"{base}.{a.name}"
                found.append((full if full in known else base, a.name, node.lineno))
    return found


def graph(known: Dict[str, Path]) -> Dict[str, Set[str]]:
    return {m: {t for t, _, _ in imports(p, known) if t in known and t != m}
            for m, p in known.items()}


def circles(edges: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on: Set[str] = set()
    out: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                on.discard(w)
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                out.append(sorted(part))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_library_has_no_import_circle():
    assert circles(graph(modules(*LIBRARY))) == []


def test_the_circle_finder_sees_a_function_level_circle(tmp_path):
    (tmp_path / "a.py").write_text("import b\n")
    (tmp_path / "b.py").write_text("def f():\n    from a import x\n")
    (tmp_path / "c.py").write_text("import a\n")
    assert circles(graph({m: tmp_path / f"{m}.py" for m in "abc"})) == [["a", "b"]]


# The layers, bottom to top: a module belongs to the layer of the longest package naming it.
# The models and data sets sit below the attacks (the training that uses both sits above).
LAYERS = (("admmkit",), ("attacks.errors", "attacks.data", "attacks.models"), ("attacks",),
          ("cli",))


def layer(module: str) -> int:
    """The index in :data:`LAYERS` of ``module``'s layer; -1 outside the library."""
    return max(((len(package), rank) for rank, packages in enumerate(LAYERS)
                for package in packages
                if module == package or module.startswith(package + ".")), default=(0, -1))[1]


def upward_imports(known: Dict[str, Path]) -> List[str]:
    """Each import of a module from a layer above the importing module's own."""
    return [f"{m} imports {t} (line {line})" for m, p in known.items()
            for t, _, line in imports(p, known) if layer(t) > layer(m)]


def test_no_import_runs_back_up_a_layer():
    assert upward_imports(modules(*LIBRARY)) == []


def test_the_layer_check_sees_a_function_level_import_of_the_attacks_in_the_models(tmp_path):
    (tmp_path / "zoo.py").write_text("import torch\ndef f():\n    from attacks.api import Attack\n")
    (tmp_path / "api.py").write_text("from attacks.models import zoo\n")
    known = {"attacks.models.zoo": tmp_path / "zoo.py", "attacks.api": tmp_path / "api.py"}
    assert upward_imports(known) == ["attacks.models.zoo imports attacks.api (line 3)"]


@pytest.mark.parametrize("scripts", ["benchmarks", "experiments", "examples"])
def test_scripts_use_public_library_names_and_no_cli(scripts):
    known = modules(*LIBRARY)
    bad = []
    for path in sorted((ROOT / scripts).glob("*.py")):
        for target, name, line in imports(path, known):
            top = target.split(".")[0]
            if top == "cli":
                bad.append(f"{path.name}:{line} imports {target}")
            elif top in LIBRARY and any(part.startswith("_") for part in
                                        (target.split(".") + [name]) if part != "__future__"):
                bad.append(f"{path.name}:{line} imports the private {target}.{name}")
    assert bad == []
