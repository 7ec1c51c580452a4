"""Counter names live in one module (``transforms.core.counters``): the steps that count
and the summary that reads pass its names, never a literal of their own."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pipelines
import transforms
from transforms.core import counters

ROOTS = (Path(transforms.__file__).parent, Path(pipelines.__file__).parent)
# Beam's counter (ours, and Beam's own), a step's or the shadow runner's count, the tally's
# and the later counts' add
FUNCTIONS, METHODS = {"counter"}, {"counter", "_count", "count"}
ADDS_TO = ("tally", "counts", "acked")


def _literal_names(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute):
            receiver = ast.unparse(func.value).lower()
            counting = func.attr in METHODS or (
                func.attr == "add" and any(name in receiver for name in ADDS_TO)
            )
        else:
            counting = isinstance(func, ast.Name) and func.id in FUNCTIONS
        if not counting:
            continue
        for arg in node.args:
            if isinstance(arg, ast.JoinedStr) or (
                isinstance(arg, ast.Constant) and isinstance(arg.value, str)
            ):
                yield f"{path}:{node.lineno}: {ast.unparse(node)}"


def test_no_counter_is_named_outside_the_names_module() -> None:
    found = [
        line
        for root in ROOTS
        for path in sorted(root.rglob("*.py"))
        if path.name != "counters.py"
        for line in _literal_names(path)
    ]
    assert found == []


def test_names_made_from_parts_read_back_by_their_prefix() -> None:
    made = {
        counters.dead_letter("llm"): 2,
        counters.replay_skipped("duplicate"): 1,
        counters.halted("budget: policy.budget_usd"): 1,
        counters.WRITTEN_OUTPUT: 5,
    }
    assert counters.grouped(made, counters.DEAD_LETTER) == {"llm": 2}
    assert counters.grouped(made, counters.REPLAY_SKIPPED) == {"duplicate": 1}
    assert counters.grouped(made, counters.HALTED) == {"budget": 1}
    assert counters.shadow_parts(counters.shadow("small", "outcome.valid")) == (
        "small",
        "outcome.valid",
    )
    assert counters.shadow_parts(counters.SHADOW_WRITTEN) is None
