"""Replay of the dead-letter topic over the real broker, with a fault server as provider."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from pipelines.enrich_pipeline import build_replay_pipeline
from pipelines.execute import execute
from pipelines.summary import RunSummary
from pipelines.topics import topic_records
from tests.fault_server import Reply
from tests.integration.conftest import KAFKA, MakeTask, fault_provider, produce, reviews, run_job
from transforms.beam.stage import replay_group
from transforms.core.job import Job
from transforms.core.run.replay import ReplayFilter

FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.02, "circuit_failure_threshold": 10_000}


def _replay(
    job: Job, selection: ReplayFilter | None = None, limit: int | None = None
) -> RunSummary:
    return execute(build_replay_pipeline(job.task, selection or ReplayFilter(), limit)[0])


def _outputs_by_source(job: Job) -> Counter[tuple[int, int]]:
    return Counter(
        (
            int(r["headers"]["llm_enrich.source.partition"]),
            int(r["headers"]["llm_enrich.source.offset"]),
        )
        for r in topic_records(job, dead_letters=False)
    )


def _outage(make_task: MakeTask, fault_server: Any, count: int, **task: Any) -> tuple[Job, Any]:
    server = fault_server(default=Reply.status(503))
    # The outage dead-letters the records (the documented opt-out; by default it would stop
    # the run), so that there is something to replay.
    policy = {"on_systemic_fault": "dead_letter", "max_dead_letter_ratio": None}
    job = make_task(
        [fault_provider(server, "only")],
        policy={"attempts_per_provider": 1, **FAST, **policy},
        **task,
    )
    produce(job, reviews(count))
    first = run_job(job.task)
    assert first.dead_by_stage == {"llm": count}
    return job, server


def test_replay_after_an_outage_enriches_everything_once(
    make_task: MakeTask, fault_server: Any
) -> None:
    job, server = _outage(make_task, fault_server, 30)
    server.set_default(Reply.ok())  # the provider is back

    replayed = _replay(job)

    assert replayed.get("replay.selected") == 30 and replayed.get("written.output") == 30
    assert replayed.unaccounted == 0
    outputs = _outputs_by_source(job)
    assert len(outputs) == 30 and set(outputs.values()) == {1}
    replay_counts = {
        r["headers"]["llm_enrich.replay_count"] for r in topic_records(job, dead_letters=False)
    }
    assert replay_counts == {"1"}

    again = _replay(job)  # committed replay offsets: nothing new to read
    assert again.get("read") == 0 and again.get("written.output") == 0
    # inputs reconcile: each of the 30 offsets has exactly one output; the 30 dead letters
    # of the outage stay in the topic as history
    assert _outputs_by_source(job) == outputs
    assert len(list(topic_records(job, dead_letters=True))) == 30


def test_a_second_replay_group_skips_sources_that_already_have_an_output(
    make_task: MakeTask, fault_server: Any
) -> None:
    job, server = _outage(make_task, fault_server, 12)
    server.set_default(Reply.ok())
    _replay(job)
    requests = server.stats.requests
    # another consumer group (as after lost commits) re-reads every dead letter
    other = job.task.model_copy(
        update={"kafka": job.task.kafka.model_copy(update={"consumer_group": "another"})}
    )
    again = _replay(Job(other, job.input_schema, job.output_schema, job.shape, job.prompt))
    assert again.get("read") == 12
    assert again.skipped_by_reason == {"already_enriched": 12}
    assert server.stats.requests == requests  # not one LLM call
    assert set(_outputs_by_source(job).values()) == {1}


def test_failed_replays_are_dead_lettered_again_with_the_count_incremented(
    make_task: MakeTask, fault_server: Any
) -> None:
    job, _ = _outage(make_task, fault_server, 8)  # the provider stays down

    first = _replay(job)
    assert first.get("written.dead_letter") == 8
    counts = Counter(d["value"]["replay_count"] for d in topic_records(job, dead_letters=True))
    assert counts == {0: 8, 1: 8}
    second = _replay(job, ReplayFilter(max_replays=1))
    assert second.skipped_by_reason == {"max_replays": 8}
    assert second.get("written.dead_letter") == 0


def test_filters_select_by_stage_error_class_time_and_limit(
    make_task: MakeTask, fault_server: Any
) -> None:
    job, server = _outage(make_task, fault_server, 10)
    produce(job, [os.urandom(20) for _ in range(4)])  # poison: decode dead letters
    run_job(job.task)
    server.set_default(Reply.ok())
    now_ms = int(time.time() * 1000)

    nothing = _replay(job, ReplayFilter(until_ms=now_ms - 3_600_000))
    assert nothing.skipped_by_reason == {"after_until": 14}  # all committed as skipped

    fresh = job.task.model_copy(
        update={"kafka": job.task.kafka.model_copy(update={"consumer_group": "by-stage"})}
    )
    stage_job = Job(fresh, job.input_schema, job.output_schema, job.shape, job.prompt)
    limited = _replay(stage_job, ReplayFilter(stages=frozenset({"llm"})), limit=6)
    assert limited.get("read") == 6
    rest = _replay(stage_job, ReplayFilter(error_classes=frozenset({"ProvidersExhausted"})))
    assert rest.get("read") == 8
    assert rest.skipped_by_reason == {"error_class": 4}  # the DecodeErrors
    assert len(_outputs_by_source(job)) == 10
    late = _replay(stage_job, ReplayFilter(since_ms=now_ms + 3_600_000))
    assert late.get("read") == 0


def test_dry_run_reports_groups_and_changes_nothing(make_task: MakeTask, fault_server: Any) -> None:
    job, server = _outage(make_task, fault_server, 9)
    produce(job, [os.urandom(20) for _ in range(3)])
    run_job(job.task)
    server.set_default(Reply.ok())
    before = server.stats.requests

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "replay",
            "--task",
            str(job.task.source_path),
            "--dry-run",
            "--max-replays",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    assert "would replay 12 dead letters:" in done.stdout
    assert "9  stage=llm  error_class=ProvidersExhausted" in done.stdout
    assert "3  stage=decode  error_class=DecodeError" in done.stdout
    assert server.stats.requests == before
    assert list(topic_records(job, dead_letters=False)) == []
    consumer = KafkaConsumer(bootstrap_servers=KAFKA, group_id=replay_group(job.task))
    try:
        tp = TopicPartition(job.task.kafka.dead_letter_topic, 0)
        assert consumer.committed(tp) is None
    finally:
        consumer.close(autocommit=False)


def test_several_dead_letters_for_one_original_are_replayed_once(
    make_task: MakeTask, fault_server: Any
) -> None:
    job, server = _outage(make_task, fault_server, 8)
    _replay(job)  # still down: each original now has two dead letters (replay_count 0 and 1)
    server.set_default(Reply.ok())
    other = job.task.model_copy(
        update={"kafka": job.task.kafka.model_copy(update={"consumer_group": "fresh"})}
    )
    again = _replay(Job(other, job.input_schema, job.output_schema, job.shape, job.prompt))
    assert again.get("read") == 16
    assert again.skipped_by_reason == {"duplicate": 8}
    assert again.get("written.output") == 8 and again.unaccounted == 0
    assert set(_outputs_by_source(job).values()) == {1}
    assert {
        r["headers"]["llm_enrich.replay_count"] for r in topic_records(job, dead_letters=False)
    } == {"2"}
