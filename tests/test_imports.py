"""The package's import graph: no cycle among src/hih modules, and nothing below the CLI imports it.

Read from the source (every ``import`` and ``from ... import``, at module level or inside a function,
and ``importlib.import_module("<constant>")``), so an import hidden in a function still counts.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules() -> dict[str, Path]:
    mods = {}
    for f in (SRC / "hih").rglob("*.py"):
        rel = f.relative_to(SRC).with_suffix("")
        mods[".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)] = f
    return mods


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)
    return {d for d in found if d in known and d != name}


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, path, set(mods)) for name, path in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(u: str) -> None:
        index[u] = low[u] = len(index)
        stack.append(u)
        on_stack.add(u)
        for v in graph[u]:
            if v not in index:
                visit(v)
                low[u] = min(low[u], low[v])
            elif v in on_stack:
                low[u] = min(low[u], index[v])
        if low[u] == index[u]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == u:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return found


def test_the_checker_sees_a_cycle_and_a_function_level_import(tmp_path):
    graph = {"hih.a": {"hih.b"}, "hih.b": {"hih.c"}, "hih.c": {"hih.a"}, "hih.d": {"hih.a"}}
    assert cycles(graph) == [["hih.a", "hih.b", "hih.c"]]
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from hih.x import y\n    import hih.z\n")
    assert _imports("hih.m", module, {"hih.x", "hih.x.y", "hih.z", "hih.w"}) == {"hih.x", "hih.x.y", "hih.z"}


def test_no_import_cycle_in_the_package():
    assert cycles(import_graph()) == []


def test_only_the_cli_imports_the_cli():
    offenders = [
        f"{m} imports {d}"
        for m, deps in sorted(import_graph().items())
        if not m.startswith("hih.cli")
        for d in sorted(deps)
        if d == "hih.cli" or d.startswith("hih.cli.")
    ]
    assert offenders == []
