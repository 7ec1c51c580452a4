"""A broker restart is routine: a drain and a follow run ride it out (exit 0), with no
record lost and none written twice.

These tests restart the shared test broker (``deploy/kafka.sh stop`` then ``start``, as an
operator's rolling restart would), and wait until it answers again before they end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable

from kafka import KafkaConsumer, TopicPartition

from tests.conftest import REPO
from tests.fault_server import FaultServer, Reply
from tests.integration.conftest import (
    KAFKA,
    MakeTask,
    committed_offsets,
    end_offsets,
    fault_provider,
    produce,
    reviews,
    start_run,
    wait_for,
)
from tests.soak.commit_chain import settled_coordinates
from transforms.core.job import Job

RECORDS = 1200


def _restart_broker() -> float:
    """Stop the broker cleanly and start it again; how long it was away."""
    env = {**os.environ, "PYTHON": os.environ.get("PYTHON", str(REPO / ".venv/bin/python"))}
    started = time.monotonic()
    for action in ("stop", "start"):
        subprocess.run(
            ["bash", str(REPO / "deploy/kafka.sh"), action],
            check=True,
            env=env,
            capture_output=True,
            timeout=120,
        )
    return time.monotonic() - started


def _written(job: Job) -> int:
    """Outputs and dead letters written so far (the topics' end offsets)."""
    kafka = job.task.kafka
    consumer = KafkaConsumer(bootstrap_servers=KAFKA)
    try:
        tps = [
            TopicPartition(topic, p)
            for topic in (kafka.output_topic, kafka.dead_letter_topic)
            for p in consumer.partitions_for_topic(topic) or ()
        ]
        return sum(consumer.end_offsets(tps).values())
    finally:
        consumer.close()


def _assert_exactly_once(job: Job) -> None:
    settled = settled_coordinates(job)
    every_offset = {(p, o) for p, end in end_offsets(job).items() for o in range(end)}
    assert set(settled) == every_offset, "every record has an output or a dead letter"
    duplicates = {coordinates: n for coordinates, n in settled.items() if n > 1}
    assert not duplicates, f"{len(duplicates)} records written twice"
    assert committed_offsets(job) == end_offsets(job)


def _job(make_task: MakeTask, fault_server: Callable[..., FaultServer]) -> Job:
    server = fault_server(default=Reply.ok(delay_s=0.2))
    return make_task([fault_provider(server, "steady")], policy={"max_in_flight": 32})


def test_a_drain_rides_out_a_broker_restart(
    make_task: MakeTask, fault_server: Callable[..., FaultServer]
) -> None:
    job = _job(make_task, fault_server)
    produce(job, reviews(RECORDS))
    process = start_run(job)
    try:
        wait_for(lambda: _written(job) >= RECORDS * 0.2, 120, "a fifth of the outputs")
        away_s = _restart_broker()
        stdout, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, stderr[-3000:]
    assert f"records read        {RECORDS}" in stdout
    _assert_exactly_once(job)
    print(f"drain: the broker was away {away_s:.1f} s")


def test_a_follow_run_rides_out_a_broker_restart(
    make_task: MakeTask, fault_server: Callable[..., FaultServer]
) -> None:
    job = _job(make_task, fault_server)
    produce(job, reviews(RECORDS // 2))
    process = start_run(job, "--follow")
    try:
        wait_for(lambda: _written(job) >= RECORDS * 0.2, 120, "a fifth of the outputs")
        _restart_broker()
        produce(job, reviews(RECORDS // 2))  # records keep coming after the restart
        wait_for(lambda: _written(job) >= RECORDS, 240, "every output")
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, stderr[-3000:]
    _assert_exactly_once(job)
