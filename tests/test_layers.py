"""The package's shape stays: each layer folder imports only from the layers below it, no module
imports in a circle, and no private name is used outside its module.

Read from the source with ``ast`` (every import, also those inside functions), so nothing is
imported to check it. The checks run on synthetic trees too, to show that they bite.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "gradlab"
#: Bottom to top: a layer may import from itself and from the layers before it.
LAYERS = ["common", "models", "tasks", "engine", "analysis", "plots", "watch", "training", "runs", "sweep", "report", "cli"]
#: namedtuple's public methods carry an underscore (PackedSequence is one).
NAMEDTUPLE_API = {"_replace", "_asdict", "_fields", "_make"}


def modules(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name → file, for every .py file under ``root`` (the package ``package``)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imported(path: Path, name: str, package: str, known: dict[str, Path]) -> list[tuple[str, list[str]]]:
    """(module imported, names taken from it) for every import of ``package`` in the file."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.split(".")[0] == package]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != package:
                continue
            for alias in node.names:  # "from pkg.sub import module" imports that module
                sub = f"{base}.{alias.name}"
                found.append((sub, []) if sub in known else (base, [alias.name]))
    return found


def layer_of(module: str, package: str, layers: list[str]) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in layers else None


def layering_violations(root: Path, package: str, layers: list[str]) -> list[str]:
    """Imports that go up a layer, or into the top-level package (the public API) from a layer."""
    known = modules(root, package)
    bad = []
    for name, path in known.items():
        here = layer_of(name, package, layers)
        if here is None:
            continue  # the top-level package and __main__ compose everything
        for target, _ in imported(path, name, package, known):
            there = layer_of(target, package, layers)
            if there is None:
                bad.append(f"{name} imports {target} (the public API) from inside the {here} layer")
            elif layers.index(there) > layers.index(here):
                bad.append(f"{name} ({here}) imports {target} ({there}), a layer above it")
    return bad


def import_cycles(root: Path, package: str) -> list[list[str]]:
    """The strongly connected components of more than one module in the import graph."""
    known = modules(root, package)
    graph = {name: sorted({t for t, _ in imported(path, name, package, known) if t in known and t != name})
             for name, path in known.items()}
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return cycles


def private_uses(root: Path, package: str) -> list[str]:
    """Private names (one leading underscore) imported from, or read off, another module."""
    known = modules(root, package)
    bad = []
    for name, path in known.items():
        for target, names in imported(path, name, package, known):
            bad += [f"{name} imports {target}.{n}" for n in names if n.startswith("_") and not n.startswith("__")]
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and node.attr not in NAMEDTUPLE_API
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
                bad.append(f"{name} reads {ast.unparse(node)}")
    return bad


# -- the package ----------------------------------------------------------------------------------

def test_every_layer_folder_exists_and_says_what_it_owns():
    for layer in LAYERS:
        doc = ast.get_docstring(ast.parse((ROOT / layer / "__init__.py").read_text()))
        assert doc and len(doc.split()) >= 15, f"gradlab/{layer}/__init__.py needs a paragraph saying what it owns"
    folders = {p.name for p in ROOT.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == set(LAYERS), "a new folder needs its place in LAYERS"
    assert {p.name for p in ROOT.glob("*.py")} == {"__init__.py", "__main__.py"}, "modules belong in a layer folder"


def test_layers_import_only_downwards():
    assert layering_violations(ROOT, "gradlab", LAYERS) == []


def test_no_module_imports_in_a_circle():
    assert import_cycles(ROOT, "gradlab") == []


def test_no_private_name_is_used_outside_its_module():
    assert private_uses(ROOT, "gradlab") == []


# -- the checks bite --------------------------------------------------------------------------------

def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / "pkg" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


@pytest.fixture
def clean_tree(tmp_path):
    return {"__init__.py": "from pkg.high.top import run\n", "low/__init__.py": '"""Low."""\n',
            "low/base.py": "import math\n", "high/__init__.py": '"""High."""\n',
            "high/top.py": "from pkg.low.base import math\n"}


def test_a_clean_synthetic_tree_passes(tmp_path, clean_tree):
    root = write_tree(tmp_path, clean_tree)
    assert layering_violations(root, "pkg", ["low", "high"]) == []
    assert import_cycles(root, "pkg") == [] and private_uses(root, "pkg") == []


def test_an_upward_import_is_found_also_inside_a_function(tmp_path, clean_tree):
    clean_tree["low/base.py"] = "def f():\n    from pkg.high.top import run\n    return run\n"
    root = write_tree(tmp_path, clean_tree)
    assert layering_violations(root, "pkg", ["low", "high"]) == [
        "pkg.low.base (low) imports pkg.high.top (high), a layer above it"]
    assert import_cycles(root, "pkg") == [["pkg.high.top", "pkg.low.base"]]


def test_importing_the_public_api_from_a_layer_and_a_relative_upward_import_are_found(tmp_path, clean_tree):
    clean_tree["low/base.py"] = "import pkg\nfrom ..high import top\n"
    root = write_tree(tmp_path, clean_tree)
    assert layering_violations(root, "pkg", ["low", "high"]) == [
        "pkg.low.base imports pkg (the public API) from inside the low layer",
        "pkg.low.base (low) imports pkg.high.top (high), a layer above it"]


def test_a_private_name_taken_from_another_module_is_found(tmp_path, clean_tree):
    clean_tree["high/top.py"] = "from pkg.low.base import _helper\nimport pkg.low.base as b\nx = b._state\n"
    root = write_tree(tmp_path, clean_tree)
    assert private_uses(root, "pkg") == ["pkg.high.top imports pkg.low.base._helper", "pkg.high.top reads b._state"]
