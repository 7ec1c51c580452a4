"""Copied fields: the output type must accept every value of the input type."""

from __future__ import annotations

from typing import Any

import fastavro
import pytest

from schemas import load_schema
from tests.conftest import REPO
from transforms.core.prompting.copied import copy_problems

TEST_SCHEMAS = REPO / "tests" / "data"

EVENT = load_schema(TEST_SCHEMAS / "tests.kinds.Event.avsc")
ENRICHED = load_schema(TEST_SCHEMAS / "tests.kinds.EnrichedEvent.avsc")


def _enum(*symbols: str) -> dict[str, Any]:
    return {"type": "enum", "name": "E", "symbols": list(symbols)}


def _record(name: str, field_type: Any) -> dict[str, Any]:
    raw = {"type": "record", "name": name, "namespace": "t", "fields": []}
    raw["fields"] = [{"name": "f", "type": field_type}]
    return dict(fastavro.parse_schema(raw))


def _problems(given: Any, wanted: Any) -> list[str]:
    return copy_problems(_record("In", given), _record("Out", wanted), ["f"])


def test_every_avro_kind_copies_to_itself_and_int_promotes_to_long() -> None:
    copied = [f["name"] for f in ENRICHED.fields if f["name"] not in ("sentiment", "rating")]
    assert copy_problems(EVENT.parsed, ENRICHED.parsed, copied) == []


@pytest.mark.parametrize(
    ("given", "wanted"),
    [
        ("int", "double"),
        ("float", "double"),
        ("string", ["null", "string"]),
        (["null", "int"], ["null", "long", "string"]),
        (
            {"type": "enum", "name": "E", "symbols": ["A"]},
            {"type": "enum", "name": "E", "symbols": ["A", "B"]},
        ),
        ({"type": "array", "items": "int"}, {"type": "array", "items": "long"}),
        (_enum("A"), {"type": "enum", "name": "Other", "namespace": "x", "symbols": ["A"]}),
        (
            {"type": "long", "logicalType": "timestamp-millis"},
            {"type": "long", "logicalType": "timestamp-micros"},
        ),
        (
            {"type": "bytes", "logicalType": "decimal", "precision": 5, "scale": 2},
            {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2},
        ),
        ({"type": "string", "logicalType": "made-up"}, "string"),
    ],
)
def test_what_avro_promotes_is_accepted(given: Any, wanted: Any) -> None:
    assert _problems(given, wanted) == []


@pytest.mark.parametrize(
    ("given", "wanted", "shown"),
    [
        ({"type": "long", "logicalType": "timestamp-millis"}, "long", "long/timestamp-millis"),
        ("long", "int", "long"),
        ("string", "bytes", "string"),
        (["null", "string"], "string", "[null, string]"),
        (
            {"type": "enum", "name": "E", "symbols": ["A", "B"]},
            {"type": "enum", "name": "E", "symbols": ["A"]},
            "t.E",
        ),
        (
            {"type": "fixed", "name": "F", "size": 4},
            {"type": "fixed", "name": "F", "size": 8},
            "t.F",
        ),
        (
            {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2},
            {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 3},
            "bytes/decimal",
        ),
    ],
)
def test_a_type_that_cannot_hold_the_input_values_is_named(
    given: Any, wanted: Any, shown: str
) -> None:
    problems = _problems(given, wanted)
    assert len(problems) == 1
    assert problems[0].startswith("output field 'f' is copied from the input")
    assert problems[0].endswith(f"does not accept the input type {shown}")


def test_a_recursive_record_is_compared_without_looping() -> None:
    node = {
        "type": "record",
        "name": "Node",
        "fields": [{"name": "next", "type": ["null", "Node"]}],
    }
    assert _problems(node, node) == []
