"""DoFns for replay: pick the dead letters to re-enrich, find sources already enriched."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import apache_beam as beam

from transforms.beam.metrics import counter
from transforms.beam.run_handle import RunHandle
from transforms.core import counters
from transforms.core.envelope import output_source
from transforms.core.records import KafkaRecord
from transforms.core.run.replay import ReplayFilter, decide, one_per_source

SKIPPED = "skipped"


def source_coordinates(
    output: KafkaRecord, run: RunHandle
) -> Iterator[tuple[tuple[str, int, int], bool]]:
    """The input coordinates an output record was enriched from (its source headers)."""
    source = output_source(output.headers)
    if source is None:
        counter(run, counters.REPLAY_OUTPUTS_WITHOUT_SOURCE).inc()
        return
    yield source, True


class SelectForReplay(beam.DoFn):
    """Main output: original records to re-enrich. ``skipped``: settled coordinates of dead
    letters left alone, counted by reason (``replay.skipped.<reason>``)."""

    def __init__(self, selection: ReplayFilter, run: RunHandle) -> None:
        self._selection, self._run = selection, run
        self._selected = counter(run, counters.REPLAY_SELECTED)

    def process(
        self, dead_letter: KafkaRecord, enriched: Mapping[tuple[str, int, int], bool]
    ) -> Iterator[Any]:
        decision = decide(dead_letter, self._selection, enriched)
        if decision.record is not None:
            self._selected.inc()
            yield decision.record
            return
        counter(self._run, counters.replay_skipped(str(decision.skip))).inc()
        yield beam.pvalue.TaggedOutput(SKIPPED, dead_letter.settled_coordinates)


def by_source(record: KafkaRecord) -> tuple[tuple[str, int, int], KafkaRecord]:
    return ((record.topic, record.partition, record.offset), record)


class OnePerSource(beam.DoFn):
    """Main output: one record per original. ``skipped``: the other dead letters for it."""

    def __init__(self, run: RunHandle) -> None:
        self._duplicate = counter(run, counters.replay_skipped("duplicate"))

    def process(self, element: tuple[Any, Iterable[KafkaRecord]]) -> Iterator[Any]:
        keep, duplicates = one_per_source(element[1])
        yield keep
        for duplicate in duplicates:
            self._duplicate.inc()
            yield beam.pvalue.TaggedOutput(SKIPPED, duplicate.settled_coordinates)
