"""Feedback's pure core: decoding and checking events (JSON and Avro), folding them into
bins with eval's measures, the typed result and its drift gate, the golden-set comparison,
what export takes from feedback, the task section's checks, and bounded memory."""

from __future__ import annotations

import dataclasses
import json
import tracemalloc
from pathlib import Path
from typing import Any

import fastavro
import pytest
import yaml

from schemas import feedback_schema
from tests.conftest import EXAMPLE_TASK
from transforms.core.config.task import load_task
from transforms.core.errors import TaskConfigError
from transforms.core.eval.kinds import field_kinds
from transforms.core.eval.measures import set_prf, text_f1
from transforms.core.eval.result import read_eval_result
from transforms.core.feedback.aggregate import Aggregate, Group, OutputFacts
from transforms.core.feedback.compare import compare_with_eval
from transforms.core.feedback.events import (
    BadEvent,
    FeedbackEvent,
    check_corrections,
    decode_event,
)
from transforms.core.feedback.report import feedback_report_html, result_lines
from transforms.core.feedback.result import Thresholds, build_result, new_alerts
from transforms.core.feedback.verify import Verification
from transforms.core.formats import framing
from transforms.core.job import compile_job

GENERATED = fastavro.parse_schema(
    {
        "type": "record",
        "name": "Generated",
        "fields": [
            {
                "name": "sentiment",
                "type": {"type": "enum", "name": "S", "symbols": ["positive", "negative"]},
            },
            {"name": "topics", "type": {"type": "array", "items": "string"}},
            {"name": "summary", "type": "string"},
            {"name": "rating", "type": "int"},
        ],
    }
)
KINDS = field_kinds(GENERATED)
COORDS = {"topic": "in", "partition": 1, "offset": 7}
SCHEMA = feedback_schema()
A = Group("main", "m1", "hash-a")
B = Group("backup", "m2", "hash-a")
OUTPUT = {
    "review_id": "r1",
    "sentiment": "positive",
    "topics": ["battery", "screen"],
    "summary": "great battery and a bright screen",
    "rating": 4,
}


def _json(raw: Any, ts: int | None = 1000, keyed: bool = False) -> FeedbackEvent | BadEvent:
    return decode_event(json.dumps(raw).encode(), ts, format="json", schema=SCHEMA, keyed=keyed)


def _avro(datum: dict[str, Any], ts: int | None = 1000) -> FeedbackEvent | BadEvent:
    value = framing.encode(datum, SCHEMA, "single-object")
    return decode_event(value, ts, format="avro", schema=SCHEMA, keyed=True)


def test_json_events_decode_with_their_reference_and_time() -> None:
    event = _json(
        {
            "source": COORDS,
            "verdict": "rejected",
            "corrections": {"rating": 2},
            "outcomes": {"reopened": 1},
            "event_time": "2026-01-01T00:00:00Z",
        }
    )
    assert event == FeedbackEvent(
        ("in", 1, 7), 1767225600000, "rejected", {"rating": 2}, {"reopened": 1.0}
    )
    assert isinstance(keyed := _json({"key": 17}, keyed=True), FeedbackEvent)
    assert keyed.ref == "17" and keyed.event_time_ms == 1000  # the record's timestamp


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"key": "r1"}, "no_reference"),  # the task names no feedback.key
        ({}, "no_reference"),
        ({"source": {"topic": "in", "partition": "1", "offset": 7}}, "malformed"),
        ({"source": COORDS, "verdict": "ok"}, "malformed"),
        ({"source": COORDS, "outcomes": {"reopened": "yes"}}, "malformed"),
        ({"source": COORDS, "outcomes": {"reopened": True}}, "malformed"),
        ({"source": COORDS, "event_time": "yesterday"}, "malformed"),
        ({"source": COORDS, "colour": 1}, "malformed"),
        ([1, 2], "malformed"),
    ],
)
def test_bad_json_events_are_data_with_a_reason(raw: Any, reason: str) -> None:
    bad = _json(raw)
    assert isinstance(bad, BadEvent) and bad.reason == reason, bad


def test_undecodable_bytes_are_counted_not_raised() -> None:
    for value in (b"\xff\xfe", b"", None):
        bad = decode_event(value, 1, format="json", schema=SCHEMA)
        assert isinstance(bad, BadEvent) and bad.reason == "undecodable"
    for value in (b"\xc3\x01garbage", b'{"json": 1}'):
        bad = decode_event(value, 1, format="avro", schema=SCHEMA)
        assert isinstance(bad, BadEvent) and bad.reason == "undecodable"


def test_avro_events_carry_corrections_as_json_text() -> None:
    event = _avro(
        {
            "key": "r1",
            "verdict": "accepted",
            "corrections": {"topics": '["battery"]', "rating": "5"},
            "outcomes": {"handle_time_s": 30.0},
            "event_time": 1_767_225_600_000,
        }
    )
    assert isinstance(event, FeedbackEvent)
    assert event.ref == "r1" and event.event_time_ms == 1_767_225_600_000
    assert event.corrections == {"topics": ["battery"], "rating": 5}
    source = _avro({"source": COORDS, "corrections": {}})
    assert isinstance(source, FeedbackEvent) and source.ref == ("in", 1, 7)
    assert source.event_time_ms == 1000 and source.verdict is None
    bad = _avro({"key": "r1", "corrections": {"rating": "five"}})
    assert isinstance(bad, BadEvent) and bad.reason == "wrong_type"


