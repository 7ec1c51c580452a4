"""The cascade in the summary and the run report (pure): counters and read-back headers."""

from __future__ import annotations

import json

import pytest

from pipelines.cascade_summary import cascade_lines, cascade_shares
from pipelines.summary import RunSummary
from transforms.core.records import CascadeMark, Confidence
from transforms.core.report.run_facts import RunFacts
from transforms.core.report.run_report import RunInfo, run_report_html


def _output(mark: CascadeMark, cost: float) -> dict[str, str]:
    return {
        "llm_enrich.provider": mark.step,
        "llm_enrich.attempts": "[]",
        "llm_enrich.usage": json.dumps(
            {"prompt_tokens": 1, "completion_tokens": 1, "cost_usd": cost}
        ),
        "llm_enrich.step": mark.step,
        "llm_enrich.cascade": mark.as_json(),
    }


SMALL = CascadeMark("small", 0, Confidence(0.93, {"sentiment": 0.93, "rating": None}), (), 0.004)
LARGE = CascadeMark("large", 1, None, (("small", "low_confidence"),), 0.004)


def test_the_header_says_who_answered_how_sure_and_who_passed_it_on() -> None:
    assert json.loads(SMALL.as_json()) == {
        "step": "small",
        "index": 0,
        "confidence": 0.93,
        "fields": {"sentiment": 0.93, "rating": None},
        "escalated": [],
        "all_strong_usd": 0.004,
    }
    assert json.loads(LARGE.as_json())["escalated"] == [["small", "low_confidence"]]


def test_summary_lines_in_the_cascades_order_with_the_cost_saved() -> None:
    counters = {
        "cascade.answered.1.large": 1,
        "cascade.answered.0.small": 3,
        "cascade.escalated.0.small.low_confidence": 1,
        "cascade.cost_micro_usd": 7_000,  # 3 x $0.001 + 1 x ($0.001 + $0.003)
        "cascade.all_strong_micro_usd": 16_000,  # 4 x $0.004
    }
    assert cascade_shares(counters) == [("small", 3), ("large", 1)]
    lines = cascade_lines(RunSummary(counters))
    assert lines[0] == "cascade             answered by step: small 3 (75.0%), large 1 (25.0%)"
    assert lines[1] == "  escalated         small: low_confidence=1"
    # saved: 0.016 - 0.007 = 0.009, 56.2% of 0.016
    assert "$0.007000 for these 4 outputs, against $0.016000" in lines[2]
    assert "(saved $0.009000, 56.2%)" in lines[2]
    assert cascade_lines(RunSummary({"read": 3})) == []


def test_the_report_reads_the_cascade_back_from_the_outputs() -> None:
    facts = RunFacts(started_ms=0, ended_ms=1000)
    for _ in range(3):
        facts.add_output(10, _output(SMALL, 0.001))
    facts.add_output(20, _output(LARGE, 0.004))
    facts.add_output(30, {"llm_enrich.cascade": "{broken", "llm_enrich.usage": "{}"})
    assert facts.by_step == {(0, "small"): 3, (1, "large"): 1}
    assert facts.escalated == {(0, "small", "low_confidence"): 1}
    assert facts.cascade_cost_usd == pytest.approx(0.007)
    assert facts.all_strong_usd == pytest.approx(0.016)
    assert facts.unreadable == 1
    html = run_report_html(RunInfo("j", "run", "h", {}, 1.0, [], [], {}), facts)
    assert "<h2>Cascade</h2>" in html and "outputs by step" in html
    assert "answered by small" in html and "3 (75.0%)" in html
    assert "$0.009000 (56.2%)" in html
    plain = run_report_html(RunInfo("j", "run", "h", {}, 1.0, [], [], {}), RunFacts(0, 1000))
    assert "Cascade" not in plain
