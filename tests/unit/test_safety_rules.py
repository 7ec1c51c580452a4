"""Per-field output rules: a table of answers and the problems each one has."""

from __future__ import annotations

from typing import Any

import pytest

from transforms.core.config.safety import OutputRuleSpec
from transforms.core.errors import FieldError
from transforms.core.safety.rules import compile_rules

RULES = compile_rules(
    {
        "summary": OutputRuleSpec(max_length=20, must_not_match="(?i)pwned"),
        "topics": OutputRuleSpec(allowed_chars="a-z -"),
        "note": OutputRuleSpec(allow_urls=True),
    },
    ["summary", "topics", "note", "rating"],
)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"summary": "Works well.", "topics": ["build quality"], "note": "ok"}, []),
        ({"summary": "x" * 21}, [("$.summary", "longer than 20 characters (21)")]),
        ({"summary": "you got PWNED"}, [("$.summary", "forbidden text 'PWNED'")]),
        ({"summary": "at http://e.io"}, [("$.summary", "contains a URL")]),
        ({"summary": "visit www.deals.biz"}, [("$.summary", "contains a URL")]),
        ({"summary": "go to evil.com now"}, [("$.summary", "contains a URL")]),
        ({"summary": "mailto:a@b.c"}, [("$.summary", "contains a URL")]),
        ({"summary": "ratio 2.5 of 5. fine"}, []),  # numbers and sentences are not domains
        ({"note": "see https://docs.example/x"}, []),  # allow_urls
        ({"topics": ["ok", "Bad"]}, [("$.topics[1]", "not allowed: 'B'")]),
        ({"topics": ["<script>"]}, [("$.topics[0]", "not allowed: '<'")]),
        ({"topics": None, "summary": None}, []),  # nothing to check (a null field)
        (
            {"summary": "PWNED at http://x.io " + "y" * 10},
            [
                ("$.summary", "longer than 20"),
                ("$.summary", "forbidden text"),
                ("$.summary", "contains a URL"),
            ],
        ),
    ],
)
def test_rules_report_every_problem_with_its_path(
    answer: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    problems = RULES.check(answer)
    assert [p.path for p in problems] == [path for path, _ in expected]
    for problem, (_, text) in zip(problems, expected, strict=True):
        assert isinstance(problem, FieldError) and text in problem.message


def test_a_field_with_rules_denies_urls_by_default() -> None:
    rules = compile_rules({"summary": OutputRuleSpec()}, ["summary"])
    assert [p.path for p in rules.check({"summary": "ftp://x.example"})] == ["$.summary"]


def test_rules_only_name_generated_fields() -> None:
    with pytest.raises(ValueError, match="safety.output_rules.review_id: not a field"):
        compile_rules({"review_id": OutputRuleSpec()}, ["summary"])
