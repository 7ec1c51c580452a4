"""Read a topic as a splittable DoFn: one restriction per partition, bounded or not.

    drain   Create(topic) -> PlanRanges (snapshot [committed, end) per partition)
    follow  WatchPartitions (a new range [committed, inf) for every partition, also for
            partitions added while running)
    both    -> ReadPartitions: fetch for up to a second or ``slice_records`` records,
               then checkpoint (``defer_remainder``): records flow downstream in small
               bundles and commits follow while a partition is still being read (Prism
               also schedules the stateful commit step only once a reader checkpointed)

A reader stops claiming when a stop is requested (the run's ``RunControl``,
``transforms.beam.run_handle``); what it did not claim stays uncommitted. Kafka's own
ordering holds within a restriction: one restriction per partition, never split except at
checkpoints.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Generator, Iterator
from typing import Any

import apache_beam as beam
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.transforms.core import RestrictionProvider
from apache_beam.utils.timestamp import Duration

from transforms.beam.metrics import broker_failed, counter, halt
from transforms.beam.run_handle import RunHandle
from transforms.beam.settle import SettleHandle, Settlement
from transforms.core import counters
from transforms.core.config.task import KafkaSpec
from transforms.core.run.offsets import PartitionRange, limit_ranges
from transforms.core.run.outage import Outage
from transforms.kafka.client import broker_away
from transforms.kafka.commit_loop import KAFKA_OUTAGE_S
from transforms.kafka.reader import partition_reader, snapshot_ranges

__all__ = ["ReadTopic"]

UNBOUNDED = sys.maxsize
GAPS = "gaps"  # spans with no record (transaction markers): settled as soon as read
SLICE_S = 1.0  # read this long, then checkpoint: downstream gets records as they come
POLL_S = 0.2
DISCOVERY_INTERVAL_S = 10.0
PAUSE_S = 1.0
BACKOFF_S = 0.05  # nothing claimed in a slice (backlog full, or no data): wait a bit
BACKLOG_WAIT_S = 0.01  # enrichment is behind: look at the backlog again this often
IDLE_S = 60.0  # draining, no record for this long: the broker is gone


class _CheckpointOnlyTracker(OffsetRestrictionTracker):
    """A partition is read in order by one reader: no dynamic splits, only checkpoints."""

    def try_split(self, fraction_of_remainder: float) -> Any:
        if fraction_of_remainder != 0:
            return None
        return super().try_split(fraction_of_remainder)


class _Ranges(RestrictionProvider):
    def initial_restriction(self, element: PartitionRange) -> OffsetRange:
        end = UNBOUNDED if element.end is None else element.end
        return OffsetRange(element.start, max(element.start, end))

    def create_tracker(self, restriction: OffsetRange) -> OffsetRestrictionTracker:
        return _CheckpointOnlyTracker(restriction)

    def restriction_size(self, element: Any, restriction: OffsetRange) -> int:
        return int(min(restriction.size(), 1 << 30))

    def split(self, element: Any, restriction: OffsetRange) -> Iterator[OffsetRange]:
        yield restriction

    def truncate(self, element: Any, restriction: OffsetRange) -> OffsetRange | None:
        """A runner's drain (Dataflow): stop following; finish a bounded range."""
        return None if restriction.stop == UNBOUNDED else restriction


