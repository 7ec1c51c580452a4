"""Repairs and defaulted fields reach the output headers and the run summary."""

from __future__ import annotations

from pipelines.summary import RunSummary
from tests.conftest import EXAMPLE_TASK
from transforms.core.config.task import load_task
from transforms.core.envelope import output_envelope
from transforms.core.job import compile_job
from transforms.core.records import Enriched, KafkaRecord

JOB = compile_job(load_task(EXAMPLE_TASK))
SOURCE = KafkaRecord("reviews", 0, 7, None, None, b"x")
OUTPUT = {
    "review_id": "r1",
    "product": "Lamp",
    "sentiment": "positive",
    "topics": [],
    "summary": "ok",
    "rating": 5,
}


def _headers(enriched: Enriched) -> dict[str, str]:
    return {k: v.decode() for k, v in output_envelope(JOB, enriched).headers}


def test_repairs_and_defaulted_fields_are_headers() -> None:
    repairs = ("strip_code_fence", "enum_case@$.sentiment", "drop_unknown_field@$.note")
    enriched = Enriched(SOURCE, OUTPUT, "p", "m", (), repairs, ("topics",))
    headers = _headers(enriched)
    assert headers["llm_enrich.repairs"] == ",".join(repairs)
    assert headers["llm_enrich.defaulted"] == "topics"


def test_a_clean_answer_has_neither_header() -> None:
    headers = _headers(Enriched(SOURCE, OUTPUT, "p", "m", ()))
    assert "llm_enrich.repairs" not in headers and "llm_enrich.defaulted" not in headers


def test_summary_counts_repairs_per_kind_and_defaulted_fields() -> None:
    counters = {
        "read": 3,
        "repair.enum_case": 2,
        "repair.strip_code_fence": 1,
        "defaulted": 1,
        "defaulted.language": 1,
    }
    lines = RunSummary(counters).lines()
    assert "repairs by kind     enum_case=2, strip_code_fence=1" in lines
    assert "defaulted fields    1 records  (by field: language=1)" in lines
    assert not any(line.startswith(("repairs", "defaulted")) for line in RunSummary({}).lines())
