"""One answer's value against the expected one, per kind (``kinds``): a score in [0, 1]
and, for some kinds, extra figures (``Measured.extra``) averaged over the golden set.

Free text is scored with token F1, the measure SQuAD popularised for short answers: both
texts lowercased, split into word tokens, and the overlap of the two bags of tokens counted
(precision = shared / answered, recall = shared / expected). Chosen over ``difflib``'s
ratio because word order and punctuation barely matter for a summary ("broke after a week"
vs "after a week it broke"), over character n-grams because it reads as "how many of the
expected words the model used", and over embedding similarity because it needs no model,
no network and is deterministic. It undervalues synonyms; that is the price.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from transforms.core.eval.kinds import Kind

__all__ = ["Measured", "measure", "set_prf", "text_f1", "tokens"]

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


@dataclass(frozen=True)
class Measured:
    score: float
    extra: dict[str, float] = field(default_factory=dict)


def tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _f1(shared: float, answered: float, expected: float) -> tuple[float, float, float]:
    """(precision, recall, F1); two empty sides agree fully."""
    if answered == 0 and expected == 0:
        return 1.0, 1.0, 1.0
    precision = shared / answered if answered else 0.0
    recall = shared / expected if expected else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def text_f1(answer: str, expected: str) -> float:
    got, want = Counter(tokens(answer)), Counter(tokens(expected))
    shared = sum((got & want).values())
    return _f1(shared, sum(got.values()), sum(want.values()))[2]


def _tag(value: Any) -> str:
    return " ".join(tokens(str(value)))  # "Battery Life" == "battery-life" == "battery life"


def set_prf(answer: list[Any], expected: list[Any]) -> tuple[float, float, float]:
    got, want = {_tag(v) for v in answer}, {_tag(v) for v in expected}
    return _f1(len(got & want), len(got), len(want))


def _exact(answer: Any, expected: Any, tolerance: float) -> Measured:
    return Measured(_same(answer, expected))


def _integer(answer: Any, expected: Any, tolerance: float) -> Measured:
    if not _is_number(answer) or not _is_number(expected):
        return Measured(_same(answer, expected))
    error = abs(answer - expected)
    return Measured(1.0 if error <= tolerance else 0.0, {"abs_error": float(error)})


def _number(answer: Any, expected: Any, tolerance: float) -> Measured:
    """1 - |a - e| / max(|e|, 1), capped at 0 (1 within the tolerance)."""
    if not _is_number(answer) or not _is_number(expected):
        return Measured(_same(answer, expected))
    error = abs(float(answer) - float(expected))
    if not math.isfinite(error):
        return Measured(0.0, {"abs_error": 0.0})
    score = 1.0 if error <= tolerance else max(0.0, 1.0 - error / max(abs(expected), 1.0))
    return Measured(score, {"abs_error": error})


def _set(answer: Any, expected: Any, tolerance: float) -> Measured:
    if not isinstance(answer, list) or not isinstance(expected, list):
        return Measured(_same(answer, expected))
    precision, recall, f1 = set_prf(answer, expected)
    return Measured(f1, {"precision": precision, "recall": recall})


def _text(answer: Any, expected: Any, tolerance: float) -> Measured:
    if not isinstance(answer, str) or not isinstance(expected, str):
        return Measured(_same(answer, expected))
    return Measured(text_f1(answer, expected))


def _same(answer: Any, expected: Any) -> float:
    """1.0 when equal as JSON values (``True`` is not ``1`` here), else 0.0."""
    equal = answer == expected and isinstance(answer, bool) == isinstance(expected, bool)
    return 1.0 if equal else 0.0


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


MEASURES: dict[Kind, Callable[[Any, Any, float], Measured]] = {
    "exact": _exact,
    "integer": _integer,
    "number": _number,
    "set": _set,
    "text": _text,
}


def measure(kind: Kind, answer: Any, expected: Any, tolerance: float = 0.0) -> Measured:
    """Score one value; null against null is a match whatever the kind."""
    if answer is None or expected is None:
        return Measured(1.0 if answer is expected else 0.0)
    return MEASURES[kind](answer, expected, tolerance)