class ReadPartitions(beam.DoFn):
    """PartitionRange in, KafkaRecords out; ``gaps``: ``Settled`` spans the consumer
    skipped with no record in them (transaction markers at the end of what was read).
    ``reader_run``: tell the run's ``Readers`` (``run``) which readers of this run are
    live (the processing steps are fused after the reader, in this process).
    ``settle``: begin each partition and settle gaps in the run's ``Settlement`` instead
    of emitting them (``transforms.beam.settle``)."""

    def __init__(
        self,
        spec: KafkaSpec,
        run: RunHandle,
        counter_name: str,
        slice_records: int,
        max_backlog: int | None,
        reader_run: str | None = None,
        settle: SettleHandle | None = None,
    ) -> None:
        self._spec, self._slice_records, self._max_backlog = spec, slice_records, max_backlog
        self._read = counter(run, counter_name)
        self._run, self._reader_run, self._settle = run, reader_run, settle

    def setup(self) -> None:
        self._worker = self._run.acquire()
        self._control = self._worker.control
        self._settlement: Settlement | None = self._settle.acquire() if self._settle else None
        self._outage = Outage(KAFKA_OUTAGE_S)

    def process(
        self,
        part: PartitionRange,
        tracker: Any = beam.DoFn.RestrictionParam(_Ranges()),
        watermark: Any = beam.DoFn.WatermarkEstimatorParam(
            ManualWatermarkEstimator.default_provider()
        ),
    ) -> Iterator[Any]:
        run = self._reader_run
        if run is None:
            yield from self._read_slice(part, tracker)
            return
        readers = self._worker.readers
        readers.reading(run, part.key)  # for the steps fused after the reader
        deferred = False
        try:
            deferred = yield from self._read_slice(part, tracker)
        finally:
            if not deferred:  # done, stopped, or checkpointed by the runner (conservative)
                readers.ended(run, part.key)

    def _read_slice(self, part: PartitionRange, tracker: Any) -> Generator[Any, None, bool]:
        """Yields what was read; returns True when the rest was deferred (read on later)."""
        restriction = tracker.current_restriction()
        reader = partition_reader(self._spec, part.topic, part.partition)
        if self._settlement is not None:
            self._settlement.begin(part.key, part.start, part.end)
        # ``position`` is the end of the chain of spans handed downstream: every offset
        # below it was claimed, or skipped by the consumer (markers, compaction) and
        # covered by the next record's span.
        position, slice_ends = restriction.start, time.monotonic() + SLICE_S
        claimed, control = 0, self._control
        while True:
            if control.stop_requested():
                tracker.try_claim(restriction.stop)  # the rest stays unread and uncommitted
                return False
            if control.paused():  # every provider is down: wait, do not pile up
                tracker.defer_remainder(Duration(seconds=PAUSE_S))
                return True
            room = self._slice_records - claimed
            if room <= 0:
                break
            if self._max_backlog is not None:  # enrichment is behind: let it catch up
                room = min(room, self._max_backlog - control.backlog())
                if room <= 0:
                    if claimed or time.monotonic() > slice_ends:
                        break  # end the bundle: what it wrote is settled, and committed
                    time.sleep(BACKLOG_WAIT_S)  # nothing read yet: wait for answers here,
                    continue  # an empty bundle costs more
            try:
                with reader.lock:  # never held across a yield
                    records = reader.fetch(position, timeout_s=POLL_S, max_records=room)
                    reached = reader.reached(position if not records else records[-1].offset + 1)
            except Exception as exc:
                if not broker_away(exc):
                    raise
                # the broker is away (a restart?): read again soon
                where = f"read {part.topic}[{part.partition}]"
                if broker_failed(self._run, self._outage, where, exc):
                    tracker.try_claim(restriction.stop)
                    return False
                records, reached = [], position
                time.sleep(POLL_S)
            else:
                self._outage.recovered()
            if not records and part.end is not None and reader.starved_s() > IDLE_S:
                halt(
                    self._run,
                    f"systemic: no progress reading {part.topic}[{part.partition}] at "
                    f"{position} of {part.end} for {IDLE_S:.0f} s: is the broker up?",
                )
                tracker.try_claim(restriction.stop)
                return False
            for record in records:
                if not tracker.try_claim(record.offset):
                    return False  # past a bounded range's end, or the runner checkpointed
                self._read.inc()
                claimed += 1
                position = record.offset + 1
                if self._max_backlog is not None:
                    control.read_ahead(1)
                yield record
            if reached > position:  # consumed without a record (markers): settled already
                if not tracker.try_claim(reached - 1):  # claimed: never read (and sent) again
                    return False
                gap = (part.key, (position, reached - 1))
                if self._settlement is not None:
                    self._settlement.settle(gap)
                else:
                    yield beam.pvalue.TaggedOutput(GAPS, gap)
                position = reached
            if part.end is not None and position >= part.end:
                tracker.try_claim(restriction.stop)  # drained
                return False
            if time.monotonic() > slice_ends:
                break
        tracker.defer_remainder(Duration(seconds=BACKOFF_S) if claimed == 0 else None)
        return True


class PlanRanges(beam.DoFn):
    """Drain mode: snapshot ``[committed, end)`` of every partition of a topic."""

    def __init__(
        self,
        spec: KafkaSpec,
        group: str | None,
        run: RunHandle,
        limit: int | None = None,
        counter_name: str = "",
    ) -> None:
        self._spec, self._group, self._limit = spec, group, limit
        # the progress line's ETA
        self._planned = counter(run, counters.planned(counter_name or counters.READ))
        self._expired = counter(run, counters.EXPIRED)

    def process(self, topic: str) -> Iterator[PartitionRange]:
        for range_ in limit_ranges(snapshot_ranges(self._spec, topic, self._group), self._limit):
            self._expired.inc(range_.expired)
            self._planned.inc(max(0, (range_.end or 0) - range_.start))
            yield range_


