"""Threshold selection (pure). Every expected figure is worked out by hand in the comments,
from the table below, not by the code under test."""

from __future__ import annotations

import hashlib
import json

import pytest

from transforms.core.eval.calibrate import (
    StepResult,
    alone,
    candidates,
    choose,
    held_back,
    route,
)


def small(valid: bool, confidence: float | None, score: float, cost: float = 1.0) -> StepResult:
    return StepResult(valid, confidence if valid else None, score if valid else 0.0, cost, 100.0)


def large(score: float, cost: float = 10.0, valid: bool = True) -> StepResult:
    return StepResult(valid, None, score if valid else 0.0, cost, 1000.0)


# record: small (valid, confidence, score), large (score); small costs 1, large 10
TABLE = [
    [small(True, 0.95, 1.0), large(1.0)],  # r0
    [small(True, 0.90, 0.5), large(1.0)],  # r1
    [small(True, 0.80, 1.0), large(0.5)],  # r2
    [small(True, 0.60, 0.0), large(1.0)],  # r3
    [small(False, None, 0.0), large(1.0)],  # r4
    [small(True, 0.40, 0.25), large(0.75)],  # r5
]


def test_the_strongest_step_alone() -> None:
    played = route(TABLE, (None,))
    # large answers all: (1 + 1 + 0.5 + 1 + 1 + 0.75) / 6 = 0.875, cost 10 each
    assert played.answered == (0, 6) and played.failed == 0
    assert played.overall == pytest.approx(5.25 / 6)
    assert played.cost_usd == pytest.approx(10.0)
    assert played.latency_ms == pytest.approx(1000.0)


def test_a_threshold_plays_back_record_by_record() -> None:
    played = route(TABLE, (0.80,))
    # small answers r0, r1, r2 (>= 0.80): 1 + 0.5 + 1; large r3, r4, r5: 1 + 1 + 0.75
    assert played.answered == (3, 3)
    assert played.overall == pytest.approx(5.25 / 6)
    # small is asked for all 6 (6 x 1), large for 3 (3 x 10): 36 / 6
    assert played.cost_usd == pytest.approx(6.0)
    assert played.latency_ms == pytest.approx((6 * 100 + 3 * 1000) / 6)
    assert played.shares() == pytest.approx((0.5, 0.5))


def test_threshold_zero_takes_every_valid_cheap_answer() -> None:
    played = route(TABLE, (0.0,))
    # small: r0 1, r1 0.5, r2 1, r3 0, r5 0.25; r4 invalid -> large 1: 3.75 / 6
    assert played.answered == (5, 1)
    assert played.overall == pytest.approx(3.75 / 6)
    assert played.cost_usd == pytest.approx((6 + 10) / 6)


def test_candidates_are_skip_zero_and_every_confidence_seen() -> None:
    assert candidates(TABLE, 0) == [None, 0.95, 0.90, 0.80, 0.60, 0.40, 0.0]


def test_the_cheapest_thresholds_within_the_target() -> None:
    # target 0.875 - 0.1 = 0.775. By hand, per candidate (overall, cost per record):
    #   skip (0.875, 10); 0.95 (0.875, 56/6); 0.90 (4.75/6 = 0.792, 46/6);
    #   0.80 (0.875, 6.0); 0.60 (4.25/6 = 0.708: misses); 0.40 and 0 (3.75/6: miss)
    chosen = choose(TABLE, 0.875 - 0.1)
    assert chosen.thresholds == (0.80,)
    assert chosen.cost_usd == pytest.approx(6.0)
    assert chosen.overall == pytest.approx(0.875)


def test_a_tighter_target_keeps_only_routes_as_good_as_the_strongest() -> None:
    # target 0.875: skip, 0.95 and 0.80 reach it; 0.80 is the cheapest (6.0)
    assert choose(TABLE, 0.875).thresholds == (0.80,)
    # target 0.9: nothing reaches it; the best score wins, the cheapest of those (0.80)
    assert choose(TABLE, 0.9).thresholds == (0.80,)


def test_a_loose_target_takes_every_valid_cheap_answer() -> None:
    # target 0.5: 0.40 and 0 accept the same answers (0.625, 16/6 = 2.67), the cheapest
    # that reach it; of the two, the higher threshold is the cautious choice
    chosen = choose(TABLE, 0.5)
    assert chosen.thresholds == (0.40,) and chosen.cost_usd == pytest.approx(16 / 6)


def test_on_equal_cost_the_better_score_then_the_cautious_choice() -> None:
    free = [
        [StepResult(r[0].valid, r[0].confidence, r[0].score, 0.0), large(r[1].score, 0.0)]
        for r in TABLE
    ]
    # everything costs 0: skip, 0.95 and 0.80 all score 0.875; a skip is the most cautious
    assert choose(free, 0.8).thresholds == (None,)


def test_a_skipped_step_costs_nothing_and_three_steps_combine() -> None:
    rows = [
        [small(True, 0.9, 1.0, 1.0), small(True, 0.9, 1.0, 3.0), large(1.0)],
        [small(True, 0.5, 0.0, 1.0), small(True, 0.9, 1.0, 3.0), large(1.0)],
        [small(True, 0.5, 0.0, 1.0), small(True, 0.2, 0.0, 3.0), large(1.0)],
    ]
    # (0.9, 0.9): r0 by the first (1), r1 by the second (1 + 3), r2 by the last (1 + 3 + 10)
    played = route(rows, (0.9, 0.9))
    assert played.answered == (1, 1, 1) and played.overall == pytest.approx(1.0)
    assert played.cost_usd == pytest.approx((1 + 4 + 14) / 3)
    # skipping the first: r0 and r1 by the second (3 each), r2 by the last (3 + 10)
    skipped = route(rows, (None, 0.9))
    assert skipped.answered == (0, 2, 1) and skipped.cost_usd == pytest.approx(19 / 3)
    # both cost 19/3 and score 1.0; the skip is the more cautious choice
    assert choose(rows, 1.0).thresholds == (None, 0.9)


def test_an_invalid_last_answer_fails_the_record() -> None:
    rows = [[small(True, 0.3, 1.0), large(0.0, valid=False)]]
    played = route(rows, (0.5,))
    assert played.answered == (0, 0) and played.failed == 1 and played.overall == 0.0
    assert played.cost_usd == pytest.approx(11.0)


def test_each_step_alone() -> None:
    played = alone(TABLE, 0)
    # small's valid answers: 1 + 0.5 + 1 + 0 + 0.25 over 6 records; r4 failed
    assert played.answered == (5, 0) and played.failed == 1
    assert played.overall == pytest.approx(2.75 / 6)
    assert played.cost_usd == pytest.approx(1.0)


def test_the_split_depends_on_each_record_alone() -> None:
    record = {"text": "Nice lamp", "review_id": "r9"}
    digest = hashlib.sha256(b'{"review_id":"r9","text":"Nice lamp"}').digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    assert held_back(record, fraction + 1e-12) is True
    assert held_back(record, fraction - 1e-12) is False
    assert json.dumps(record)  # the key order of the record does not matter:
    assert held_back(dict(reversed(record.items())), 0.5) == held_back(record, 0.5)


def test_no_records_is_an_error() -> None:
    with pytest.raises(ValueError):
        choose([], 0.5)
