"""Overload is not the record's fault: records queued for a provider's capacity are sent
when their turn comes, never dead-lettered for the time they waited."""

from __future__ import annotations

from collections.abc import Callable

from tests.fault_server import FaultServer, Reply
from tests.integration.conftest import (
    MakeTask,
    committed_offsets,
    end_offsets,
    fault_provider,
    produce,
    reviews,
    run_job,
)

RECORDS = 40
LATENCY_S = 0.5
DEADLINE_S = 3.0  # a record's own call takes 0.5 s; the last one queues for ~20 s


def test_records_waiting_for_a_one_slot_provider_are_all_enriched(
    make_task: MakeTask, fault_server: Callable[..., FaultServer]
) -> None:
    server = fault_server(default=Reply.ok(delay_s=LATENCY_S))
    job = make_task(
        [fault_provider(server, "one-slot", max_concurrency=1)],
        policy={"max_in_flight": 64, "record_deadline_s": DEADLINE_S},
    )
    produce(job, reviews(RECORDS))
    summary = run_job(job.task)
    assert summary.exit_code == 0, summary.lines()
    assert summary.get("written.output") == RECORDS
    assert summary.get("written.dead_letter") == 0
    assert server.stats.requests == RECORDS and server.stats.max_in_flight == 1
    # the queueing is reported: far more than any one record's deadline, in all
    waited_s = summary.get("capacity_wait_ms") / 1000
    assert waited_s > RECORDS * LATENCY_S * 2, waited_s
    assert any(line.startswith("capacity wait") for line in summary.lines())
    assert committed_offsets(job) == end_offsets(job)


def test_a_record_whose_own_calls_outlast_the_deadline_is_still_dead_lettered(
    make_task: MakeTask, fault_server: Callable[..., FaultServer]
) -> None:
    server = fault_server(default=Reply.ok(delay_s=2.5))
    job = make_task(
        [fault_provider(server, "slow", timeout_s=10)],
        policy={"max_in_flight": 4, "record_deadline_s": 1.0},
    )
    produce(job, reviews(3))
    summary = run_job(job.task)
    assert summary.get("written.dead_letter") == 3 and summary.get("written.output") == 0
    assert committed_offsets(job) == end_offsets(job)