class _Rounds(RestrictionProvider):
    """Positions are partition counts: a round that finds ``n`` partitions claims ``n``,
    so a resumed restriction knows ``start - 1`` partitions were already handed out."""

    def initial_restriction(self, element: str) -> OffsetRange:
        return OffsetRange(0, UNBOUNDED)

    def create_tracker(self, restriction: OffsetRange) -> OffsetRestrictionTracker:
        return _CheckpointOnlyTracker(restriction)

    def restriction_size(self, element: Any, restriction: OffsetRange) -> int:
        return 1

    def truncate(self, element: Any, restriction: OffsetRange) -> None:
        return None


class WatchPartitions(beam.DoFn):
    """Follow mode: a range from the committed offset for every partition, including
    partitions added while the job runs (checked every ``DISCOVERY_INTERVAL_S``)."""

    def __init__(self, spec: KafkaSpec, group: str | None, run: RunHandle) -> None:
        self._spec, self._group, self._run = spec, group, run
        self._outage = Outage(KAFKA_OUTAGE_S)
        self._expired = counter(run, counters.EXPIRED)

    def setup(self) -> None:
        self._control = self._run.acquire().control

    def process(
        self, topic: str, tracker: Any = beam.DoFn.RestrictionParam(_Rounds())
    ) -> Iterator[Any]:
        restriction = tracker.current_restriction()
        if self._control.stop_requested():
            tracker.try_claim(restriction.stop)
            return
        known = max(0, restriction.start - 1)
        try:
            ranges = snapshot_ranges(
                self._spec, topic, self._group, follow=True, known=frozenset(range(known))
            )
        except Exception as exc:
            if not broker_away(exc):
                raise
            # the broker is away (a restart?): look again next round
            broker_failed(self._run, self._outage, f"list the partitions of {topic}", exc)
            tracker.defer_remainder(Duration(seconds=PAUSE_S))
            return
        self._outage.recovered()
        if ranges:
            if not tracker.try_claim(max(r.partition for r in ranges) + 1):
                return
            for range_ in ranges:
                self._expired.inc(range_.expired)
                yield range_
        tracker.defer_remainder(Duration(seconds=DISCOVERY_INTERVAL_S))


class ReadTopic(beam.PTransform[Any, Any]):
    """Outputs: ``ranges`` (PartitionRange: where each partition starts), ``records`` and
    ``gaps`` (spans without records, already settled; empty with ``settle``).
    ``max_backlog``, ``reader_run`` and ``settle``: the processing runs after the readers
    in this process (fused, for ``reader_run``; see ``ReadPartitions``)."""

    def __init__(
        self,
        spec: KafkaSpec,
        topic: str,
        group: str | None,
        run: RunHandle,
        *,
        follow: bool = False,
        limit: int | None = None,
        counter_name: str = counters.READ,
        slice_records: int = 500,
        max_backlog: int | None = None,
        reader_run: str | None = None,
        settle: SettleHandle | None = None,
    ) -> None:
        super().__init__()
        self._spec, self._topic, self._group, self._run = spec, topic, group, run
        self._follow, self._limit, self._counter_name = follow, limit, counter_name
        self._slice_records, self._max_backlog = slice_records, max_backlog
        self._reader_run, self._settle = reader_run, settle

    def expand(self, pbegin: Any) -> dict[str, Any]:
        topic = pbegin | "Topic" >> beam.Create([self._topic])
        if self._follow:
            ranges = topic | "WatchPartitions" >> beam.ParDo(
                WatchPartitions(self._spec, self._group, self._run)
            )
        else:
            ranges = topic | "PlanRanges" >> beam.ParDo(
                PlanRanges(self._spec, self._group, self._run, self._limit, self._counter_name)
            )
        read = ranges | "ReadPartitions" >> beam.ParDo(
            ReadPartitions(
                self._spec,
                self._run,
                self._counter_name,
                self._slice_records,
                self._max_backlog,
                self._reader_run,
                self._settle,
            )
        ).with_outputs(GAPS, main="records")
        return {"ranges": ranges, "records": read.records, GAPS: read[GAPS]}
