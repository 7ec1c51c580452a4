"""Small Kafka chores for the CLI: load sample data, and show what a topic holds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from transforms.core.envelope import header_values, read_dead_letter
from transforms.core.export.training import OutputRecord
from transforms.core.formats import framing
from transforms.core.formats.framing import SchemaById
from transforms.core.job import Job
from transforms.kafka.admin import ensure_topics
from transforms.kafka.client import producer
from transforms.kafka.reader import read_range, snapshot_ranges
from transforms.registry.client import RegistryClient, registry_lookup, topic_subject

__all__ = [
    "UNDECODABLE",
    "output_records",
    "produce_feedback",
    "produce_jsonl",
    "topic_records",
]

UNDECODABLE = "llm_enrich.export.undecodable"  # marks an output this task cannot read


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


def topic_records(job: Job, *, dead_letters: bool) -> Iterator[dict[str, Any]]:
    """Every record of the output (or dead-letter) topic, decoded, with its coordinates."""
    kafka = job.task.kafka
    topic = kafka.dead_letter_topic if dead_letters else kafka.output_topic
    output = job.task.output
    by_id = registry_lookup(output.framing, output.registry_url)
    for range_ in snapshot_ranges(kafka, topic, None):
        for record in read_range(kafka, range_):
            assert record.value is not None
            if dead_letters:
                value = read_dead_letter(record.value)
            else:
                value = _output_value(job, record.value, by_id)
            yield {
                "partition": record.partition,
                "offset": record.offset,
                "timestamp_ms": record.timestamp_ms,
                "headers": header_values(record.headers),
                "value": value,
            }


def output_records(job: Job) -> Iterator[OutputRecord]:
    """Every record of the output topic, decoded (up to the end offsets at the start); one
    this task cannot read carries the ``UNDECODABLE`` header and no value."""
    kafka, output = job.task.kafka, job.task.output
    by_id = registry_lookup(output.framing, output.registry_url)
    for range_ in snapshot_ranges(kafka, kafka.output_topic, None):
        for record in read_range(kafka, range_):
            headers = header_values(record.headers)
            try:
                value = _output_value(job, record.value or b"", by_id)
            except Exception:  # not ours, or a schema this task cannot read: counted
                headers, value = {UNDECODABLE: "1"}, {}
            yield OutputRecord(record.partition, record.offset, record.timestamp_ms, headers, value)


def _output_value(job: Job, value: bytes, by_id: SchemaById | None) -> dict[str, Any]:
    """An output record's value, in the output topic's framing (raises when it is not)."""
    fields, _ = framing.decode(
        value, job.output_schema, job.task.output.framing, job.output_writers, by_id
    )
    return fields


def produce_feedback(job: Job, data: Path, partitions: int, limit: int | None) -> int:
    """Write JSON lines of feedback events to the task's feedback topic, in its format:
    JSON as given, or Avro ``llm_enrich.Feedback`` (corrections become JSON text, an ISO
    ``event_time`` milliseconds). Raises ValueError naming the line it cannot encode."""
    from schemas import feedback_schema
    from transforms.core.feedback.events import FeedbackEvent, event_from_mapping

    spec = job.task.feedback
    if spec is None:
        raise ValueError(f"{job.task.source_path}: the task has no feedback section")
    kafka = job.task.kafka
    ensure_topics(kafka, {spec.topic: partitions})
    schema, schema_id = feedback_schema(), None
    if spec.format == "avro" and spec.framing == "confluent" and spec.registry_url:
        schema_id = RegistryClient(spec.registry_url).register(topic_subject(spec.topic), schema)
    client = producer(kafka)
    sent = 0
    try:
        with data.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if limit is not None and sent >= limit:
                    break
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                try:
                    raw = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{data}:{number}: not valid JSON ({exc.msg})") from None
                if spec.format == "json":
                    value = json.dumps(raw, ensure_ascii=False).encode()
                else:
                    event = event_from_mapping(raw, 0, keyed=True)
                    if not isinstance(event, FeedbackEvent):
                        raise ValueError(f"{data}:{number}: {event.reason}: {event.detail}")
                    datum = {
                        **raw,
                        "corrections": {
                            k: json.dumps(v) for k, v in (raw.get("corrections") or {}).items()
                        },
                        "event_time": event.event_time_ms if raw.get("event_time") else None,
                    }
                    value = framing.encode(datum, schema, spec.framing, schema_id)
                key = raw.get("key") if isinstance(raw, dict) else None
                client.send(spec.topic, key=str(key).encode() if key else None, value=value)
                sent += 1
        client.flush(timeout=60)
    finally:
        client.close(timeout=10)
    return sent
