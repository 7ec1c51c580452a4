"""The arrows inside ``transforms/core``: every import points down.

A unit is a sub-package of core (``config``, ``calls``, ...) or one of its top-level
modules (``job``, ``envelope``, ``errors``, ...). ``config/`` is a leaf of specs; no two
units import each other, directly or round a circle; core imports no Beam and no edge.
Read from the source (``ast``), so a lazy import inside a function counts too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import transforms.core

CORE = Path(transforms.core.__file__).parent
PREFIX = "transforms.core."
EDGES = ("apache_beam", "kafka", "redis", "aiohttp", "pipelines", "transforms.beam")
EDGES += ("transforms.kafka", "transforms.llm", "transforms.cache", "transforms.registry")
EDGES += ("transforms.coordination",)


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(CORE.rglob("*.py")):
        parts = path.relative_to(CORE).with_suffix("").parts
        yield ".".join(parts), path


def _imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def _unit(dotted: str) -> str:
    return dotted.split(".")[0]


def _arrows() -> dict[tuple[str, str], list[str]]:
    """(from unit, to unit) -> the module imports that draw that arrow."""
    arrows: dict[tuple[str, str], list[str]] = {}
    for name, path in _modules():
        for imported in _imports(path):
            if not imported.startswith(PREFIX):
                continue
            target = imported.removeprefix(PREFIX)
            if _unit(target) != _unit(name):
                arrows.setdefault((_unit(name), _unit(target)), []).append(f"{name} -> {target}")
    return arrows


def _circle(arrows: dict[tuple[str, str], list[str]]) -> list[str]:
    """One circle of units (its first unit repeated at the end), or [] when none."""
    after: dict[str, set[str]] = {}
    for source, target in arrows:
        after.setdefault(source, set()).add(target)
    done: set[str] = set()

    def walk(unit: str, path: list[str]) -> list[str]:
        if unit in path:
            return [*path[path.index(unit) :], unit]
        if unit in done:
            return []
        for target in sorted(after.get(unit, ())):
            found = walk(target, [*path, unit])
            if found:
                return found
        done.add(unit)
        return []

    for unit in sorted(after):
        found = walk(unit, [])
        if found:
            return found
    return []


def test_the_walk_sees_the_units() -> None:
    arrows = _arrows()
    assert ("calls", "config") in arrows  # the enricher reads specs: the walk sees imports
    assert ("job", "config") in arrows


def test_config_is_a_leaf_of_specs() -> None:
    """config/ may import only config/ and errors: the job compiler lives above it."""
    wrong = [
        line
        for (source, target), lines in _arrows().items()
        if source == "config" and target != "errors"
        for line in lines
    ]
    assert wrong == []


def test_no_circle_between_core_units() -> None:
    arrows = _arrows()
    circle = _circle(arrows)
    why = [line for a, b in pairwise(circle) for line in arrows[(a, b)]]
    assert circle == [], why


def test_the_circle_finder_finds_one() -> None:
    arrows = {("a", "b"): ["a.x -> b.y"], ("b", "c"): ["b.y -> c"], ("c", "a"): ["c -> a.x"]}
    assert _circle(arrows) == ["a", "b", "c", "a"]
    assert _circle({("a", "b"): [], ("b", "c"): []}) == []


def test_core_imports_no_beam_and_no_edge() -> None:
    wrong = [
        f"{name} -> {imported}"
        for name, path in _modules()
        for imported in _imports(path)
        if any(imported == edge or imported.startswith(edge + ".") for edge in EDGES)
    ]
    assert wrong == []
