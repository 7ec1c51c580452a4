"""eval's pure core: a measure per Avro type, the golden set's errors, the scorecard, the
gate, the baseline comparison and the eval report's HTML."""

from __future__ import annotations

import json
import re

import pytest

from transforms.core.config.eval import EvalSpec
from transforms.core.errors import Attempt
from transforms.core.eval.baseline import compare
from transforms.core.eval.golden import GoldenError, parse_golden
from transforms.core.eval.kinds import eval_problems, field_kinds
from transforms.core.eval.measures import measure, set_prf, text_f1
from transforms.core.eval.report import eval_report_html
from transforms.core.eval.result import Change, EvalResult, Presence, Scorecard, read_eval_result
from transforms.core.eval.scorecard import Outcome, gate, outcome, percentile, scorecard
from transforms.core.records import Enriched, Failure, KafkaRecord

SCHEMA = {
    "type": "record",
    "name": "Out",
    "fields": [
        {"name": "mood", "type": {"type": "enum", "name": "Mood", "symbols": ["up", "down"]}},
        {"name": "spam", "type": "boolean"},
        {"name": "stars", "type": "int"},
        {"name": "price", "type": ["null", "double"]},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "summary", "type": "string"},
        {"name": "extra", "type": {"type": "map", "values": "string"}},
    ],
}
KINDS = field_kinds(SCHEMA)


def test_each_avro_type_gets_its_measure() -> None:
    assert KINDS == {
        "mood": "exact",
        "spam": "exact",
        "stars": "integer",
        "price": "number",
        "tags": "set",
        "summary": "text",
        "extra": "exact",
    }


@pytest.mark.parametrize(
    ("kind", "answer", "expected", "tolerance", "score"),
    [
        ("exact", "up", "up", 0, 1.0),
        ("exact", "up", "down", 0, 0.0),
        ("exact", False, True, 0, 0.0),
        ("integer", 4, 4, 0, 1.0),
        ("integer", 3, 4, 0, 0.0),
        ("integer", 3, 4, 1, 1.0),
        ("integer", 2, 4, 1, 0.0),
        ("number", 9.0, 10.0, 0, 0.9),
        ("number", 30.0, 10.0, 0, 0.0),
        ("number", 0.5, 0.0, 0, 0.5),  # |e| < 1: absolute error
        ("number", 9.5, 10.0, 0.5, 1.0),
        ("set", ["a", "b"], ["b", "a"], 0, 1.0),
        ("set", ["Battery Life"], ["battery-life"], 0, 1.0),
        ("set", [], [], 0, 1.0),
        ("set", ["a"], [], 0, 0.0),
        ("text", "It broke after a week", "after a week it broke", 0, 1.0),
        ("text", "great", "terrible", 0, 0.0),
        ("text", "", "", 0, 1.0),
    ],
)
def test_measures(
    kind: str, answer: object, expected: object, tolerance: float, score: float
) -> None:
    assert measure(kind, answer, expected, tolerance).score == pytest.approx(score)  # type: ignore[arg-type]


def test_null_matches_only_null_and_wrong_types_score_zero() -> None:
    assert measure("number", None, None).score == 1.0
    assert measure("number", None, 3.0).score == 0.0
    assert measure("set", "a", ["a"]).score == 0.0
    assert measure("integer", True, 1).score == 0.0  # a boolean is not a number


def test_set_and_text_figures() -> None:
    assert set_prf(["a", "b", "c"], ["a", "d"]) == pytest.approx((1 / 3, 1 / 2, 0.4))
    # 2 of 3 answered tokens shared, 2 of 4 expected: P 2/3, R 1/2, F1 4/7
    assert text_f1("the zipper broke", "zipper broke on day") == pytest.approx(4 / 7)
    assert measure("number", 8.0, 10.0).extra == {"abs_error": 2.0}
    assert measure("set", ["a"], ["a", "b"]).extra == {"precision": 1.0, "recall": 0.5}


GENERATED = ("mood", "stars")


def _lines(*rows: object) -> list[str]:
    return [r if isinstance(r, str) else json.dumps(r) for r in rows]


