"""Hostile answers give a clear error (and a re-ask), never an exception."""

from __future__ import annotations

import pytest

from tests.answer_corpus import Case, run_case

VALID = (
    '"sentiment": "positive", "priority": "low", "topics": ["a"], "confidence": 0.5, '
    '"is_spam": false'
)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"a":' * 50_000 + "1" + "}" * 50_000, "nested too deeply"),
        ('{"a":' * 50_000 + "1", "nested too deeply"),
        ("{" + VALID + ', "rating": "' + "9" * 5000 + '"}', "expected int, got str"),
        ("{" + VALID + ', "rating": ' + "9" * 5000 + "}", "expected int, got str"),
        ("{" + VALID + ', "rating": 4, "rating": 5}', 'key "rating" given twice'),
        ("(" * 300 + ")" * 300, "not a JSON object"),
    ],
    ids=[
        "deep-array",
        "deep-object",
        "deep-unclosed",
        "long-digits",
        "long-number",
        "dup",
        "parens",
    ],
)
def test_hostile_answers_are_errors(raw: str, message: str) -> None:
    verdict = run_case(Case("hostile", raw, None))
    assert verdict.errors and any(message in str(e) for e in verdict.errors), verdict.errors


def test_dropped_keys_are_listed_safely_and_boundedly() -> None:
    extra = ", ".join(f'"k{i}": 1' for i in range(100))
    raw = "{" + VALID + ', "rating": 4, "a,b=c\\n": 1, ' + extra + "}"
    verdict = run_case(Case("many-keys", raw, None))
    assert verdict.errors == ()
    drops = [r for r in verdict.repairs if r.startswith("drop_unknown_field")]
    assert drops[0] == "drop_unknown_field@$.a?b?c?"  # no comma can split the header
    assert len(drops) == 21 and drops[-1] == "drop_unknown_field@$.*"
