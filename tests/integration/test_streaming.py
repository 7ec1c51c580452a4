"""The stage as a streaming job: follow mode, a clean stop, and progress that survives a
crash. Each test drives the real CLI (Prism, the real broker) against a fault server."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewPartitions

from tests.fault_server import FaultServer, Reply
from tests.integration.conftest import (
    KAFKA,
    OUTAGE_POLICY,
    MakeTask,
    committed_offsets,
    end_offsets,
    fault_provider,
    produce,
    reviews,
    run_job,
    start_run,
    wait_for,
)
from tests.soak.commit_chain import settled_coordinates
from transforms.core.job import Job
from transforms.kafka.commit_loop import COMMIT_EVERY


@contextlib.contextmanager
def _following(job: Job) -> Iterator[subprocess.Popen[str]]:
    """``llm-enrich run --follow``, killed (with its Prism) if a test leaves it running."""
    process = start_run(job, "--follow")
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


def _written(topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=KAFKA)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        return sum(consumer.end_offsets(tps).values()) if tps else 0
    finally:
        consumer.close()


def test_follow_mode_enriches_new_records_and_partitions_then_stops_cleanly_on_sigterm(
    make_task: MakeTask, fault_server: Callable[..., FaultServer]
) -> None:
    server = fault_server(default=Reply.ok(delay_s=0.05))
    job = make_task([fault_provider(server, "fast")])
    out = job.task.kafka.output_topic
    with _following(job) as job_process:
        produce(job, reviews(30))
        latency = wait_for(lambda: _written(out) >= 30, 90, "the first 30 outputs")
        # records produced while the job runs are enriched within seconds
        produce(job, reviews(6))
        latency = wait_for(lambda: _written(out) >= 36, 30, "6 more outputs")
        assert latency < 15, f"produce to output took {latency:.1f}s"
        # a partition added while running is found and read from its start
        admin = KafkaAdminClient(bootstrap_servers=KAFKA)
        admin.create_partitions({job.task.kafka.input_topic: NewPartitions(4)})
        admin.close()
        produce(job, reviews(5), partition=3)
        wait_for(lambda: _written(out) >= 41, 60, "the new partition's outputs")
        assert job_process.poll() is None, job_process.communicate()
        job_process.send_signal(signal.SIGTERM)
        stdout, stderr = job_process.communicate(timeout=120)
    assert job_process.returncode == 0, stderr
    assert "SIGTERM: stopping" in stderr
    assert "records read        41" in stdout and "not settled         0" in stdout
    # reconciled: every input offset in exactly one output or dead letter, all committed
    settled = settled_coordinates(job)
    assert sum(settled.values()) == 41 and set(settled.values()) == {1}
    expected = {(p, o) for p, end in end_offsets(job).items() for o in range(end)}
    assert set(settled) == expected
    assert committed_offsets(job) == end_offsets(job)
    print(f"follow mode: produce to output in {latency:.1f}s")


def test_a_crash_repeats_only_the_records_in_flight(
    make_task: MakeTask, fault_server: Callable[..., FaultServer]
) -> None:
    server = fault_server(default=Reply.ok(delay_s=0.2))
    job = make_task([fault_provider(server, "slow")])
    in_flight = job.task.policy.max_in_flight
    total = 900
    produce(job, reviews(total))
    out = job.task.kafka.output_topic

    crashed = start_run(job)
    wait_for(lambda: _written(out) >= total * 0.4, 180, "40% of the outputs")
    os.killpg(crashed.pid, signal.SIGKILL)  # kill -9, Prism and all
    crashed.communicate(timeout=30)
    before_crash = _written(out)
    calls_before = server.stats.requests
    committed = sum(v or 0 for v in committed_offsets(job).values())
    assert 0 < committed <= before_crash < total, "progress was committed as the run went"

    summary = run_job(job.task)  # the next run, to the end
    duplicates = _written(out) - total
    repeated_calls = server.stats.requests - total
    assert summary.exit_code == 0 and summary.get("read") == total - committed
    settled = settled_coordinates(job)
    assert set(settled) == {(p, o) for p, end in end_offsets(job).items() for o in range(end)}
    bound = in_flight + 3 * COMMIT_EVERY  # in flight, and settled but not yet committed
    print(
        f"crash at {before_crash}/{total} outputs ({calls_before} calls): committed {committed};"
        f" after the rerun {duplicates} duplicate outputs, {repeated_calls} repeated LLM calls"
        f" (bound {bound})"
    )
    assert duplicates == before_crash - committed  # exactly the uncommitted outputs
    assert 0 <= duplicates <= bound
    assert 0 <= repeated_calls <= bound + in_flight
    assert committed_offsets(job) == end_offsets(job)


def test_a_follow_run_waits_out_an_outage_and_goes_on_when_a_provider_is_back(
    make_task: MakeTask, fault_server: Callable[..., FaultServer]
) -> None:
    server = fault_server(default=Reply.status(503))
    job = make_task(
        [fault_provider(server, "flaky")],
        policy=OUTAGE_POLICY,
    )
    out, dead = job.task.kafka.output_topic, job.task.kafka.dead_letter_topic
    with _following(job) as job_process:
        produce(job, reviews(12))
        wait_for(lambda: server.stats.requests >= 3, 60, "the first failing calls")
        time.sleep(4)  # the outage goes on: records wait, they are not dead-lettered
        assert _written(out) == 0 and _written(dead) < 2
        assert job_process.poll() is None, "a follow run does not stop for an outage"
        server.set_default(Reply.ok())  # the provider is back: the probes find it
        wait_for(lambda: _written(out) + _written(dead) >= 12, 60, "every record settled")
        job_process.send_signal(signal.SIGTERM)
        stdout, stderr = job_process.communicate(timeout=120)
    assert job_process.returncode == 0, stderr
    assert "not settled         0" in stdout
    assert committed_offsets(job) == end_offsets(job)


def test_a_second_signal_exits_at_once_and_loses_nothing(
    make_task: MakeTask, fault_server: Callable[..., FaultServer]
) -> None:
    server = fault_server(default=Reply.ok(delay_s=3))
    job = make_task([fault_provider(server, "slow")], policy={"max_in_flight": 8})
    produce(job, reviews(60))
    with _following(job) as job_process:
        wait_for(lambda: server.stats.in_flight >= 8, 60, "calls in flight")
        job_process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        job_process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        _, stderr = job_process.communicate(timeout=30)
        assert time.monotonic() - started < 10, "the second signal exits at once"
    assert job_process.returncode == 1 and "second signal" in stderr
    summary = run_job(job.task)  # nothing was lost: the next run settles the rest
    assert summary.exit_code == 0
    settled = settled_coordinates(job)
    assert set(settled) == {(p, o) for p, end in end_offsets(job).items() for o in range(end)}
    assert committed_offsets(job) == end_offsets(job)
