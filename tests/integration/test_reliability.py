"""The reliability ladder over the real broker, with scriptable fault servers as providers."""

from __future__ import annotations

import time
from typing import Any

from pipelines.topics import topic_records
from tests.fault_server import Reply, fraction
from tests.integration.conftest import (
    MakeTask,
    committed_offsets,
    end_offsets,
    fault_provider,
    produce,
    reviews,
    run_job,
)

VALID = {"sentiment": "positive", "rating": 4}
FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.05}


def _settled(job: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return list(topic_records(job, dead_letters=False)), [
        d["value"] for d in topic_records(job, dead_letters=True)
    ]


def test_primary_failing_with_503_is_replaced_by_the_fallback(
    make_task: MakeTask, fault_server: Any
) -> None:
    primary = fault_server(default=Reply.status(503))
    fallback = fault_server(default=Reply.ok())
    job = make_task(
        [fault_provider(primary, "primary"), fault_provider(fallback, "fallback")],
        policy={
            "attempts_per_provider": 2,
            "circuit_failure_threshold": 4,
            "circuit_cooldown_s": 600,
            **FAST,
        },
    )
    produce(job, reviews(60))

    summary = run_job(job.task)

    outputs, dead = _settled(job)
    assert len(outputs) == 60 and dead == []
    assert {o["headers"]["llm_enrich.provider"] for o in outputs} == {"fallback"}
    # the circuit opened after 4 consecutive failures: the primary was then skipped (16
    # records were already in flight; without the breaker it would see 60 x 2 requests)
    assert primary.stats.requests < 30
    assert summary.get("llm_failed_calls") >= 60
    assert committed_offsets(job) == end_offsets(job)


def test_throttled_calls_are_retried_after_the_wait_the_provider_asks_for(
    make_task: MakeTask, fault_server: Any
) -> None:
    throttle = Reply.status(429, headers={"retry-after-ms": "20"})
    primary = fault_server(script=fraction(0.3, throttle, Reply.ok(), seed=3))
    job = make_task(
        [fault_provider(primary, "primary")],
        policy={"attempts_per_provider": 8, "circuit_failure_threshold": 50, **FAST},
    )
    produce(job, reviews(80))

    summary = run_job(job.task)

    outputs, dead = _settled(job)
    assert len(outputs) == 80 and dead == []
    assert primary.stats.statuses[429] > 10
    assert summary.get("llm_failed_calls") == primary.stats.statuses[429]
    assert summary.get("llm_calls") == primary.stats.requests


def test_all_providers_failing_dead_letters_every_record_with_its_attempts(
    make_task: MakeTask, fault_server: Any
) -> None:
    first = fault_server(default=Reply.status(500))
    second = fault_server(default=Reply.status(502))
    job = make_task(
        [fault_provider(first, "first"), fault_provider(second, "second")],
        policy={"attempts_per_provider": 2, "circuit_failure_threshold": 1000, **FAST},
    )
    produce(job, reviews(20))

    run_job(job.task)

    outputs, dead = _settled(job)
    assert outputs == [] and len(dead) == 20
    for letter in dead:
        assert letter["stage"] == "llm"
        assert [(a["provider"], a["status"]) for a in letter["attempts"]] == [
            ("first", 500),
            ("first", 500),
            ("second", 502),
            ("second", 502),
        ]
    assert committed_offsets(job) == end_offsets(job)


def test_broken_json_is_repaired_without_a_reask(make_task: MakeTask, fault_server: Any) -> None:
    broken = [
        Reply.fenced(VALID),
        Reply.trailing_comma(VALID),
        Reply.ok(content={"sentiment": " Positive", "rating": "4"}),
        Reply.text('Here you go: {"sentiment": "mixed", "rating": 3} Thanks!'),
    ]
    server = fault_server(script=lambda index, body: broken[index % len(broken)])
    job = make_task([fault_provider(server, "only")])
    produce(job, reviews(40))

    summary = run_job(job.task)

    outputs, dead = _settled(job)
    assert len(outputs) == 40 and dead == []
    assert server.stats.requests == 40
    assert summary.get("llm_reasks") == 0 and summary.get("repaired") == 40
    repairs = {o["headers"]["llm_enrich.repairs"] for o in outputs}
    assert repairs == {
        "strip_code_fence",
        "json_repair",
        "enum_case@$.sentiment,numeric_string@$.rating",
        "strip_surrounding_text",
    }


def test_answers_that_stay_invalid_are_dead_lettered_after_exactly_max_reasks(
    make_task: MakeTask, fault_server: Any
) -> None:
    server = fault_server(default=Reply.ok(content={"sentiment": "great", "rating": 9}))
    job = make_task([fault_provider(server, "only")], policy={"max_reasks": 2})
    produce(job, reviews(15))

    summary = run_job(job.task)

    outputs, dead = _settled(job)
    assert outputs == [] and len(dead) == 15
    assert server.stats.requests == 15 * 3
    assert summary.get("llm_reasks") == 30
    for letter in dead:
        assert letter["stage"] == "validate"
        assert [a["kind"] for a in letter["attempts"]] == ["call", "reask", "reask"]
        assert letter["last_raw_output"] == '{"sentiment": "great", "rating": 9}'
        assert {e["path"] for e in letter["validation_errors"]} == {"$.sentiment", "$.rating"}
    # the re-ask quoted the errors back to the model
    last_turn = server.stats.bodies[-1]["messages"][-1]["content"]
    assert "$.rating: must be <= 5" in last_turn


def test_truncated_answers_are_reasked_with_a_note(make_task: MakeTask, fault_server: Any) -> None:
    server = fault_server(
        script=lambda index, body: Reply.truncated(VALID) if index % 2 == 0 else Reply.ok()
    )
    job = make_task([fault_provider(server, "only")], policy={"max_in_flight": 1})
    produce(job, reviews(6))

    run_job(job.task)

    outputs, dead = _settled(job)
    assert len(outputs) == 6 and dead == []
    assert server.stats.requests == 12
    assert "cut off" in server.stats.bodies[1]["messages"][-1]["content"]


def test_context_length_and_timeouts_fall_back_as_classified(
    make_task: MakeTask, fault_server: Any
) -> None:
    too_long = fault_server(default=Reply.context_length_exceeded())
    hanging = fault_server(default=Reply.hang(3))
    healthy = fault_server(default=Reply.ok())
    job = make_task(
        [
            fault_provider(too_long, "small-context"),
            fault_provider(hanging, "hanging", timeout_s=0.3),
            fault_provider(healthy, "healthy"),
        ],
        policy={"attempts_per_provider": 2, "circuit_failure_threshold": 1000, **FAST},
    )
    produce(job, reviews(10))

    run_job(job.task)

    outputs, _ = _settled(job)
    assert len(outputs) == 10
    assert too_long.stats.requests == 10  # a context-length error is not retried
    assert hanging.stats.requests == 20  # a timeout is transient: retried once, then fallback


def test_dead_letter_ratio_guard_stops_the_run_and_commits_only_what_was_written(
    make_task: MakeTask, fault_server: Any
) -> None:
    server = fault_server(default=Reply.ok(content={"sentiment": "great", "rating": 9}))
    job = make_task(
        [fault_provider(server, "only")],
        policy={
            "max_reasks": 0,
            "max_dead_letter_ratio": 0.5,
            "dead_letter_window": 10,
            "max_in_flight": 5,
        },
    )
    produce(job, reviews(90))

    summary = run_job(job.task)

    outputs, dead = _settled(job)
    assert summary.stop_reasons and "max_dead_letter_ratio" in summary.stop_reasons[0]
    assert 10 <= len(dead) < 90 and outputs == []
    # the readers stopped too: what was read and not dead-lettered is left unsettled
    assert summary.get("read") < 90 and summary.unaccounted == summary.get("read") - len(dead)
    assert summary.exit_code == 4
    written = {(d["original"]["partition"], d["original"]["offset"]) for d in dead}
    for partition, committed in committed_offsets(job).items():
        # everything below the committed offset was written; nothing above it is lost
        assert all((partition, o) in written for o in range(committed or 0))
        assert (committed or 0) < end_offsets(job)[partition]


def test_budget_stops_the_run_cleanly(make_task: MakeTask, fault_server: Any) -> None:
    server = fault_server(default=Reply.ok(prompt_tokens=1000, completion_tokens=0))
    job = make_task(
        [fault_provider(server, "priced", pricing={"prompt_per_million": 1000.0})],
        policy={"budget_usd": 10.0, "max_in_flight": 2},  # $1 per call: about 10 calls
    )
    produce(job, reviews(40))

    summary = run_job(job.task)

    assert summary.stop_reasons and "budget_usd" in summary.stop_reasons[0]
    assert summary.exit_code == 4
    assert 10 <= summary.get("written.output") <= 13
    assert summary.get("cost_micro_usd") == summary.get("written.output") * 1_000_000


def test_a_slow_provider_keeps_hundreds_of_calls_in_flight(
    make_task: MakeTask, fault_server: Any
) -> None:
    slow = fault_server(default=Reply.ok(delay_s=1.0))
    job = make_task(
        [fault_provider(slow, "slow", max_concurrency=300, timeout_s=30)],
        policy={"max_in_flight": 300},
    )
    produce(job, reviews(1000))

    started = time.monotonic()
    summary = run_job(job.task)
    elapsed = time.monotonic() - started

    assert summary.get("written.output") == 1000
    assert slow.stats.max_in_flight >= 200
    assert elapsed < 30, f"1000 records at 1 s each took {elapsed:.1f}s"


def test_rate_limited_time_is_reported_as_throttling(
    make_task: MakeTask, fault_server: Any
) -> None:
    server = fault_server(default=Reply.ok())
    job = make_task([fault_provider(server, "limited", rpm=60)])  # one call a second
    produce(job, reviews(64))  # the bucket holds 60: the last 4 wait about 4 s
    summary = run_job(job.task)
    assert summary.get("written.output") == 64
    assert 2_000 <= summary.get("throttled_ms") <= 20_000
