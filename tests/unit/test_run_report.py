"""The run report's pure parts: facts folded from written records, and the page."""

from __future__ import annotations

import json
import re

import pytest

from transforms.core.report.bins import latency_counts, latency_labels
from transforms.core.report.run_facts import MAX_BINS, RunFacts
from transforms.core.report.run_report import RunInfo, run_report_html


def _output(provider: str, latency: float, cost: float) -> dict[str, str]:
    """An output as written before the ledger: attempts without their own tokens."""
    return {
        "llm_enrich.provider": provider,
        "llm_enrich.attempts": json.dumps(
            [
                {
                    "provider": provider,
                    "kind": "call",
                    "status": 200,
                    "error": None,
                    "latency_ms": latency,
                }
            ]
        ),
        "llm_enrich.usage": json.dumps(
            {"prompt_tokens": 10, "completion_tokens": 5, "cost_usd": cost}
        ),
    }


def _ledgered(provider: str, latency: float, cost: float, lane: str) -> dict[str, str]:
    """An output with the ledger's per-attempt lines: a failed try at ``down``, then the
    answer of ``provider`` (1024 of its 2048 prompt tokens cached)."""
    line = {
        "kind": "call",
        "error": None,
        "latency_ms": latency,
        "completion_tokens": 5,
        "cost_usd": 0.0,
        "lane": "sync",
    }
    return {
        "llm_enrich.provider": provider,
        "llm_enrich.attempts": json.dumps(
            [
                {**line, "provider": "down", "status": 503, "error": "InternalServerError"},
                {
                    **line,
                    "provider": provider,
                    "status": 200,
                    "prompt_tokens": 2048,
                    "cached_tokens": 1024,
                    "cost_usd": cost,
                    "lane": lane,
                },
            ]
        ),
        "llm_enrich.usage": json.dumps({"prompt_tokens": 2048, "cost_usd": cost}),
    }


def test_each_attempt_is_charged_to_its_own_provider_and_lane() -> None:
    facts = RunFacts(started_ms=0, ended_ms=10_000)
    facts.add_output(500, _ledgered("flexy", 100, 0.004, "flex"))
    facts.add_output(600, _ledgered("flexy", 100, 0.008, "sync"))
    assert facts.cost_usd == {"down": 0.0, "flexy": pytest.approx(0.012)}
    assert facts.cost_by_lane[("flexy", "flex")] == 0.004
    assert (facts.prompt_tokens["flexy"], facts.cached_tokens["flexy"]) == (4096, 2048)
    assert facts.tokens["down"] == 10 and facts.unreadable == 0
    info = RunInfo("j", "run", "h", {}, 1.0, [], [], {"flexy": {"flex": 0.5}})
    html = run_report_html(info, facts)
    assert "cache-hit share by provider" in html and "flexy: 50%" in html
    assert "$0.004000" in html  # saved by flex: $0.004 at half price saved $0.004


def _facts() -> RunFacts:
    facts = RunFacts(started_ms=0, ended_ms=10_000)
    facts.add_output(500, _ledgered("a", 120, 0.01, "batch"))
    facts.add_output(9_999, _output("a", 3000, 0.01))
    facts.add_output(None, {"llm_enrich.attempts": "{broken"})
    facts.add_dead_letter(
        4_000,
        {
            "stage": "llm",
            "error_class": "ProvidersExhausted",
            "attempts": [
                {
                    "provider": "b",
                    "status": 503,
                    "error": "HTTP 503",
                    "latency_ms": 50,
                    "prompt_tokens": 7,
                    "completion_tokens": 0,
                    "cost_usd": 0.0,
                }
            ],
        },
    )
    return facts


def test_facts_fold_outputs_and_dead_letters_in_bounded_bins() -> None:
    facts = _facts()
    assert (facts.outputs, facts.dead_letters, facts.unreadable) == (3, 1, 1)
    assert len(facts.output_bins) == 10 and facts.output_bins[0] == 1
    assert facts.output_bins[9] == 2 and facts.dead_bins[4] == 1  # no timestamp: the last bin
    assert facts.calls == {("a", "ok"): 2, ("b", "failed"): 1, ("down", "failed"): 1}
    assert facts.latency["a"] == latency_counts([120, 3000])
    assert facts.tokens == {"a": 2053 + 15, "b": 7, "down": 5}
    assert facts.cost_usd == {"a": 0.02, "b": 0.0, "down": 0.0}
    assert facts.dead_by_class == {"llm: ProvidersExhausted": 1}
    long_run = RunFacts(0, 86_400_000)
    assert len(long_run.output_bins) == MAX_BINS


def test_a_call_records_shared_counts_once_over_them() -> None:
    facts = RunFacts(started_ms=0, ended_ms=10_000)
    shared = {"provider": "a", "status": 200, "latency_ms": 900}
    for index in (1, 2):
        attempts = [{**shared, "shared": [index, 3]}]
        facts.add_output(500, {"llm_enrich.attempts": json.dumps(attempts)})
    facts.add_dead_letter(600, {"attempts": [{**shared, "shared_by": 3}]})
    assert facts.calls[("a", "ok")] == pytest.approx(1.0)
    assert facts.latency["a"] == latency_counts([900, 900, 900])  # as each record saw it


def test_latency_bins_cover_every_value() -> None:
    assert latency_counts([0, 99.9, 100, 59_999, 60_000, 1e9]) == [2, 1, 0, 0, 0, 0, 0, 0, 0, 1, 2]
    assert len(latency_labels()) == 11 and latency_labels()[0] == "<0.1s"


def test_page_holds_every_section_and_escapes_text() -> None:
    info = RunInfo(
        job="<job>",
        mode="run",
        prompt_hash="abc",
        counters={
            "read": 4,
            "written.output": 3,
            "dead_letter.llm": 1,
            "repair.strip_code_fence": 2,
            "cache_hits": 1,
            "cache_saved_micro_usd": 2500,
        },
        wall_time_s=10.0,
        stop_reasons=["policy.budget_usd was reached"],
        summary_lines=["records read        4"],
        discounts={"a": {"batch": 0.5}},
    )
    html = run_report_html(info, _facts())
    for title in (
        "Records over time",
        "Outcomes",
        "Latency per provider",
        "Repairs by kind",
        "Tokens and cost",
        "Dead letters by error",
        "Early stop",
    ):
        assert f"<h2>{title}" in html
    assert "&lt;job&gt;" in html and "<job>" not in html
    assert not re.search(r"<script|<link|src=", html)
    assert "dead letter: llm: 1</title>" in html and "strip_code_fence: 2</title>" in html
    assert "$0.002500" in html  # saved by the cache
    assert "$0.010000" in html  # saved by batch mode: $0.01 at half price saved $0.01
    assert "policy.budget_usd was reached" in html
