"""Commit offsets as the stage goes, never before a record's write is acknowledged.

Keyed by partition. Events: ``begin`` (where this run starts reading the partition) and
``settled`` spans (a record's output or dead letter was acknowledged). The chain of
settled spans from the start decides the commit point (``PartitionProgress``); a commit is
made every ``COMMIT_INTERVAL_S`` or ``COMMIT_EVERY`` records, when a drained partition is
complete, and by a timer for a chain that stopped moving (and that retries a commit the
broker did not answer, up to ``KAFKA_OUTAGE_S``).

The end of the input (every reader drained or stopped) commits what is due at once: an
event-time timer at the end of the global window fires when the watermark reaches it, and
it clears the processing-time timer. Beam's Flink runner (2.62) does not let an operator
finish while a processing-time timer is set (the timer holds its output watermark), and
Flink fires none after the end of input: a timer left set kept the job running forever,
busy in ``DoFnOperator.finish`` and deaf to a cancel. A follow run stopped by SIGTERM met it
whenever its last records settled less than ``COMMIT_INTERVAL_S`` after a commit (the
commit was left to the timer); a drain whenever its last commit left a timer set.

Used where the writers do not share a process with the readers (worker pools, remote
runners); fused runs settle and commit where the writes are acknowledged instead
(``transforms.beam.settle``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam.coders import PickleCoder
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import Duration, Timestamp

from transforms.beam.metrics import broker_failed, counter
from transforms.beam.run_handle import RunHandle
from transforms.core import counters
from transforms.core.config.task import KafkaSpec
from transforms.core.records import Settled, TopicPartition
from transforms.core.run.offsets import PartitionRange
from transforms.core.run.outage import Outage
from transforms.core.run.progress import PartitionProgress
from transforms.kafka.client import broker_away
from transforms.kafka.commit_loop import COMMIT_EVERY, COMMIT_INTERVAL_S, KAFKA_OUTAGE_S
from transforms.kafka.committer import commit_forward

__all__ = ["CommitAfterWrites"]


class CommitProgress(beam.DoFn):
    PROGRESS = ReadModifyWriteStateSpec("progress", PickleCoder())
    FLUSH = TimerSpec("flush", TimeDomain.REAL_TIME)
    END = TimerSpec("end", TimeDomain.WATERMARK)  # the input ended

    def __init__(self, spec: KafkaSpec, group: str, run: RunHandle) -> None:
        self._spec, self._group, self._run = spec, group, run
        self._commits = counter(run, counters.COMMITS)
        self._behind = counter(run, counters.COMMITS_BEHIND)
        # a drain's exit code checks that every settled span ended up below a commit
        self._spans_settled = counter(run, counters.SPANS_SETTLED)
        self._spans_committed = counter(run, counters.SPANS_COMMITTED)
        self._outage = Outage(KAFKA_OUTAGE_S)

    def process(
        self,
        element: tuple[TopicPartition, tuple[str, Any]],
        state: Any = beam.DoFn.StateParam(PROGRESS),
        flush: Any = beam.DoFn.TimerParam(FLUSH),
        end: Any = beam.DoFn.TimerParam(END),
    ) -> Iterator[dict[str, Any]]:
        key, (kind, value) = element
        progress: PartitionProgress = state.read() or PartitionProgress()
        if kind == "begin":
            progress.begin(value.start, value.end)
            end.set(GlobalWindow().max_timestamp())
        else:
            self._spans_settled.inc(progress.settle(*value))
        now = time.time()
        offset = progress.should_commit(now, COMMIT_INTERVAL_S, COMMIT_EVERY)
        if offset is not None and not self._outage.ongoing:  # else: the timer retries
            yield from self._commit(key, progress, offset, now, flush)
            if progress.due() is None:  # nothing left to commit: no timer may stay set
                flush.clear()
        elif progress.due() is not None:
            flush.set(Timestamp.now() + Duration(seconds=COMMIT_INTERVAL_S))
        state.write(progress)

    @on_timer(FLUSH)
    def on_flush(
        self,
        key: Any = beam.DoFn.KeyParam,
        state: Any = beam.DoFn.StateParam(PROGRESS),
        flush: Any = beam.DoFn.TimerParam(FLUSH),
    ) -> Iterator[dict[str, Any]]:
        progress: PartitionProgress | None = state.read()
        if progress is None:
            return
        offset = progress.due()
        if offset is not None:
            yield from self._commit(key, progress, offset, time.time(), flush)
            state.write(progress)

    @on_timer(END)
    def on_end(
        self,
        key: Any = beam.DoFn.KeyParam,
        state: Any = beam.DoFn.StateParam(PROGRESS),
        flush: Any = beam.DoFn.TimerParam(FLUSH),
    ) -> Iterator[dict[str, Any]]:
        """Every reader ended: commit what is due now and leave no processing-time timer
        set (none would fire). A commit the broker does not answer now is not retried:
        those records are read again next run (the summary counts them not committed)."""
        flush.clear()
        progress: PartitionProgress | None = state.read()
        offset = progress.due() if progress is not None else None
        if progress is not None and offset is not None:
            yield from self._commit(key, progress, offset, time.time(), None)
            state.write(progress)

    def _commit(
        self,
        key: TopicPartition,
        progress: PartitionProgress,
        offset: int,
        now: float,
        flush: Any | None,
    ) -> Iterator[dict[str, Any]]:
        """``flush``: the timer that retries a commit the broker did not answer (None: no
        retry)."""
        topic, partition = key
        try:
            forward = commit_forward(self._spec, self._group, topic, partition, offset)
        except Exception as exc:
            if not broker_away(exc):
                raise
            # the broker is away (a restart?): the timer tries again, until the run halts
            if (
                not broker_failed(self._run, self._outage, "commit offsets", exc)
                and flush is not None
            ):
                flush.set(Timestamp.now() + Duration(seconds=COMMIT_INTERVAL_S))
            return
        self._outage.recovered()
        (self._commits if forward else self._behind).inc()
        self._spans_committed.inc(progress.committed_to(offset, now))
        yield {"topic": topic, "partition": partition, "committed": offset}


def _begin(range_: PartitionRange) -> tuple[TopicPartition, tuple[str, Any]]:
    return (range_.key, ("begin", range_))


def _settled(settled: Settled) -> tuple[TopicPartition, tuple[str, Any]]:
    key, span = settled
    return (key, ("settled", span))


class CommitAfterWrites(beam.PTransform[Any, Any]):
    """Input: a dict of ``ranges`` (PartitionRange) and ``settled`` (Settled)."""

    def __init__(self, spec: KafkaSpec, group: str, run: RunHandle) -> None:
        super().__init__()
        self._spec, self._group, self._run = spec, group, run

    def expand(self, inputs: dict[str, Any]) -> Any:
        begins = inputs["ranges"] | "Begin" >> beam.Map(_begin)
        settles = inputs["settled"] | "Settle" >> beam.Map(_settled)
        return (
            (begins, settles)
            | "Events" >> beam.Flatten()
            | "Commit" >> beam.ParDo(CommitProgress(self._spec, self._group, self._run))
        )