@pytest.mark.parametrize(
    ("corrections", "reason", "detail"),
    [
        ({"review_id": "r2"}, "not_generated", "corrections.review_id: copied"),
        ({"colour": "red"}, "unknown_field", "corrections.colour"),
        ({"rating": "five"}, "wrong_type", "$.rating"),
        ({"rating": 4.5}, "wrong_type", "$.rating"),
        ({"sentiment": "meh"}, "wrong_type", "$.sentiment"),
        ({"topics": ["ok", 3]}, "wrong_type", "$.topics[1]"),
    ],
)
def test_corrections_must_be_generated_fields_of_their_type(
    corrections: dict[str, Any], reason: str, detail: str
) -> None:
    event = FeedbackEvent(("in", 0, 0), 0, corrections=corrections)
    bad = check_corrections(event, GENERATED, ["review_id"])
    assert bad is not None and bad.reason == reason and detail in bad.detail


def test_good_corrections_pass() -> None:
    event = FeedbackEvent(
        ("in", 0, 0),
        0,
        corrections={"sentiment": "negative", "topics": [], "summary": "x", "rating": 1},
    )
    assert check_corrections(event, GENERATED, ["review_id"]) is None


def _fold(events: list[FeedbackEvent], group: Group = A, window_s: float = 60) -> Aggregate:
    aggregate = Aggregate(window_s, KINDS, {"rating": 1})
    for event in events:
        aggregate.fold(event, OutputFacts(group, OUTPUT))
    return aggregate


def test_fold_scores_with_evals_measures_and_counts_accepted_as_agreement() -> None:
    corrected = FeedbackEvent(
        ("in", 0, 0),
        1_000,
        "rejected",
        corrections={
            "sentiment": "negative",
            "topics": ["battery", "price"],
            "summary": "bright screen",
            "rating": 2,
        },
    )
    accepted = FeedbackEvent(("in", 0, 1), 2_000, "accepted", corrections={"rating": 5})
    outcome_only = FeedbackEvent(("in", 0, 2), 3_000, outcomes={"reopened": 1})
    result = build_result(
        _fold([corrected, accepted, outcome_only]),
        task="t",
        output_schema="o",
        topic="fb",
        thresholds=Thresholds({}, "none"),
    )
    [group] = result.groups
    fields = group.total.fields
    assert fields["sentiment"].agreement == 0.5 and fields["sentiment"].judged == 2
    topics_f1 = set_prf(OUTPUT["topics"], ["battery", "price"])[2]
    assert fields["topics"].agreement == pytest.approx((topics_f1 + 1) / 2)
    summary_f1 = text_f1(OUTPUT["summary"], "bright screen")
    assert fields["summary"].agreement == pytest.approx((summary_f1 + 1) / 2)
    # rating: 4 vs 2 (off by 2 > tolerance 1): 0; 4 vs 5 (within 1): 1
    assert fields["rating"].agreement == 0.5 and fields["rating"].extra["abs_error"] == 1.5
    assert group.total.acceptance == 0.5 and group.total.corrected == 2
    assert group.total.outcomes == {"reopened": (1.0, 1)}
    assert group.total.events == 3


def test_windows_groups_and_the_drift_gate() -> None:
    good = [FeedbackEvent(("in", 0, i), i * 1000, "accepted") for i in range(3)]
    bad = [FeedbackEvent(("in", 0, i), 60_000 + i, "rejected") for i in range(2)]
    aggregate = _fold(good + bad)
    for event in good:
        aggregate.fold(event, OutputFacts(B, OUTPUT))
    thresholds = Thresholds({"acceptance": 0.5, "overall": 0.9}, "feedback", min_events=2)
    result = build_result(aggregate, task="t", output_schema="o", topic="fb", thresholds=thresholds)
    by_group = {g.group: g for g in result.groups}
    assert [w.start_ms for w in by_group[A].windows] == [0, 60_000]
    assert by_group[A].windows[1].missed == ("acceptance 0.000 < 0.500",)  # overall: no data
    assert by_group[B].windows[0].missed == ()
    assert [a.group for a in result.alerts] == [A]
    assert result.to_json()["drift"]["windows_missed"] == 1
    few = Thresholds({"acceptance": 0.5}, "feedback", min_events=3)
    quiet = build_result(aggregate, task="t", output_schema="o", topic="fb", thresholds=few)
    assert quiet.alerts == []  # 2 events < min_events: not gated
    seen: set[Any] = set()
    assert len(new_alerts(result, seen)) == 1 and new_alerts(result, seen) == []
    assert len(new_alerts(quiet, seen)) == 0 and len(new_alerts(result, seen)) == 1


