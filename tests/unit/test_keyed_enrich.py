"""The keyed enrich step's bookkeeping (``transforms.beam.keyed_enrich``): slots, bundle
size, and a worker's calls (room in the window, one poke at a time)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from typing import Any

from transforms.beam.keyed_enrich import SLOTS, WorkerCalls, bundle_size, slot_of
from transforms.core.records import KafkaRecord, Parsed


def _parsed(partition: int, offset: int) -> Parsed:
    record = KafkaRecord("in", partition, offset, None, None, b"x")
    return Parsed(record, {}, "schema")


def test_a_partitions_records_spread_over_every_slot() -> None:
    slots = [slot_of(_parsed(1, offset))[0] for offset in range(SLOTS)]
    assert sorted(slots) == list(range(SLOTS))
    assert slot_of(_parsed(1, 7)) == slot_of(_parsed(1, 7))  # a record keeps its slot


def test_bundles_are_half_the_window() -> None:
    assert [bundle_size(n) for n in (1, 2, 4, 16, 250)] == [1, 1, 2, 8, 125]


def _answer_later(future: Future[Any], seconds: float) -> None:
    threading.Timer(seconds, future.set_result, args=("answer",)).start()


def test_room_in_the_window_is_waited_for_until_a_call_is_answered() -> None:
    calls = WorkerCalls()
    first, second = Future[Any](), Future[Any]()
    calls.add(first, None, None)
    calls.add(second, None, None)
    started = time.monotonic()
    calls.wait_for_room(3)  # 2 unanswered: room already
    assert time.monotonic() - started < 0.05
    _answer_later(first, 0.3)
    calls.wait_for_room(2)  # full until the first is answered
    waited = time.monotonic() - started
    assert 0.25 < waited < 2.0
    assert [s.future for s in calls.outstanding.take_done()] == [first]
    second.set_result("answer")
    calls.wait_for_room(1)
    assert [s.future for s in calls.outstanding.take_done()] == [second]


def test_one_poke_at_a_time_and_only_with_calls_outstanding() -> None:
    calls = WorkerCalls()
    assert not calls.claim_poke()  # nothing outstanding
    pending = Future[Any]()
    calls.add(pending, None, None)
    assert calls.claim_poke()
    assert not calls.claim_poke()  # one is pending
    calls.poked()
    assert calls.claim_poke()  # it fired: the next may be set
    pending.set_result("answer")
    list(calls.outstanding.take_done())
    calls.poked()
    assert not calls.claim_poke()
