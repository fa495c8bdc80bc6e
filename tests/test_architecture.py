"""The package's layout is its architecture: layers that import one way, no import circle, and
every module importable on its own (ARCHITECTURE.md draws the layers).

The import graph is read from the source (every ``import`` statement, those inside functions
too: a lazy import is still a dependency), so a circle that happens not to break today's import
order fails here all the same.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "visionsuite"

#: bottom to top; a module may import its own layer and the ones below, never one above.
LAYERS: list[tuple[str, ...]] = [
    ("visionsuite", "visionsuite.errors", "visionsuite.core"),
    ("visionsuite.backbones",),
    ("visionsuite.data",),
    ("visionsuite.models",),
    ("visionsuite.outputs",),
    ("visionsuite.callbacks",),
    ("visionsuite.tasks",),
    ("visionsuite.runs",),
    ("visionsuite.tools",),
    ("visionsuite.cli", "visionsuite.__main__"),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> list[str]:
    return sorted(module_name(p) for p in PACKAGE.rglob("*.py"))


def imports_of(path: Path) -> set[str]:
    """Every ``visionsuite`` module ``path`` imports (``from a import b`` names ``a.b`` when
    ``b`` is a module, else ``a``)."""
    known = set(all_modules())
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "visionsuite"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "visionsuite":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
    found |= _lazy_exports(tree)
    return {_owner(m, known) for m in found} - {name}


def _lazy_exports(tree: ast.Module) -> set[str]:
    """Modules a package re-exports lazily (PEP 562 ``__getattr__`` over a name → module table)."""
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("visionsuite.")
        and node.value.replace(".", "").replace("_", "").isalnum()
    } if any(isinstance(n, ast.FunctionDef) and n.name == "__getattr__" for n in tree.body) else set()


def _owner(name: str, known: set[str]) -> str:
    while name not in known and "." in name:
        name = name.rpartition(".")[0]
    return name


def layer_of(module: str) -> int:
    best, level = -1, -1
    for i, roots in enumerate(LAYERS):
        for root in roots:
            if (module == root or module.startswith(root + ".")) and len(root) > best:
                best, level = len(root), i
    assert level >= 0, f"{module} is in no layer: add its folder to LAYERS (and ARCHITECTURE.md)"
    return level


def import_graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}


def test_the_package_root_holds_at_most_three_modules() -> None:
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert loose == ["__init__.py", "__main__.py", "errors.py"], loose


@pytest.mark.parametrize("lower", ["visionsuite.backbones", "visionsuite.models", "visionsuite.data"])
def test_library_layers_never_import_tasks_runs_tools_or_the_cli(lower: str) -> None:
    above = ("visionsuite.tasks", "visionsuite.runs", "visionsuite.tools", "visionsuite.cli")
    bad = sorted(
        f"{module} imports {dep}"
        for module, deps in import_graph().items()
        if module.startswith(lower)
        for dep in deps
        if dep.startswith(above)
    )
    assert not bad, bad


def test_every_import_runs_down_the_layers() -> None:
    graph = import_graph()
    up = sorted(
        f"{module} (layer {layer_of(module)}) imports {dep} (layer {layer_of(dep)})"
        for module, deps in graph.items()
        for dep in deps
        if layer_of(dep) > layer_of(module)
    )
    assert not up, up


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_there_is_no_import_circle() -> None:
    assert find_cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_circle() -> None:
    """The checker itself can fail: the backbone registry's old circle is found."""
    graph = {
        "visionsuite.backbones._registry": {"visionsuite.backbones._families"},
        "visionsuite.backbones._families": {"visionsuite.backbones.lenet"},
        "visionsuite.backbones.lenet": {"visionsuite.backbones._registry", "visionsuite.errors"},
        "visionsuite.errors": set(),
    }
    assert find_cycles(graph) == [sorted(["visionsuite.backbones._registry", "visionsuite.backbones._families",
                                          "visionsuite.backbones.lenet"])]  # fmt: skip


def test_every_module_imports_on_its_own() -> None:
    """Each module imported first, with no other ``visionsuite`` module loaded before it (one
    interpreter: third-party libraries stay loaded between modules, ours are dropped)."""
    code = (
        "import importlib, sys, traceback\n"
        "failed = []\n"
        "for name in sys.argv[1:]:\n"
        "    for loaded in [m for m in sys.modules if m == 'visionsuite' or m.startswith('visionsuite.')]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as err:\n"
        "        failed.append(f'{name}: {type(err).__name__}: {err}')\n"
        "print('\\n'.join(failed))\n"
        "sys.exit(1 if failed else 0)\n"
    )
    modules = [m for m in all_modules() if m != "visionsuite.__main__"]  # __main__ runs the CLI
    result = subprocess.run([sys.executable, "-c", code, *modules], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