def test_golden_lines_are_parsed_and_blank_or_comment_lines_skipped() -> None:
    good = {"input": {"text": "x"}, "expected": {"mood": "up", "stars": 5, "id": "1"}}
    cases = parse_golden(_lines("# note", good, "", good), GENERATED, ("id",), limit=5)
    assert [c.line for c in cases] == [2, 4]
    assert cases[0].expected == {"mood": "up", "stars": 5}  # copied fields are not scored
    assert len(parse_golden(_lines(good, good, good), GENERATED, ("id",), limit=2)) == 2


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"input": {}, "expected": ', r"g.jsonl:1: not valid JSON"),
        ("[1, 2]", r"g.jsonl:1: expected an object with keys input and expected"),
        ('{"input": {}}', r"keys input and expected, got \['input'\]"),
        ('{"input": "x", "expected": {}}', r"g.jsonl:1: input must be an object"),
        ('{"input": {}, "expected": {"mood": "up"}}', r"lacks the generated field\(s\) stars"),
        (
            '{"input": {}, "expected": {"mood": "up", "stars": 1, "moood": 2}}',
            r"not in the output: moood",
        ),
    ],
)
def test_bad_golden_lines_are_one_line_errors(line: str, message: str) -> None:
    with pytest.raises(GoldenError, match=message) as caught:
        parse_golden([line], GENERATED, where="g.jsonl")
    assert "\n" not in str(caught.value)


def test_an_empty_golden_set_is_an_error() -> None:
    with pytest.raises(GoldenError, match="no golden records"):
        parse_golden(["", "# nothing"], GENERATED, where="g.jsonl")


def test_eval_section_is_checked_against_the_fields() -> None:
    kinds = field_kinds(SCHEMA)
    spec = EvalSpec(min_scores={"overall": 0.5, "moood": 0.2}, tolerance={"summary": 1})
    problems = eval_problems(spec, kinds)
    assert problems[0].startswith("eval.min_scores.moood: not a generated field")
    assert problems[1].startswith("eval.tolerance.summary: only numeric")
    assert eval_problems(EvalSpec(min_scores={"stars": 1}, tolerance={"price": 1}), kinds) == []
    with pytest.raises(ValueError):
        EvalSpec(min_scores={"stars": 1.5})


def _card() -> Scorecard:
    cases = parse_golden(
        _lines(
            {"input": {}, "expected": {"mood": "up", "stars": 4}},
            {"input": {}, "expected": {"mood": "down", "stars": 1}},
            {"input": {}, "expected": {"mood": "up", "stars": 5}},
            {"input": {}, "expected": {"mood": "up", "stars": 5}},
        ),
        GENERATED,
    )
    kinds = {"mood": "exact", "stars": "integer"}
    outcomes = [
        Outcome(
            {"mood": "up", "stars": 3}, latency_ms=100, prompt_tokens=10, cost_usd=0.01, calls=1
        ),
        Outcome(
            {"mood": "up", "stars": 1},
            repairs=("fence",),
            latency_ms=300,
            prompt_tokens=30,
            cached_tokens=20,
        ),
        Outcome({"mood": "up", "stars": 5}, reasked=True, latency_ms=200, calls=0.5, alone=True),
        Outcome(None, stage="validate", error="OutputInvalid: x", latency_ms=400),
    ]
    return scorecard(cases, outcomes, kinds, {"stars": 1})  # type: ignore[arg-type]


def test_scorecard_counts_a_failed_record_as_zero_on_every_field() -> None:
    card = _card().model_dump(mode="json")  # as --json writes it
    assert card["fields"] == {
        "mood": {"kind": "exact", "score": 0.5},
        "stars": {"kind": "integer", "score": 0.75, "abs_error": 0.3333},
    }
    assert card["overall"] == 0.625
    assert (card["valid_share"], card["repaired_share"], card["reask_share"]) == (0.75, 0.25, 0.25)
    assert card["failed_by_stage"] == {"validate": 1}
    assert card["latency_ms"]["p50"] == 200 and card["latency_ms"]["p95"] == 400
    assert card["per_record"] == {
        "prompt_tokens": 10.0,
        "completion_tokens": 0.0,
        "cost_usd": 0.0025,
        "cached_prompt_tokens": 5.0,
        "reasoning_tokens": 0.0,
        "calls": 0.375,  # a shared call counts 1/k for each of its k records
    }
    assert card["alone_share"] == 0.25
    assert card["cache_hit_share"] == 0.5  # 20 cached of 40 prompt tokens
    assert card["results"][3]["scores"] == {"mood": 0.0, "stars": 0.0}


