from __future__ import annotations

from schemas import parse_schema
from transforms.core.answers.validation import validate

SCHEMA = parse_schema(
    {
        "type": "record",
        "name": "Out",
        "fields": [
            {"name": "label", "type": {"type": "enum", "name": "L", "symbols": ["a", "b"]}},
            {
                "name": "tags",
                "type": {"type": "array", "items": "string"},
                "llm.json_schema": {"maxItems": 2},
            },
            {"name": "score", "type": "int", "llm.json_schema": {"minimum": 1, "maximum": 5}},
            {"name": "note", "type": ["null", "string"], "default": None},
            {
                "name": "inner",
                "type": {
                    "type": "record",
                    "name": "In",
                    "fields": [{"name": "x", "type": "double"}],
                },
            },
            {"name": "again", "type": ["null", "In"], "default": None},
        ],
    }
).parsed

GOOD = {"label": "a", "tags": ["x"], "score": 3, "inner": {"x": 1}}


def _paths(datum: object) -> list[str]:
    return [str(e) for e in validate(datum, SCHEMA)]


def test_valid_datum_has_no_errors() -> None:
    assert validate(GOOD, SCHEMA) == []
    assert validate({**GOOD, "note": "hi", "again": {"x": 2.5}}, SCHEMA) == []


def test_every_error_is_reported_with_its_path() -> None:
    bad = {"label": "A", "tags": ["x", 2], "score": "3", "inner": {}, "extra": 1}
    assert _paths(bad) == [
        "$.label: 'A' is not one of ['a', 'b']",
        "$.tags[1]: expected string, got int",
        "$.score: expected int, got str",
        "$.inner.x: required field is missing",
        "$.extra: unknown field",
    ]


def test_constraints_from_llm_json_schema_are_checked() -> None:
    assert _paths({**GOOD, "score": 9, "tags": ["a", "b", "c"]}) == [
        "$.tags: must have at most 2 items",
        "$.score: must be <= 5",
    ]


def test_booleans_are_not_ints_and_ranges_hold() -> None:
    assert _paths({**GOOD, "score": True}) == ["$.score: expected int, got bool"]
    assert _paths({**GOOD, "score": 2**40}) == [
        f"$.score: {2**40} is out of range for int",
    ]


def test_union_and_named_reference() -> None:
    assert _paths({**GOOD, "again": {"x": "no"}}) == [
        "$.again: expected one of null | record, got dict"
    ]
    assert _paths("nope") == ["$: expected record (object), got str"]
