"""The README's layout names every folder and module under ``pipelines/`` and
``transforms/``, each at its place in the tree, and nothing that is not there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("pipelines", "transforms")
# a tree line: two spaces per level, then a folder ("name/") or a module ("name.py")
ENTRY = re.compile(r"^((?:  )*)([\w.-]+/|[\w-]+\.py)(?=\s{2,}|$)")


def _layout_section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("\n## Layout\n")
    return readme[start : readme.index("\n## ", start + 1)]


def _drawn() -> set[str]:
    """Every path the tree draws, folders ending in ``/``."""
    block = _layout_section().split("```", 2)[1]
    stack: list[str] = []
    drawn = set()
    for line in block.splitlines():
        match = ENTRY.match(line)
        if not match:
            continue
        depth, name = len(match.group(1)) // 2, match.group(2)
        stack = [*stack[:depth], name]
        drawn.add("".join(stack))
    return drawn


def _present() -> set[str]:
    present = {f"{package}/" for package in PACKAGES}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*"):
            relative = path.relative_to(ROOT).as_posix()
            if "__pycache__" in relative or path.name == "__init__.py":
                continue
            if path.is_dir():
                present.add(relative + "/")
            elif path.suffix == ".py":
                present.add(relative)
    return present


def test_every_folder_and_module_is_drawn_at_its_place() -> None:
    drawn, present = _drawn(), _present()
    assert "transforms/core/job.py" in drawn  # the parse sees nested entries
    assert sorted(present - drawn) == []


def test_the_tree_draws_nothing_that_is_not_there() -> None:
    drawn = {path for path in _drawn() if path.startswith(tuple(f"{p}/" for p in PACKAGES))}
    assert sorted(drawn - _present()) == []


def test_the_layout_says_where_a_record_goes() -> None:
    section = _layout_section()
    for step in ("decoded", "prompted", "called", "repaired", "dead-lettered", "written"):
        assert step in section
    assert "committed" in section
