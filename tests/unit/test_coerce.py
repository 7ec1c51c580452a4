from __future__ import annotations

from schemas import parse_schema
from transforms.core.answers.coerce import coerce
from transforms.core.answers.validation import validate

SCHEMA = parse_schema(
    {
        "type": "record",
        "name": "Out",
        "fields": [
            {
                "name": "label",
                "type": {"type": "enum", "name": "L", "symbols": ["positive", "mixed"]},
            },
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "rating", "type": "int"},
            {"name": "score", "type": ["null", "double"], "default": None},
            {"name": "lang", "type": "string", "default": "en"},
        ],
    }
).parsed


def test_each_fix_is_applied_and_named() -> None:
    datum = {"label": " Positive ", "tags": "battery", "rating": "4", "score": "0.5"}
    fixed, fixes, problems = coerce(datum, SCHEMA)
    assert problems == []
    assert fixed == {
        "label": "positive",
        "tags": ["battery"],
        "rating": 4,
        "score": 0.5,
        "lang": "en",
    }
    assert fixes == [
        "enum_case@$.label",
        "wrap_in_array@$.tags",
        "numeric_string@$.rating",
        "numeric_string@$.score",
        "default_for_missing@$.lang",
    ]
    assert validate(fixed, SCHEMA) == []


def test_values_that_cannot_be_coerced_are_left_for_the_validator() -> None:
    datum = {"label": "great", "tags": ["a"], "rating": "4.5"}
    fixed, fixes, _ = coerce(datum, SCHEMA)
    assert fixed["label"] == "great" and fixed["rating"] == "4.5"
    assert fixes == ["default_for_missing@$.score", "default_for_missing@$.lang"]
    assert [e.path for e in validate(fixed, SCHEMA)] == ["$.label", "$.rating"]


def test_valid_datum_is_untouched() -> None:
    datum = {"label": "mixed", "tags": [], "rating": 2, "score": None, "lang": "de"}
    assert coerce(datum, SCHEMA) == (datum, [], [])


def test_a_long_written_as_a_string_keeps_every_digit() -> None:
    schema = {"type": "record", "name": "N", "fields": [{"name": "n", "type": "long"}]}
    big = 2**53 + 1  # a double would round it to 2**53
    fixed, repairs, _ = coerce({"n": str(big)}, schema)
    assert fixed == {"n": big} and repairs == ["numeric_string@$.n"]
    assert coerce({"n": "1e3"}, schema)[0] == {"n": 1000}
    assert coerce({"n": "9.5"}, schema)[0] == {"n": "9.5"}  # not an integer: left for errors
    assert coerce({"n": "1e300"}, schema)[0] == {"n": "1e300"}  # not exactly representable