def test_gate_names_every_missed_threshold() -> None:
    card = _card()
    assert gate(card, {"mood": 0.5, "overall": 0.6}) == []
    assert gate(card, {"mood": 0.6, "overall": 0.7}) == [
        "mood 0.500 < 0.600",
        "overall 0.625 < 0.700",
    ]


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 50) == 0.0
    assert percentile([5, 1, 3, 2, 4], 50) == 3
    assert percentile(list(range(1, 21)), 95) == 19


def test_outcome_sums_the_attempts() -> None:
    source = KafkaRecord("golden", 0, 1, None, None, b"{}")
    attempts = (
        Attempt("p", "m", "call", latency_ms=100, prompt_tokens=5, completion_tokens=2),
        Attempt("p", "m", "reask", latency_ms=50, prompt_tokens=7, cost_usd=0.5),
    )
    done = outcome(Enriched(source, {"mood": "up"}, "p", "m", attempts, ("fence",)))
    assert (done.reasked, done.latency_ms, done.prompt_tokens, done.cost_usd) == (
        True,
        150,
        12,
        0.5,
    )
    failed = outcome(Failure(source, "llm", "ProvidersExhausted", "down", attempts[:1]))
    assert failed.answer is None and failed.stage == "llm" and not failed.reasked


def _result(card: Scorecard) -> EvalResult:
    return read_eval_result(
        {
            "task": "t",
            "prompt_hash": "abc",
            "output_schema": "Out@1",
            "golden": {"path": "g.jsonl", "records": 4},
            "thresholds": {"min_scores": {"overall": 0.5}, "tolerance": {}},
            "providers": {
                "local": {"model": "m", **card.model_dump(), "gate": {"passed": True, "missed": []}}
            },
            "passed": True,
        }
    )


def test_baseline_comparison_per_field() -> None:
    now = _result(_card())
    before = json.loads(json.dumps(now.to_json()))
    before["providers"]["local"]["fields"]["mood"]["score"] = 0.25
    before["providers"]["local"]["fields"]["stars"]["score"] = 0.9
    before["providers"]["gone"] = before["providers"]["local"]
    diff = compare(now, read_eval_result(before))
    local = diff["local"]
    assert isinstance(local, dict)
    assert local["mood"] == Change(before=0.25, after=0.5, delta=0.25, verdict="better")
    assert local["stars"] == Change(before=0.9, after=0.75, delta=-0.15, verdict="worse")
    assert isinstance(local["overall"], Change) and local["overall"].verdict == "same"
    assert diff["gone"] == Presence(status="gone")
    with pytest.raises(ValueError, match="not an llm-enrich eval result"):
        read_eval_result({"fields": {}})
    with pytest.raises(ValueError, match=r"not an llm-enrich eval result \(providers.local.model"):
        read_eval_result(
            {"prompt_hash": "abc", "providers": {"local": {"overall": 1, "fields": {}}}}
        )


def test_eval_report_is_one_self_contained_page_with_charts() -> None:
    result = _result(_card())
    result.baseline = compare(result, result)
    html = eval_report_html(result)
    assert html.startswith("<!DOCTYPE html>") and html.count("<svg") >= 4
    assert not re.search(r"<script|<link|https?://(?!www\.w3\.org/2000/svg)", html)
    # the per-field chart: a bar per field and overall (one provider)
    scores = html[html.index("Scores per field") : html.index("<h2>Providers")]
    assert scores.count('class="mark"') == 3
    assert "mood / local: 0.50" in scores
    assert "Against the baseline" in html and ">same<" in html


def test_report_text_is_escaped() -> None:
    result = _result(_card())
    result.task = "<script>alert(1)</script>"
    assert "<script>" not in eval_report_html(result)
