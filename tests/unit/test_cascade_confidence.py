"""Confidence from token log-probabilities (pure): the figures are worked out by hand here."""

from __future__ import annotations

import math

import pytest

from transforms.core.answers.confidence import (
    TokenLogprob,
    field_choices,
    field_confidences,
    record_confidence,
    value_spans,
)

SCHEMA = {
    "type": "object",
    "properties": {
        "sentiment": {"type": "string", "enum": ["positive", "negative", "neutral", "mixed"]},
        "spam": {"type": "boolean"},
        "rating": {"type": "integer", "minimum": 1, "maximum": 5},
        "note": {"type": "string"},
        "score": {"type": "number"},
        "lang": {"anyOf": [{"type": "string", "enum": ["en", "de"]}, {"type": "null"}]},
        "wide": {"type": "integer", "minimum": 0, "maximum": 1000},
    },
}


def tok(text: str, p: float = 1.0, **alternatives: float) -> TokenLogprob:
    return TokenLogprob(text, math.log(p), tuple((t, math.log(q)) for t, q in alternatives.items()))


def alt(text: str, p: float) -> tuple[str, float]:
    return (text, math.log(p))


def test_closed_sets_are_enums_booleans_small_integer_ranges_and_nullable_ones() -> None:
    assert field_choices(SCHEMA) == {
        "sentiment": ('"positive"', '"negative"', '"neutral"', '"mixed"'),
        "spam": ("true", "false"),
        "rating": ("1", "2", "3", "4", "5"),
        "lang": ('"en"', '"de"', "null"),
    }


def test_value_spans_skip_a_fence_and_nested_values() -> None:
    text = '```json\n{"a": {"x": [1, "}"]}, "b" : "q\\"}", "c": true}\n```'
    spans = value_spans(text)
    assert {k: text[s:e] for k, (s, e) in spans.items()} == {
        "a": '{"x": [1, "}"]}',
        "b": '"q\\"}"',
        "c": "true",
    }
    assert value_spans('{"a": 1, "b": ') == {"a": (6, 7)}  # cut short: what was found stays
    assert value_spans("no json") == {}


def test_the_chosen_value_is_renormalised_over_the_allowed_alternatives() -> None:
    tokens = [
        tok('{"sentiment": '),
        TokenLogprob('"pos', math.log(0.6), (alt('"neg', 0.3), alt('"The', 0.1))),
        tok('itive"'),
        TokenLogprob(', "rating": ', 0.0),
        TokenLogprob("4", math.log(0.5), (alt("5", 0.25), alt("x", 0.25))),
        tok("}"),
    ]
    answer = {"sentiment": "positive", "rating": 4}
    got = field_confidences(tokens, field_choices(SCHEMA), answer)
    # sentiment: "pos (0.6) against "neg (0.3); "The is no allowed value: 0.6 / 0.9
    assert got["sentiment"] == pytest.approx(0.6 / 0.9)
    # rating: 4 (0.5) against 5 (0.25); x is not allowed: 0.5 / 0.75
    assert got["rating"] == pytest.approx(0.5 / 0.75)
    assert got["spam"] is None and got["lang"] is None  # not in the answer: unknown


def test_every_position_of_a_value_counts_and_a_shared_prefix_is_no_competitor() -> None:
    # "n" is shared by negative and neutral: at that position nothing competes but "p";
    # at the next, "eg" (0.8) against "eu" (0.2)
    tokens = [
        tok('{"sentiment": "'),
        TokenLogprob("n", math.log(0.3), (alt("p", 0.1), alt("I", 0.6))),
        TokenLogprob("eg", math.log(0.8), (alt("eu", 0.2),)),
        tok('ative"}'),
    ]
    got = field_confidences(
        tokens, {"sentiment": field_choices(SCHEMA)["sentiment"]}, {"sentiment": "negative"}
    )
    # the first token writes the opening quote: nothing else offered there opens a value
    assert got["sentiment"] == pytest.approx(0.3 / 0.4 * 0.8 / 1.0)


def test_a_literal_must_end_where_the_allowed_value_ends() -> None:
    tokens = [
        tok('{"rating": '),
        TokenLogprob("1", math.log(0.6), (alt("10", 0.3), alt("2", 0.2))),
        tok("}"),
    ]
    got = field_confidences(tokens, {"rating": ("1", "2", "3", "4", "5")}, {"rating": 1})
    assert got["rating"] == pytest.approx(0.6 / 0.8)  # "10" is no allowed value


def test_a_value_written_otherwise_than_accepted_has_no_confidence() -> None:
    tokens = [tok('{"sentiment": "Positive", "spam": false}')]
    got = field_confidences(tokens, field_choices(SCHEMA), {"sentiment": "positive", "spam": False})
    assert got["sentiment"] is None  # repaired (enum_case): unknown
    assert got["spam"] == 1.0  # no alternative returned: all the allowed mass is its own


def test_no_tokens_no_confidence() -> None:
    assert field_confidences((), field_choices(SCHEMA), {"spam": True})["spam"] is None


def test_the_record_takes_its_least_confident_field_and_a_repair_scales_it() -> None:
    assert record_confidence({"a": 0.9, "b": 0.7}, repaired=False, repair_factor=0.5) == 0.7
    assert record_confidence({"a": 0.9, "b": 0.7}, repaired=True, repair_factor=0.5) == 0.35
    assert record_confidence({"a": 0.9, "b": None}, repaired=False, repair_factor=0.5) == 0.0
    assert record_confidence({}, repaired=False, repair_factor=0.5) == 1.0  # validity alone
    assert record_confidence({}, repaired=True, repair_factor=0.25) == 0.25
