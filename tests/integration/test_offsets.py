"""Commits only go forward, and records lost to retention before they were read are
reported, against the real broker."""

from __future__ import annotations

from collections.abc import Callable

from kafka import KafkaAdminClient, TopicPartition

from tests.fault_server import FaultServer, Reply
from tests.integration.conftest import (
    KAFKA,
    MakeTask,
    committed_offsets,
    end_offsets,
    fault_provider,
    produce,
    reviews,
    run_job,
)
from transforms.kafka.committer import commit_forward


def test_a_commit_never_moves_a_group_backwards(make_task: MakeTask) -> None:
    job = make_task([fault_provider_stub()])
    produce(job, reviews(30))
    kafka, group, topic = job.task.kafka, job.task.consumer_group, job.task.kafka.input_topic
    assert commit_forward(kafka, group, topic, 0, 8)
    # another run of the same task, further behind, must not rewind it
    assert not commit_forward(kafka, group, topic, 0, 3)
    assert committed_offsets(job)[0] == 8
    assert commit_forward(kafka, group, topic, 0, 10)
    assert committed_offsets(job)[0] == 10


def fault_provider_stub() -> dict[str, str]:
    return {"name": "unused", "base_url": "http://127.0.0.1:9/v1", "model": "m"}


def test_records_that_left_by_retention_before_they_were_read_are_counted(
    make_task: MakeTask, fault_server: Callable[..., FaultServer]
) -> None:
    server = fault_server(default=Reply.ok())
    job = make_task([fault_provider(server, "p")])
    produce(job, reviews(30))  # 10 per partition
    kafka, group, topic = job.task.kafka, job.task.consumer_group, job.task.kafka.input_topic
    assert commit_forward(kafka, group, topic, 0, 2)  # the group had read 2 of partition 0
    admin = KafkaAdminClient(bootstrap_servers=KAFKA)
    admin.delete_records({TopicPartition(topic, 0): 6})  # retention took offsets 0..5
    admin.close()

    summary = run_job(job.task)

    assert summary.get("expired") == 4  # offsets 2..5: never read by this group
    assert "expired             4  (left the topic by retention" in "\n".join(summary.lines())
    assert summary.get("read") == 4 + 10 + 10 and summary.exit_code == 0
    assert committed_offsets(job) == end_offsets(job)


def test_transaction_markers_do_not_stop_the_commits(
    make_task: MakeTask, fault_server: Callable[..., FaultServer]
) -> None:
    from kafka import KafkaProducer

    server = fault_server(default=Reply.ok())
    job = make_task([fault_provider(server, "p")])
    topic = job.task.kafka.input_topic
    producer = KafkaProducer(bootstrap_servers=KAFKA, transactional_id=f"{job.name}-tx", acks="all")
    producer.init_transactions()
    values = reviews(15)
    for start in range(0, 15, 5):  # three transactions: a commit marker after each
        producer.begin_transaction()
        for value in values[start : start + 5]:
            producer.send(topic, value=value, partition=0)
        producer.commit_transaction()
    producer.close()
    ends = end_offsets(job)
    assert ends[0] == 18  # 15 records and 3 markers

    summary = run_job(job.task)

    assert summary.exit_code == 0 and summary.get("written.output") == 15
    assert committed_offsets(job)[0] == 18, "the commit went past every marker"
