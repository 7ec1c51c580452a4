"""Settle offsets where they are acknowledged, when the readers and writers of a run share a
process (Prism's LOOPBACK workers, fused: ``EnrichStage(fused=True)``).

One ``Settlement`` per run and process, reached through one ``Shared`` handle that the
readers and both writers of the run carry: the readers ``begin`` partitions and settle the
spans they skipped; the writers settle each record's span from the producer's
acknowledgement callback, as it arrives. Its ``CommitLoop`` commits as the chains move, so
the commit, the progress line and the summary follow acknowledgements, not bundle ends.

Elsewhere (worker pools, remote runners) the writers emit settled coordinates and the
stateful ``transforms.beam.commit.CommitAfterWrites`` step commits them.
"""

from __future__ import annotations

import functools
from typing import cast

from apache_beam.utils.shared import Shared

from transforms.beam.metrics import LaterCounts, halt
from transforms.beam.run_handle import RunHandle
from transforms.core import counters
from transforms.core.config.task import KafkaSpec
from transforms.core.records import Settled, TopicPartition
from transforms.core.run.ledger import SettleLedger
from transforms.kafka.commit_loop import CommitLoop
from transforms.kafka.committer import commit_forward

__all__ = ["SettleHandle", "Settlement"]


class Settlement:
    def __init__(self, spec: KafkaSpec, group: str, run: RunHandle) -> None:
        self.ledger = SettleLedger()
        self.counts = LaterCounts(run)
        commit = functools.partial(commit_forward, spec, group)
        stop = functools.partial(halt, run)
        self.loop = CommitLoop(self.ledger, commit, count=self.counts.add, halt=stop)
        self.loop.start()

    def begin(self, key: TopicPartition, start: int, end: int | None) -> None:
        self.ledger.begin(key, start, end)

    def settle(self, settled: Settled) -> None:
        key, span = settled
        if self.ledger.settle(key, span):
            self.counts.add(counters.SPANS_SETTLED, 1)

    def report(self) -> None:
        """From inside a bundle: hand the counts made on other threads to Beam's metrics."""
        self.counts.report()

    def __del__(self) -> None:  # the last DoFn of the run let go of it
        loop = getattr(self, "loop", None)
        if loop is not None:
            loop.stop()


class SettleHandle:
    """Picklable: the run's ``Settlement`` in whatever process unpickles it."""

    def __init__(self, spec: KafkaSpec, group: str, run: RunHandle) -> None:
        self._spec, self._group, self._run = spec, group, run
        self._shared = Shared()

    def acquire(self) -> Settlement:
        settlement = self._shared.acquire(
            lambda: Settlement(self._spec, self._group, self._run), tag=self._run.run_id
        )
        return cast(Settlement, settlement)
