"""Small Kafka chores for the CLI: load sample data, and show what a topic holds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from transforms.core.config.job import Job
from transforms.core.formats import framing
from transforms.core.formats.envelope import read_dead_letter
from transforms.kafka.admin import ensure_topics
from transforms.kafka.client import producer
from transforms.kafka.reader import read_range, snapshot_ranges
from transforms.registry.client import RegistryClient, registry_lookup, topic_subject

__all__ = ["produce_jsonl", "topic_records"]


def produce_jsonl(
    job: Job, data: Path, partitions: int, key_field: str | None, limit: int | None
) -> int:
    """Encode each JSON line with the task's input schema and framing; return the count."""
    kafka = job.task.kafka
    ensure_topics(
        kafka,
        {
            kafka.input_topic: partitions,
            kafka.output_topic: partitions,
            kafka.dead_letter_topic: partitions,
        },
    )
    schema_id = None
    if job.task.input.framing == "confluent" and job.task.input.registry_url:
        registry = RegistryClient(job.task.input.registry_url)
        schema_id = registry.register(topic_subject(kafka.input_topic), job.input_schema)
    client = producer(kafka)
    sent = 0
    try:
        with data.open(encoding="utf-8") as lines:
            for line in lines:
                if limit is not None and sent >= limit:
                    break
                if not line.strip():
                    continue
                record = json.loads(line)
                if job.task.input.format == "json":
                    value = json.dumps(record).encode()
                else:
                    value = framing.encode(
                        record, job.input_schema, job.task.input.framing, schema_id
                    )
                key = str(record[key_field]).encode() if key_field else None
                client.send(kafka.input_topic, key=key, value=value)
                sent += 1
        client.flush(timeout=60)
    finally:
        client.close(timeout=10)
    return sent


def topic_records(job: Job, dead_letters: bool) -> Iterator[dict[str, Any]]:
    """Every record of the output (or dead-letter) topic, decoded, with its coordinates."""
    kafka = job.task.kafka
    topic = kafka.dead_letter_topic if dead_letters else kafka.output_topic
    output = job.task.output
    by_id = registry_lookup(output.framing, output.registry_url)
    writers = job.output_writers
    for range_ in snapshot_ranges(kafka, topic, None):
        for record in read_range(kafka, range_):
            assert record.value is not None
            if dead_letters:
                value = read_dead_letter(record.value)
            else:
                value, _ = framing.decode(
                    record.value, job.output_schema, output.framing, writers, by_id
                )
            headers = {k: (v or b"").decode(errors="replace") for k, v in record.headers}
            yield {
                "partition": record.partition,
                "offset": record.offset,
                "timestamp_ms": record.timestamp_ms,
                "headers": headers,
                "value": value,
            }
