"""Rate limits, the budget and the circuit breakers are one per job across worker processes
when the task says ``coordination: {backend: redis}``, on two runners: ``llm-enrich run
--workers 2`` (two SDK worker processes from Beam's worker pool, records dealt by offset
between them) and ``llm-enrich run --runner flink`` (the local cluster: one SDK worker
process per TaskManager, records spread by slot), against fault servers that log every
call, and the real Redis.

Which worker handled a record shows in its dead letter (``__connect.errors.task.id``:
host:pid), so each run marks the first ``MARKED`` records of partition 0 (the worker pool
deals offsets 0-3 to workers 0, 1, 0, 1; Flink's slots spread them over both
TaskManagers) to be answered with text that is not JSON (``max_reasks: 0``: a validate
dead letter). Two pids among them: both workers called.

Then, per guarantee, a bound that per-process coordination breaks, and (for the rate) the
same run without the section to show that it does:
- rpm N: in any window of w seconds the provider sees at most N + N * w / 60 calls (one
  bucket: a full minute's burst, then the refill), over both workers together (a token
  bucket: N in any minute is not what it promises, in one process either);
- budget B: the run stops (exit 4) with at most B / (cost of a call) + (window - 1) calls
  billed, where the window is workers x ``policy.max_in_flight``;
- a breaker: the failures of both workers count together, so the failing provider sees at
  most threshold + (window - 1) calls, not threshold per worker.

Print the figures with ``pytest -s``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import pytest

from pipelines import exit_codes
from pipelines.topics import topic_records
from schemas import load_schema
from tests.conftest import SCHEMAS
from tests.fault_server import FaultServer, Ok, Reply
from tests.integration.conftest import (
    CLI,
    MakeTask,
    committed_offsets,
    end_offsets,
    fault_provider,
    produce,
    sample_reviews,
)
from transforms.core.formats import framing
from transforms.core.job import Job

MARK = "MARKED-FOR-A-DEAD-LETTER"
MARKED = 4
WORKERS = 2  # SDK worker processes: --workers 2, or one per TaskManager on Flink


@pytest.fixture
def coordination(redis_url: str) -> dict[str, Any]:
    return {"backend": "redis", "url": redis_url}


@pytest.fixture(params=["workers", "flink"])
def runner(request: pytest.FixtureRequest) -> str:
    """The runner of the test's runs: a local worker pool, or the Flink cluster."""
    if request.param == "flink":
        request.getfixturevalue("flink_cluster")
    return str(request.param)


def _marked_reviews(count: int) -> list[bytes]:
    """``count`` reviews for partition 0; the first ``MARKED`` marked."""
    schema = load_schema(SCHEMAS / "examples.reviews.Review.avsc")
    rows = sample_reviews(count)
    for index in range(MARKED):
        rows[index] = {**rows[index], "text": f"{MARK} {rows[index]['text']}"}
    for index, row in enumerate(rows):  # every prompt its own: no answer is shared
        rows[index] = {**row, "review_id": f"r{index:04d}"}
    return [framing.encode(row, schema, "single-object") for row in rows]


def _marked(body: dict[str, Any]) -> bool:
    return any(MARK in str(m.get("content", "")) for m in body.get("messages", [])[-1:])


def _answer(ok: Ok) -> Callable[[int, dict[str, Any]], Ok]:
    """The server's script: ``ok``, but not JSON for a marked record (the same usage)."""
    marked = replace(ok, content="not json")
    return lambda index, body: marked if _marked(body) else ok


def _run(job: Job, runner: str) -> subprocess.CompletedProcess[str]:
    assert job.task.source_path is not None
    on = ["--runner", "flink"] if runner == "flink" else ["--workers", str(WORKERS)]
    command = [*CLI, "run", "--task", str(job.task.source_path), *on]
    return subprocess.run(
        [*command, "--no-progress"],
        capture_output=True,
        text=True,
        timeout=600,
    )


def _settled(done: subprocess.CompletedProcess[str], job: Job, records: int) -> None:
    """Every record ended as exactly one output or one dead letter, every offset was
    committed, and the run exits 0 on both runners (a worker pool's summary used to miss
    a bundle's count now and then: Prism's metrics, fixed by deploy/prism/'s patch)."""
    outputs = [int(o["headers"]["llm_enrich.source.offset"]) for o in _records(job, False)]
    dead = [d["value"]["original"]["offset"] for d in _records(job, True)]
    assert sorted(outputs + dead) == list(range(records)), _said(done, job)
    committed = committed_offsets(job)
    assert all((committed.get(p) or 0) == end for p, end in end_offsets(job).items()), _said(
        done, job
    )
    assert done.returncode == exit_codes.OK, _said(done, job)


def _records(job: Job, dead_letters: bool) -> list[dict[str, Any]]:
    return list(topic_records(job, dead_letters=dead_letters))


def _said(done: subprocess.CompletedProcess[str], job: Job | None = None) -> str:
    said = f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    if job is not None:
        said += f"\ncommitted {committed_offsets(job)}, end {end_offsets(job)}"
    return said


def _workers_seen(job: Job) -> set[str]:
    """The host:pid of the workers that wrote the marked records' dead letters."""
    dead = _records(job, True)
    marked = [d for d in dead if d["value"]["original"]["offset"] < MARKED]
    assert len(marked) == MARKED, [d["value"]["error_message"] for d in dead]
    return {d["headers"]["__connect.errors.task.id"] for d in marked}


