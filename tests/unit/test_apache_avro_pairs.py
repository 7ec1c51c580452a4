"""Apache Avro's own compatibility test pairs, run through the project's checker.

The pairs are read from the ``avro`` package's ``test/test_compatibility.py`` (not copied):
every ``*_pairs`` / ``*_test_cases`` list and every inline ``are_compatible`` /
``get_compatibility`` assertion, with the verdict Apache Avro's test expects. Each schema is
wrapped as the only field of a record, the way a task's schema holds it, and checked with
``check_compatibility(reader, writer, "BACKWARD")``; every verdict must match.
"""

from __future__ import annotations

import ast
import inspect
import json
from collections.abc import Iterator
from typing import Any

import avro.test.test_compatibility as apache
import pytest

from schemas import parse_schema
from transforms.core.formats.compatibility import check_compatibility

Pair = tuple[str, Any, Any, bool]  # (where, reader, writer, compatible)


def _verdict_of_assert(call: ast.Call) -> tuple[str, ast.expr, ast.expr, bool] | None:
    """``assertTrue(self.are_compatible(r, w))`` / ``assertFalse(...)``."""
    method = call.func.attr if isinstance(call.func, ast.Attribute) else ""
    if method not in ("assertTrue", "assertFalse") or not call.args:
        return None
    inner = call.args[0]
    if isinstance(inner, ast.Call) and getattr(inner.func, "attr", "") == "are_compatible":
        return method, inner.args[0], inner.args[1], method == "assertTrue"
    return None


def _apache_pairs() -> Iterator[Pair]:
    tree = ast.parse(inspect.getsource(apache))
    [cls] = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "TestCompatibility"]
    for test in (n for n in cls.body if isinstance(n, ast.FunctionDef)):
        scope: dict[str, Any] = dict(vars(apache))
        results: dict[str, tuple[Any, Any]] = {}  # res = ...get_compatibility(r, w)
        for statement in test.body:
            where = f"{test.name}:{statement.lineno}"
            if isinstance(statement, ast.Assign) and isinstance(statement.targets[0], ast.Name):
                name, value = statement.targets[0].id, statement.value
                if isinstance(value, ast.List) and name.endswith(("_pairs", "_test_cases")):
                    compatible = not name.startswith("incompatible")
                    for item in eval(compile(ast.Expression(value), where, "eval"), scope):
                        yield where, item[0], item[1], compatible
                elif isinstance(value, ast.Call) and getattr(value.func, "attr", "") == (
                    "get_compatibility"
                ):
                    args = [
                        eval(compile(ast.Expression(a), where, "eval"), scope) for a in value.args
                    ]
                    results[name] = (args[0], args[1])
                else:
                    exec(compile(ast.Module([statement], []), where, "exec"), scope)
            elif isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
                call = statement.value
                found = _verdict_of_assert(call)
                if found:
                    _, reader, writer, compatible = found
                    pair = [
                        eval(compile(ast.Expression(e), where, "eval"), scope)
                        for e in (reader, writer)
                    ]
                    yield where, pair[0], pair[1], compatible
                elif getattr(call.func, "attr", "") == "assertIs":
                    subject, expected = call.args[0], call.args[1]
                    if isinstance(subject, ast.Attribute) and isinstance(subject.value, ast.Name):
                        reader, writer = results[subject.value.id]
                        yield where, reader, writer, getattr(expected, "attr", "") == "compatible"


PAIRS = list(_apache_pairs())


def _wrapped(schema: Any) -> Any:
    return parse_schema(
        {"type": "record", "name": "Pair", "fields": [{"name": "value", "type": schema.to_json()}]}
    )


def test_the_suite_was_read() -> None:
    """Guards against an extraction that silently finds nothing after an avro upgrade."""
    assert len(PAIRS) >= 130
    assert sum(compatible for *_, compatible in PAIRS) >= 50
    assert sum(not compatible for *_, compatible in PAIRS) >= 50


@pytest.mark.parametrize(("where", "reader", "writer", "compatible"), PAIRS, ids=lambda v: "")
def test_verdict_matches_apache_avro(
    where: str, reader: Any, writer: Any, compatible: bool
) -> None:
    problems = check_compatibility(_wrapped(reader), _wrapped(writer), "BACKWARD")
    detail = f"{where}: reader {json.dumps(reader.to_json())} writer {json.dumps(writer.to_json())}"
    assert (problems == []) is compatible, f"{detail}: {[str(p) for p in problems]}"
