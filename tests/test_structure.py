"""The package's shape: who may touch a handle's private fields, no import cycles, small modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from osiiso import TaskHandle

pytestmark = pytest.mark.timeout(60)

PACKAGE = Path(__file__).resolve().parent.parent / "osiiso"
#: the engine package, the queue (which builds handles) and the handle itself own its private fields
OWNERS = ("_engine/", "_queue.py", "_handle.py")
MAX_LINES = 400


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _unit(module: str) -> str:
    """A subpackage (``osiiso._engine``, ``osiiso.backends``) counts as one unit; a module as itself."""
    return ".".join(module.split(".")[:2])


def _imports(path: Path) -> set[str]:
    """Every osiiso module ``path`` imports, at the top, in functions or under TYPE_CHECKING."""
    package = _name(path).split(".") if path.name == "__init__.py" else _name(path).split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("osiiso")}


def test_only_the_engine_and_the_queue_touch_a_handles_private_fields() -> None:
    """Outside the engine package, `_queue.py` and `_handle.py`, no code reads or writes ``handle._field``."""
    private = {name for name in TaskHandle.__slots__ if name.startswith("_") and not name.startswith("__")}
    offenders = []
    for path in _modules():
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith(OWNERS):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and node.attr in private
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
                offenders.append(f"{rel}:{node.lineno} .{node.attr}")
    assert not offenders, offenders


def test_the_package_has_no_import_cycles() -> None:
    """No two units of the package import each other, directly or around a loop (TYPE_CHECKING included)."""
    units = {_unit(_name(path)) for path in _modules()}
    graph: dict[str, set[str]] = {unit: set() for unit in units}
    for path in _modules():
        source = _unit(_name(path))
        for target in _imports(path):
            unit = _unit(target)
            if unit in units and unit != source:
                graph[source].add(unit)

    def reaches(start: str, goal: str) -> list[str] | None:
        stack, seen = [(start, [start])], {start}
        while stack:
            node, trail = stack.pop()
            for nxt in graph[node]:
                if nxt == goal:
                    return [*trail, nxt]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*trail, nxt]))
        return None

    cycles = {" -> ".join(loop) for unit in sorted(units) if (loop := reaches(unit, unit))}
    assert not cycles, sorted(cycles)


def test_every_module_says_what_it_owns_and_stays_small() -> None:
    """Every module opens with a docstring and has at most 400 lines."""
    problems = []
    for path in _modules():
        source = path.read_text()
        rel = path.relative_to(PACKAGE).as_posix()
        if not ast.get_docstring(ast.parse(source)):
            problems.append(f"{rel}: no module docstring")
        lines = source.count("\n")
        if lines > MAX_LINES:
            problems.append(f"{rel}: {lines} lines")
    assert not problems, problems
