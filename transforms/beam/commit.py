"""Commit offsets after the writes: per partition, up to the first unsettled offset."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam

from transforms.beam.metrics import counter
from transforms.core.offsets import PartitionRange, commit_point
from transforms.core.task import KafkaSpec
from transforms.kafka.committer import commit_offsets


class CommitPartition(beam.DoFn):
    def __init__(self, spec: KafkaSpec, group: str) -> None:
        self._spec, self._group = spec, group
        self._unsettled = counter("unsettled")

    def process(self, element: tuple[tuple[str, int], dict[str, Iterable[Any]]]) -> Iterator[Any]:
        key, grouped = element
        for range_ in grouped["range"]:
            read = list(grouped["read"])
            settled = set(grouped["settled"])
            offset = commit_point(range_, read, settled)
            self._unsettled.inc(sum(1 for o in read if o not in settled))
            if offset > range_.start:
                commit_offsets(self._spec, self._group, {key: offset})
            yield {
                "topic": key[0],
                "partition": key[1],
                "start": range_.start,
                "end": range_.end,
                "committed": offset,
            }


class CommitAfterWrites(beam.PTransform[Any, Any]):
    """Input: a dict of ``ranges``, ``read_offsets`` and ``settled`` PCollections."""

    def __init__(self, spec: KafkaSpec, group: str) -> None:
        super().__init__()
        self._spec, self._group = spec, group

    def expand(self, inputs: dict[str, Any]) -> Any:
        keyed_ranges = inputs["ranges"] | "KeyRanges" >> beam.Map(_keyed)
        return (
            {"range": keyed_ranges, "read": inputs["read_offsets"], "settled": inputs["settled"]}
            | "JoinByPartition" >> beam.CoGroupByKey()
            | "Commit" >> beam.ParDo(CommitPartition(self._spec, self._group))
        )


def _keyed(range_: PartitionRange) -> tuple[tuple[str, int], PartitionRange]:
    return ((range_.topic, range_.partition), range_)
