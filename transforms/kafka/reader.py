"""Read Kafka partitions: snapshot where each starts (and, draining, ends), then fetch.

``PartitionReader`` keeps one consumer per partition per process, so a reader that
checkpoints every second (Beam's ``defer_remainder``) does not reconnect every second.
``read_range`` is the simple bounded loop the CLI uses to show what a topic holds;
``read_at`` reads back the records at given coordinates (export's inputs).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Set
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from transforms.core.config.task import KafkaSpec
from transforms.core.records import KafkaRecord
from transforms.core.run.offsets import PartitionRange
from transforms.kafka.client import consumer

__all__ = ["PartitionReader", "partition_reader", "read_at", "read_range", "snapshot_ranges"]


def snapshot_ranges(
    spec: KafkaSpec,
    topic: str,
    group: str | None,
    *,
    follow: bool = False,
    known: frozenset[int] = frozenset(),
    timeout_s: float = 30.0,
) -> list[PartitionRange]:
    """Per partition (except ``known`` ones): the group's committed offset (or the
    earliest; always the earliest without a group) and, unless following, the current end.
    """
    client = consumer(spec, group)
    try:
        partitions = _partitions(client, topic, timeout_s)
        tps = [TopicPartition(topic, p) for p in partitions if p not in known]
        if not tps:
            return []
        beginning = client.beginning_offsets(tps)
        end = client.end_offsets(tps)
        ranges = []
        for tp in tps:
            committed = client.committed(tp) if group else None
            start = max(committed if committed is not None else 0, beginning[tp])
            expired = max(0, beginning[tp] - committed) if committed is not None else 0
            stop = None if follow else end[tp]
            ranges.append(PartitionRange(topic, tp.partition, start, stop, expired))
        return ranges
    finally:
        client.close(autocommit=False)


def _partitions(client: KafkaConsumer, topic: str, timeout_s: float) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while True:
        found = client.partitions_for_topic(topic)
        if found:
            return sorted(found)
        if time.monotonic() > deadline:
            raise RuntimeError(f"topic {topic!r} does not exist or has no partitions")
        time.sleep(0.2)


def _record(message: Any, span_start: int) -> KafkaRecord:
    return KafkaRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        timestamp_ms=message.timestamp,
        key=message.key,
        value=message.value,
        headers=tuple((k, v) for k, v in (message.headers or [])),
        span_start=span_start,
    )


class PartitionReader:
    """One consumer assigned to one partition. ``fetch(position)`` returns the records
    from ``position`` on, each with its span; it seeks only when asked for a position
    other than where the last fetch left off (which may lie past the last record's
    offset, over transaction markers)."""

    def __init__(self, spec: KafkaSpec, topic: str, partition: int) -> None:
        self._tp = TopicPartition(topic, partition)
        self._client = consumer(spec, None, max_poll_records=500)
        self._client.assign([self._tp])
        self._next: int | None = None  # the position the last fetch was asked to end at
        self.lock = threading.Lock()
        self._last_progress = time.monotonic()  # when a fetch last returned records
        self._last_fetch = 0.0

    def position(self) -> int:
        return int(self._client.position(self._tp))

    def reached(self, position: int) -> int:
        """How far reading from ``position`` got: the consumer's own position when it went
        on from there (past transaction markers, say), else ``position`` itself."""
        return max(position, self.position()) if position == self._next else position

    def starved_s(self) -> float:
        """How long fetches have been coming back empty, while asked for more."""
        return time.monotonic() - self._last_progress

    def fetch(self, position: int, timeout_s: float, max_records: int = 500) -> list[KafkaRecord]:
        now = time.monotonic()
        if now - self._last_fetch > 5.0:  # not asked for a while (waiting on others): not starved
            self._last_progress = now
        self._last_fetch = now
        if position != self._next:
            self._client.seek(self._tp, position)
        polled = self._client.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        batch = polled.get(self._tp, [])
        records, span_start = [], position
        for message in batch:
            if message.offset < span_start:  # a stale fetch from before a seek
                continue
            records.append(_record(message, span_start))
            span_start = message.offset + 1
        self._next = span_start if records else position
        if records:
            self._last_progress = time.monotonic()
        return records

    def close(self) -> None:
        self._client.close(autocommit=False)


_readers: dict[tuple[str, str, int], PartitionReader] = {}  # (spec, topic, partition)
_readers_lock = threading.Lock()


def partition_reader(spec: KafkaSpec, topic: str, partition: int) -> PartitionReader:
    """This process's reader for a partition (created on first use; another client
    configuration gets another reader)."""
    key = (spec.model_dump_json(), topic, partition)
    with _readers_lock:
        reader = _readers.get(key)
        if reader is None:
            reader = _readers[key] = PartitionReader(spec, topic, partition)
        return reader


def read_range(
    spec: KafkaSpec, range_: PartitionRange, idle_timeout_s: float = 60.0
) -> Iterator[KafkaRecord]:
    """Yield every record of a bounded ``range_`` in offset order; fail if the broker stops
    answering."""
    if range_.empty or range_.end is None:
        return
    reader = PartitionReader(spec, range_.topic, range_.partition)
    try:
        position, last_progress = range_.start, time.monotonic()
        while position < range_.end:
            records = reader.fetch(position, timeout_s=0.5)
            if records:
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > idle_timeout_s:
                raise TimeoutError(
                    f"no progress reading {range_.topic}[{range_.partition}] "
                    f"at {position} of {range_.end} for {idle_timeout_s:.0f}s"
                )
            for record in records:
                if record.offset >= range_.end:
                    return
                yield record
            position = max(position, reader.position())
    finally:
        reader.close()


def read_at(
    spec: KafkaSpec, wanted: Set[tuple[str, int, int]], idle_timeout_s: float = 10.0
) -> Iterator[KafkaRecord]:
    """The records at the ``wanted`` (topic, partition, offset) coordinates that are still
    there, reading each partition once, from the lowest offset wanted to the highest."""
    by_partition: dict[tuple[str, int], list[int]] = defaultdict(list)
    for topic, partition, offset in wanted:
        by_partition[(topic, partition)].append(offset)
    for (topic, partition), offsets in sorted(by_partition.items()):
        range_ = PartitionRange(topic, partition, min(offsets), max(offsets) + 1)
        for record in read_range(spec, range_, idle_timeout_s=idle_timeout_s):
            if (topic, partition, record.offset) in wanted:
                yield record