def _most_in_window(times: Sequence[float], window_s: float) -> int:
    """The most calls that arrived within any ``window_s`` seconds."""
    ordered = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(ordered):
        while at - ordered[start] > window_s:
            start += 1
        most = max(most, end - start + 1)
    return most


RPM = 20
RECORDS_OVER = 6  # calls beyond the first minute's burst: one every 3 s at 20 a minute


@pytest.mark.parametrize("shared", [True, False], ids=["redis", "per-process"])
def test_one_rpm_bucket_for_both_workers(
    make_task: MakeTask,
    fault_server: Callable[..., FaultServer],
    coordination: dict[str, Any],
    shared: bool,
    runner: str,
) -> None:
    if runner == "flink" and not shared:
        pytest.skip("shown once, on the worker pool: per process, the bound breaks")
    server = fault_server()
    server.set_script(_answer(Reply.ok()))
    job = make_task(
        [fault_provider(server, "limited", rpm=RPM)],
        policy={"max_reasks": 0, "max_dead_letter_ratio": None},
        **({"coordination": coordination} if shared else {}),
    )
    produce(job, _marked_reviews(RPM + RECORDS_OVER), partition=0)

    done = _run(job, runner)

    _settled(done, job, RPM + RECORDS_OVER)
    assert len(_workers_seen(job)) == WORKERS  # both worker processes called the provider
    times = server.stats.received_at
    assert len(times) == RPM + RECORDS_OVER  # one call per record
    most = {w: _most_in_window(times, w) for w in (1, 5, 10, 60)}
    span = max(times) - min(times)
    print(f"\n[{runner}] rpm {RPM}, {len(times)} calls over {span:.1f} s, most in a window: {most}")
    over = {w: n for w, n in most.items() if n > RPM + RPM * w / 60 + 1}
    if not shared:  # each worker has a bucket of its own: nothing waits, the bound breaks
        assert over and span < (RECORDS_OVER - 1) * 60 / RPM
        return
    assert over == {}
    assert span >= (RECORDS_OVER - 1) * 60 / RPM  # the calls past the burst were paced


def test_one_budget_for_both_workers_stops_the_job_within_the_window(
    make_task: MakeTask,
    fault_server: Callable[..., FaultServer],
    coordination: dict[str, Any],
    runner: str,
) -> None:
    # Worker 1 starts a few seconds after worker 0 (a new process): calls of a second keep
    # worker 0 alone from spending the budget before it starts.
    per_call, budget, in_flight = 0.001, 0.016, 2
    server = fault_server()  # every answer: 1,000 prompt tokens at $1 a million
    server.set_script(_answer(Reply.ok(prompt_tokens=1000, completion_tokens=0, delay_s=1.0)))
    pricing = {"prompt_per_million": 1.0, "completion_per_million": 0.0}
    job = make_task(
        [fault_provider(server, "priced", pricing=pricing)],
        policy={
            "max_reasks": 0,
            "max_in_flight": in_flight,
            "budget_usd": budget,
            "max_dead_letter_ratio": None,
        },
        coordination=coordination,
    )
    records = 40
    produce(job, _marked_reviews(records), partition=0)

    done = _run(job, runner)

    assert done.returncode == exit_codes.GUARD, _said(done, job)
    assert "STOPPED EARLY: budget: spent $" in done.stdout
    assert len(_workers_seen(job)) == WORKERS
    calls = server.stats.requests
    billed = calls * per_call
    window = WORKERS * in_flight
    print(f"\n[{runner}] budget ${budget:.3f}: {calls} calls, ${billed:.3f} (window {window})")
    assert budget <= billed <= budget + (window - 1) * per_call + 1e-9
    # per process, each worker would have spent the budget: about twice as many calls
    assert calls < 2 * round(budget / per_call)
    written, dead = _records(job, False), _records(job, True)
    assert len(written) + len(dead) <= calls  # the records not started: neither
    assert len(dead) == MARKED  # the marked ones only: nothing dead-lettered for the stop
    committed = committed_offsets(job)[0] or 0
    assert committed <= len(written) + len(dead) < records == end_offsets(job)[0]


def test_one_worker_s_failures_open_the_breaker_for_both(
    make_task: MakeTask,
    fault_server: Callable[..., FaultServer],
    coordination: dict[str, Any],
    runner: str,
) -> None:
    threshold, in_flight = 3, 1
    failing = fault_server(default=Reply.status(500, delay_s=0.1))
    fallback = fault_server()
    fallback.set_script(_answer(Reply.ok()))
    job = make_task(
        [fault_provider(failing, "failing"), fault_provider(fallback, "fallback")],
        policy={
            "max_reasks": 0,
            "attempts_per_provider": 1,
            "max_in_flight": in_flight,
            "circuit_failure_threshold": threshold,
            "circuit_cooldown_s": 120,
            "max_dead_letter_ratio": None,
        },
        coordination=coordination,
    )
    records = 12
    produce(job, _marked_reviews(records), partition=0)

    done = _run(job, runner)

    _settled(done, job, records)
    assert len(_workers_seen(job)) == WORKERS
    calls = failing.stats.requests
    print(f"\n[{runner}] breaker threshold {threshold}: the failing provider saw {calls} calls")
    # per process it would take `threshold` failures on each worker: 6 calls
    assert threshold <= calls <= threshold + WORKERS * in_flight - 1
    outputs = _records(job, False)
    assert len(outputs) == records - MARKED
    assert {o["headers"]["llm_enrich.provider"] for o in outputs} == {"fallback"}
