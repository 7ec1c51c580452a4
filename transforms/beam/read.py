"""Drain a topic: plan partition ranges on a worker, then read each range in parallel."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import apache_beam as beam

from transforms.beam.metrics import counter
from transforms.core.offsets import PartitionRange, limit_ranges
from transforms.core.task import KafkaSpec
from transforms.kafka.reader import read_range, snapshot_ranges

READ_OFFSETS = "read_offsets"


class PlanRanges(beam.DoFn):
    """Snapshot ``[committed, end)`` of every partition of a topic, for one consumer group."""

    def __init__(self, spec: KafkaSpec, group: str | None, limit: int | None = None) -> None:
        self._spec = spec
        self._group = group
        self._limit = limit

    def process(self, topic: str) -> Iterator[PartitionRange]:
        yield from limit_ranges(snapshot_ranges(self._spec, topic, self._group), self._limit)


class ReadRanges(beam.DoFn):
    """Read each range; also report every offset read, for the commit stage."""

    def __init__(self, spec: KafkaSpec, counter_name: str) -> None:
        self._spec = spec
        self._read = counter(counter_name)

    def process(self, range_: PartitionRange) -> Iterator[Any]:
        for record in read_range(self._spec, range_):
            self._read.inc()
            yield record
            yield beam.pvalue.TaggedOutput(
                READ_OFFSETS, ((record.topic, record.partition), record.offset)
            )


class DrainTopic(beam.PTransform[Any, Any]):
    """Outputs: ``ranges`` (PartitionRange), ``records`` (KafkaRecord), ``read_offsets``."""

    def __init__(
        self,
        spec: KafkaSpec,
        topic: str,
        group: str | None,
        limit: int | None = None,
        counter_name: str = "read",
    ) -> None:
        super().__init__()
        self._spec, self._topic, self._group, self._limit = spec, topic, group, limit
        self._counter_name = counter_name

    def expand(self, pbegin: Any) -> dict[str, Any]:
        ranges = (
            pbegin
            | "Topic" >> beam.Create([self._topic])
            | "PlanRanges" >> beam.ParDo(PlanRanges(self._spec, self._group, self._limit))
        )
        read = (
            ranges
            | "SpreadRanges" >> beam.Reshuffle()
            | "ReadRanges"
            >> beam.ParDo(ReadRanges(self._spec, self._counter_name)).with_outputs(
                READ_OFFSETS, main="records"
            )
        )
        return {"ranges": ranges, "records": read.records, "read_offsets": read[READ_OFFSETS]}
