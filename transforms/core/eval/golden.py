"""A golden set: JSON lines of ``{"input": {...}, "expected": {...}}``.

``input`` holds the input record's fields as plain JSON (what the prompt template sees);
``expected`` holds every generated output field (copied fields may be given; they are not
scored). A line that breaks these rules is an error naming the file and the line, so a
typo cannot quietly drop a field from the score. Blank lines and lines starting with
``#`` are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from transforms.core.errors import EnrichError

__all__ = ["GoldenCase", "GoldenError", "parse_golden"]


class GoldenError(EnrichError, ValueError):
    """The golden set is malformed: one line naming the file, the line and the problem."""


@dataclass(frozen=True)
class GoldenCase:
    line: int
    input: dict[str, Any]
    expected: dict[str, Any]


def parse_golden(
    lines: Iterable[str],
    generated: Sequence[str],
    copied: Sequence[str] = (),
    *,
    where: str = "golden",
    limit: int | None = None,
) -> list[GoldenCase]:
    cases: list[GoldenCase] = []
    for number, line in enumerate(lines, start=1):
        if limit is not None and len(cases) >= limit:
            break
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cases.append(_case(line, number, generated, copied, f"{where}:{number}"))
    if not cases:
        raise GoldenError(f"{where}: no golden records")
    return cases


def _case(
    line: str, number: int, generated: Sequence[str], copied: Sequence[str], at: str
) -> GoldenCase:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise GoldenError(f"{at}: not valid JSON ({exc.msg}, column {exc.colno})") from None
    if not isinstance(row, dict) or set(row) != {"input", "expected"}:
        keys = sorted(row) if isinstance(row, dict) else type(row).__name__
        raise GoldenError(f"{at}: expected an object with keys input and expected, got {keys}")
    record, expected = row["input"], row["expected"]
    for key, value in (("input", record), ("expected", expected)):
        if not isinstance(value, dict):
            raise GoldenError(f"{at}: {key} must be an object, got {type(value).__name__}")
    missing = [name for name in generated if name not in expected]
    if missing:
        raise GoldenError(f"{at}: expected lacks the generated field(s) {', '.join(missing)}")
    unknown = sorted(set(expected) - set(generated) - set(copied))
    if unknown:
        raise GoldenError(f"{at}: expected has field(s) not in the output: {', '.join(unknown)}")
    return GoldenCase(number, record, {k: expected[k] for k in generated})
