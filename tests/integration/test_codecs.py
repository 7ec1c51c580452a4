"""Every compression codec Kafka ships, on the input and on the output, end to end."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kafka import KafkaConsumer, KafkaProducer

from tests.fault_server import FaultServer, Reply
from tests.integration.conftest import (
    KAFKA,
    MakeTask,
    committed_offsets,
    end_offsets,
    fault_provider,
    reviews,
    run_job,
)

CODECS = ["gzip", "snappy", "lz4", "zstd"]


@pytest.mark.parametrize("codec", CODECS)
def test_a_topic_written_with_each_codec_is_enriched_and_written_back_compressed(
    make_task: MakeTask, fault_server: Callable[..., FaultServer], codec: str
) -> None:
    server = fault_server(default=Reply.ok())
    job = make_task([fault_provider(server, "p")], kafka={"client": {"compression_type": codec}})
    producer = KafkaProducer(bootstrap_servers=KAFKA, compression_type=codec, acks="all")
    for index, value in enumerate(reviews(30)):
        producer.send(job.task.kafka.input_topic, value=value, partition=index % 3)
    producer.flush()
    producer.close()

    summary = run_job(job.task)

    assert summary.exit_code == 0 and summary.get("written.output") == 30
    assert committed_offsets(job) == end_offsets(job)
    consumer = KafkaConsumer(
        job.task.kafka.output_topic,
        bootstrap_servers=KAFKA,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    assert len([m for m in consumer if m.value]) == 30  # decompressed by a plain consumer
    consumer.close()
