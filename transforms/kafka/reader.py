"""Read Kafka in ranges: snapshot ``[committed, end)`` per partition, then read each range.

Drain mode reads exactly the snapshot. The range reader only needs a start and an end; a
follow (unbounded) mode can hand it ranges that grow, without changing how it reads.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from kafka import TopicPartition

from transforms.core.offsets import PartitionRange
from transforms.core.records import KafkaRecord
from transforms.core.task import KafkaSpec
from transforms.kafka.client import consumer

__all__ = ["read_range", "snapshot_ranges"]


def snapshot_ranges(
    spec: KafkaSpec, topic: str, group: str | None, timeout_s: float = 30.0
) -> list[PartitionRange]:
    """Each partition's committed offset (or earliest; always earliest without a group)
    up to its current end."""
    client = consumer(spec, group)
    try:
        partitions = _partitions(client, topic, timeout_s)
        tps = [TopicPartition(topic, p) for p in partitions]
        beginning = client.beginning_offsets(tps)
        end = client.end_offsets(tps)
        ranges = []
        for tp in tps:
            committed = client.committed(tp) if group else None
            start = max(committed if committed is not None else 0, beginning[tp])
            ranges.append(PartitionRange(topic, tp.partition, start, end[tp]))
        return ranges
    finally:
        client.close(autocommit=False)


def _partitions(client: object, topic: str, timeout_s: float) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while True:
        found = client.partitions_for_topic(topic)  # type: ignore[attr-defined]
        if found:
            return sorted(found)
        if time.monotonic() > deadline:
            raise RuntimeError(f"topic {topic!r} does not exist or has no partitions")
        time.sleep(0.2)


def read_range(
    spec: KafkaSpec, range_: PartitionRange, idle_timeout_s: float = 60.0
) -> Iterator[KafkaRecord]:
    """Yield every record of ``range_`` in offset order; fail if the broker stops answering."""
    if range_.empty:
        return
    client = consumer(spec, None, max_poll_records=500)
    tp = TopicPartition(range_.topic, range_.partition)
    try:
        client.assign([tp])
        client.seek(tp, range_.start)
        last_progress = time.monotonic()
        while client.position(tp) < range_.end:
            batch = client.poll(timeout_ms=500).get(tp, [])
            if batch:
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > idle_timeout_s:
                raise TimeoutError(
                    f"no progress reading {range_.topic}[{range_.partition}] "
                    f"at {client.position(tp)} of {range_.end} for {idle_timeout_s:.0f}s"
                )
            for message in batch:
                if message.offset >= range_.end:
                    return
                yield KafkaRecord(
                    topic=message.topic,
                    partition=message.partition,
                    offset=message.offset,
                    timestamp_ms=message.timestamp,
                    key=message.key,
                    value=message.value,
                    headers=tuple((k, v) for k, v in (message.headers or [])),
                )
    finally:
        client.close(autocommit=False)
