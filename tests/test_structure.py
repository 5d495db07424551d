"""The package's structure: no import cycle (function-level imports included), ``engine`` independent of
``inference`` and ``commands``, and no function longer than 50 lines (docstrings excluded)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "dsfnet"
MAX_FUNCTION_LINES = 50


def _modules() -> dict[str, ast.Module]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = ast.parse(path.read_text(), str(path))
    return modules


def _imports(name: str, tree: ast.Module, known: set[str]) -> set[str]:
    """The package modules ``name`` imports anywhere (module level, functions, ``TYPE_CHECKING`` blocks)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{name}: relative import (the package imports absolutely)"
            targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(target for target in targets if target in known and target != name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, tree, set(modules)) for name, tree in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as a path of module names, or ``[]``."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        state[node] = 2
        stack.pop()
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_package_modules():
    graph = _graph()
    assert len(graph) > 40 and graph["dsfnet.cli"] == set()  # the commands load through importlib
    assert "dsfnet.models.detector" in graph["dsfnet.models.build"]
    assert _cycle(graph) == []


def test_engine_imports_neither_inference_nor_commands():
    graph = _graph()
    for name, targets in graph.items():
        if name.startswith("dsfnet.engine"):
            assert not {t for t in targets if t.startswith(("dsfnet.inference", "dsfnet.commands"))}, name


def _function_lengths():
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                first = node.body[0]
                if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                        and isinstance(first.value.value, str):
                    lines -= first.end_lineno - first.lineno + 1
                yield f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}", lines


def test_no_function_longer_than_50_lines():
    lengths = dict(_function_lengths())
    assert len(lengths) > 300
    assert {name: lines for name, lines in lengths.items() if lines > MAX_FUNCTION_LINES} == {}
