"""``llm-enrich feedback`` (and ``export``'s corrections): read the feedback topic, join
each event with the output it names, fold into bins.

    feedback topic --(drain: up to the end offsets at start; follow: until a signal)-->
      checked_events: decode (JSON or llm_enrich.Feedback), check corrections   [core]
      Collector: events wait in a chunk (at most ``chunk_size``), keyed by what they name;
        a full chunk (or, following, every ``flush_s``) is joined: the output topic is
        read once, partition by partition, and only the outputs the chunk names are kept;
        each event is folded into the aggregate's bins and dropped              [core]
      -> FeedbackResult (typed), JSON, HTML, drift

Memory holds one chunk of events and the bins, never the whole topic; the price is one
read of the output topic per chunk. No consumer group: every run reads the whole feedback
topic and reports on all of it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from kafka import TopicPartition

from schemas import feedback_schema
from transforms.core.config.feedback import FeedbackSpec
from transforms.core.eval.kinds import field_kinds
from transforms.core.feedback.aggregate import Aggregate, Group, OutputFacts
from transforms.core.feedback.events import (
    BadEvent,
    FeedbackEvent,
    Ref,
    check_corrections,
    decode_event,
)
from transforms.core.feedback.result import FeedbackResult, Thresholds, build_result
from transforms.core.job import Job
from transforms.core.records import KafkaRecord
from transforms.kafka.client import consumer
from transforms.kafka.reader import read_range, snapshot_ranges
from transforms.registry.client import registry_lookup

__all__ = [
    "CHUNK_SIZE",
    "Collector",
    "checked_events",
    "drain_records",
    "follow_records",
    "join_outputs",
    "thresholds",
]

log = logging.getLogger("llm_enrich")

CHUNK_SIZE = 50_000


def spec_of(job: Job) -> FeedbackSpec:
    spec = job.task.feedback
    if spec is None:
        raise ValueError(f"{job.task.source_path}: the task has no feedback section")
    return spec


def thresholds(job: Job) -> Thresholds:
    spec = spec_of(job)
    if spec.min_scores is not None:
        return Thresholds(dict(spec.min_scores), "feedback", spec.min_events)
    scores = dict(job.task.eval.min_scores)
    return Thresholds(scores, "eval" if scores else "none", spec.min_events)


def drain_records(job: Job) -> Iterator[KafkaRecord]:
    """Every record of the feedback topic up to the end offsets snapshotted now."""
    kafka = job.task.kafka
    for range_ in snapshot_ranges(kafka, spec_of(job).topic, None):
        yield from read_range(kafka, range_)


def follow_records(
    job: Job, stop: Callable[[], bool], tick_s: float = 1.0
) -> Iterator[KafkaRecord | None]:
    """The feedback topic from its start, without end, until ``stop()``; ``None`` after
    each poll, so the caller can flush on time. Partitions added later are found."""
    kafka, topic = job.task.kafka, spec_of(job).topic
    client = consumer(kafka, None, max_poll_records=500)
    assigned: set[int] = set()
    last_look = 0.0
    try:
        while not stop():
            if time.monotonic() - last_look > 10:
                last_look = time.monotonic()
                new = (client.partitions_for_topic(topic) or set()) - assigned
                if new:
                    kept = {
                        tp: client.position(tp)
                        for tp in (TopicPartition(topic, p) for p in assigned)
                    }
                    assigned |= new
                    client.assign([TopicPartition(topic, p) for p in sorted(assigned)])
                    for tp, position in kept.items():
                        client.seek(tp, position)
                    client.seek_to_beginning(*[TopicPartition(topic, p) for p in sorted(new)])
            polled = client.poll(timeout_ms=int(tick_s * 1000)) if assigned else {}
            if not assigned:
                time.sleep(tick_s)
            for messages in polled.values():
                for m in messages:
                    yield KafkaRecord(
                        m.topic, m.partition, m.offset, m.timestamp, m.key, m.value, ()
                    )
            yield None
    finally:
        client.close(autocommit=False)


def checked_events(
    job: Job, records: Iterable[KafkaRecord | None]
) -> Iterator[FeedbackEvent | BadEvent | None]:
    """Each record as a checked event (or a bad one, with its reason); ``None`` passes."""
    spec = spec_of(job)
    schema = feedback_schema()
    by_id = registry_lookup(spec.framing, spec.registry_url) if spec.format == "avro" else None
    generated, copied = job.shape.avro, job.shape.copied_fields
    for record in records:
        if record is None:
            yield None
            continue
        event = decode_event(
            record.value,
            record.timestamp_ms,
            format=spec.format,
            schema=schema,
            framing=spec.framing,
            by_id=by_id,
            keyed=spec.key is not None,
        )
        if isinstance(event, FeedbackEvent):
            event = check_corrections(event, generated, copied) or event
        yield event


def _group(headers: Mapping[str, str]) -> Group:
    return Group(
        headers.get("llm_enrich.provider", "?"),
        headers.get("llm_enrich.model", "?"),
        headers.get("llm_enrich.prompt_hash", "?"),
    )


def join_outputs(job: Job, wanted: Iterable[Ref]) -> dict[Ref, Any]:
    """The outputs named (by coordinates or key): ``{ref: OutputRecord}``, one read of the
    output topic. A duplicate output (at-least-once) keeps the last one read."""
    from pipelines.topics import UNDECODABLE, output_records

    wanted = set(wanted)
    key = spec_of(job).key
    found: dict[Ref, Any] = {}
    if not wanted:
        return found
    for record in output_records(job):
        if UNDECODABLE in record.headers:
            continue
        source = record.source()
        if source is not None and source in wanted:
            found[source] = record
        if key is not None and key in record.value:
            name = str(record.value[key])
            if name in wanted:
                found[name] = record
    return found


@dataclass
class Collector:
    """Events wait in a chunk keyed by what they name; a flush joins the chunk with the
    output topic and folds it into the aggregate. Memory: one chunk, plus the bins."""

    job: Job
    chunk_size: int = CHUNK_SIZE
    aggregate: Aggregate = field(init=False)
    pending: dict[Ref, list[FeedbackEvent]] = field(default_factory=dict)
    waiting: int = 0
    chunks: int = 0
    peak_waiting: int = 0

    def __post_init__(self) -> None:
        self.aggregate = Aggregate(
            spec_of(self.job).window_s,
            field_kinds(self.job.shape.avro),
            dict(self.job.task.eval.tolerance),
        )

    def add(self, event: FeedbackEvent | BadEvent) -> None:
        self.aggregate.read += 1
        if isinstance(event, BadEvent):
            self.aggregate.bad[event.reason] += 1
            return
        self.pending.setdefault(event.ref, []).append(event)
        self.waiting += 1
        self.peak_waiting = max(self.peak_waiting, self.waiting)
        if self.waiting >= self.chunk_size:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        outputs = join_outputs(self.job, self.pending)
        for ref, events in self.pending.items():
            record = outputs.get(ref)
            if record is None:
                self.aggregate.bad["unknown_output"] += len(events)
                continue
            facts = OutputFacts(_group(record.headers), record.value)
            for event in events:
                self.aggregate.fold(event, facts)
        self.pending, self.waiting = {}, 0
        self.chunks += 1

    def result(self, follow_alerts: int = 0) -> FeedbackResult:
        job = self.job
        return build_result(
            self.aggregate,
            task=job.name,
            output_schema=job.output_schema.identity,
            topic=spec_of(job).topic,
            thresholds=thresholds(job),
            follow_alerts=follow_alerts,
            join={
                "chunk_size": self.chunk_size,
                "chunks": self.chunks,
                "peak_events_held": self.peak_waiting,
                "bins": len(self.aggregate.bins),
            },
        )
