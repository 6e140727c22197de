"""The package graph stays a stack: no import cycle between edgeauto's top-level units, and no
engine reaches up into the jobs layer or the CLI (imports inside functions count too)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import edgeauto

ROOT = Path(edgeauto.__file__).parent
#: The orchestration layer and the layer above it; everything else is an engine or a base.
UPPER = {"cli": 2, "jobs": 1}
#: The engines the architecture names: none may import ``jobs`` or ``cli``.
ENGINES = (
    "search", "compress", "sparse", "grow", "linearize", "latency", "spaces", "devices",
    "export", "bundle", "data", "train", "report", "budget", "timing",
)  # fmt: skip


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _targets(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """The dotted modules an import statement names (relative ones resolved)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if not node.level:
        base = node.module or ""
    else:
        parts = module.split(".") if is_package else module.split(".")[:-1]
        parts = parts[: len(parts) - (node.level - 1)]
        base = ".".join(parts + ([node.module] if node.module else []))
    return [base] + [f"{base}.{a.name}" for a in node.names]


def unit_graph() -> dict[str, set[str]]:
    """Top-level unit (``edgeauto.<unit>``) -> the units it imports, anywhere in its code."""
    graph: dict[str, set[str]] = defaultdict(set)
    for path in ROOT.rglob("*.py"):
        module = _module(path)
        unit = module.split(".")[1] if "." in module else None
        for node in ast.walk(ast.parse(path.read_text())):
            for target in _targets(node, module, path.name == "__init__.py"):
                parts = target.split(".")
                if unit and parts[0] == "edgeauto" and len(parts) > 1 and parts[1] != unit:
                    graph[unit].add(parts[1])
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

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
            while (w := stack.pop()) != v:
                component.append(w)
            if component:
                found.append(sorted([v, *component]))

    for v in sorted(set(graph) | {w for ws in graph.values() for w in ws}):
        if v not in index:
            visit(v)
    return found


def test_the_package_graph_has_no_cycle() -> None:
    assert cycles(unit_graph()) == []


def test_the_cycle_finder_finds_one() -> None:
    """The check above can fail: a two-unit loop is reported."""
    assert cycles({"a": {"b"}, "b": {"a", "c"}, "c": set()}) == [["a", "b"]]


def test_no_engine_imports_the_jobs_layer_or_the_cli() -> None:
    graph = unit_graph()
    upward = {
        (unit, target)
        for unit, targets in graph.items()
        for target in targets
        if target in UPPER and UPPER.get(unit, 0) <= UPPER[target]
    }
    assert upward == set(), "imports that reach up a layer"
    assert all(unit in graph or (ROOT / f"{unit}.py").exists() for unit in ENGINES)
    assert not {t for e in ENGINES for t in graph.get(e, ())} & set(UPPER)
