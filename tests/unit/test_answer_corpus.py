"""The broken-answer corpus: every case's outcome, and the shares the issue asks for."""

from __future__ import annotations

import pytest

from tests.answer_corpus import Case, evaluate, load_cases, run_case

CASES = load_cases()


def test_the_corpus_is_large_and_mixed() -> None:
    accept = [c for c in CASES if c.expected is not None]
    reask = [c for c in CASES if c.expected is None]
    assert len(CASES) >= 60 and len(accept) >= 30 and len(reask) >= 30
    assert len({c.id for c in CASES}) == len(CASES)


def test_shares_unambiguous_accepted_at_least_95_percent_and_none_wrongly() -> None:
    report = evaluate(CASES)
    assert report.unambiguous + report.ambiguous == len(CASES)
    assert report.wrongly_accepted == []
    assert report.accepted_share >= 0.95, report.lines()
    assert report.missed == ["rating_with_unit"]  # the one known miss, named in the corpus


@pytest.mark.parametrize("case", [c for c in CASES if c.expected is None], ids=lambda c: c.id)
def test_never_accepted(case: Case) -> None:
    verdict = run_case(case)
    assert verdict.errors, f"accepted {verdict.answer} although: {case.reason}"
    assert all(e.path.startswith("$") and e.message for e in verdict.errors)


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if c.expected is not None and c.id != "rating_with_unit"],
    ids=lambda c: c.id,
)
def test_accepted_with_every_repair_named(case: Case) -> None:
    verdict = run_case(case)
    assert verdict.errors == ()
    assert verdict.answer == case.expected
    assert list(verdict.repairs) == list(case.repairs)
    assert verdict.defaulted == case.defaulted