def test_the_aggregate_holds_bins_not_events() -> None:
    """100,000 events over 4 groups and 10 windows: 40 bins, and memory that does not grow
    with the number of events (events are made lazily and dropped after folding)."""
    groups = [Group(f"p{i}", "m", "h") for i in range(4)]
    aggregate = Aggregate(60, KINDS)

    def fold(count: int) -> int:
        tracemalloc.start()
        for n in range(count):
            event = FeedbackEvent(
                ("in", 0, n),
                (n // 4 % 10) * 60_000,
                "accepted" if n % 4 else "rejected",
                corrections={"rating": n % 5 + 1} if n % 3 == 0 else {},
                outcomes={"reopened": float(n % 2)},
            )
            aggregate.fold(event, OutputFacts(groups[n % 4], OUTPUT))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak

    small, large = fold(1_000), fold(100_000)
    assert len(aggregate.bins) == 40
    assert aggregate.joined == 101_000
    assert large < 2 * small + 64_000  # not proportional to the 100x more events


def test_compare_with_eval_marks_a_prompt_worse_online() -> None:
    aggregate = _fold(
        [
            FeedbackEvent(("in", 0, 0), 0, "rejected", corrections={"sentiment": "negative"}),
            FeedbackEvent(("in", 0, 1), 0, "accepted"),
        ]
    )
    aggregate.fold(
        FeedbackEvent(("in", 0, 2), 0, "accepted"), OutputFacts(Group("x", "y", "z"), OUTPUT)
    )
    result = build_result(
        aggregate, task="t", output_schema="o", topic="fb", thresholds=Thresholds({}, "none")
    )
    eval_result = read_eval_result(
        {
            "prompt_hash": "hash-a",
            "golden": {"path": "g.jsonl", "records": 10},
            "providers": {
                "other-name": {
                    "model": "m1",  # matched by model
                    "overall": 0.9,
                    "fields": {"sentiment": {"score": 0.95}, "rating": {"score": 1.0}},
                }
            },
        }
    )
    with pytest.raises(ValueError, match="no 'providers' object"):
        read_eval_result({"prompt_hash": "hash-a"})
    comparison = compare_with_eval(result.groups, eval_result)
    rows = {r.score: r for r in comparison.rows}
    assert rows["sentiment"].production == 0.5 and rows["sentiment"].verdict == "worse online"
    assert rows["rating"].production == 1.0 and rows["rating"].verdict == "same"
    assert comparison.other_prompts == ("x/y@z",)
    compared = dataclasses.replace(result, eval_comparison=comparison, task="t<1>")
    html = feedback_report_html(compared)
    assert "t&lt;1&gt;" in html and "worse online" in html and "<script" not in html
    assert any("golden 0.950 (worse online)" in line for line in result_lines(compared))


def test_verification_keeps_the_latest_verdict_and_merges_corrections() -> None:
    verification = Verification()
    assert verification.status == "unjudged"
    verification.add(FeedbackEvent("r1", 2_000, "rejected"))
    assert verification.status == "rejected"
    verification.add(FeedbackEvent("r1", 1_000, "accepted", corrections={"rating": 2}))
    verification.add(FeedbackEvent("r1", 3_000, corrections={"rating": 3, "summary": "ok"}))
    assert verification.verdict == "rejected" and verification.status == "corrected"
    assert verification.apply(OUTPUT) == {**OUTPUT, "rating": 3, "summary": "ok"}
    assert Verification(verdict="accepted").status == "accepted"


def _task(tmp_path: Path, feedback: Any) -> Path:
    raw = yaml.safe_load(EXAMPLE_TASK.read_text())
    raw["feedback"] = feedback
    for section in ("input", "output"):
        raw[section]["schema"] = str((EXAMPLE_TASK.parent / raw[section]["schema"]).resolve())
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("feedback", "message"),
    [
        ({"topic": "fb", "colour": 1}, "feedback.colour: unknown key"),
        ({"topic": "fb", "format": "xml"}, "feedback.format"),
        ({"topic": "fb", "key": "nope"}, "feedback.key: 'nope' is not an output field"),
        ({"topic": "fb", "min_scores": {"review_id": 0.5}}, "feedback.min_scores.review_id"),
        ({"topic": "fb", "min_scores": {"overall": 2}}, "feedback.min_scores.overall"),
        ({"topic": "fb", "window_s": 0}, "feedback.window_s"),
        ({"topic": "fb", "format": "avro", "framing": "confluent"}, "needs registry_url"),
    ],
)
def test_the_feedback_section_is_checked_at_load(
    tmp_path: Path, feedback: dict[str, Any], message: str
) -> None:
    with pytest.raises(TaskConfigError) as error:
        compile_job(load_task(_task(tmp_path, feedback)))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_good_feedback_section_compiles(tmp_path: Path) -> None:
    spec = {"topic": "fb", "key": "review_id", "min_scores": {"acceptance": 0.8, "rating": 0.5}}
    job = compile_job(load_task(_task(tmp_path, spec)))
    assert job.task.feedback is not None and job.task.feedback.key == "review_id"
    assert job.task.feedback.format == "json" and job.task.feedback.window_s == 3600
