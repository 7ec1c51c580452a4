"""The enrich step on Flink, where it does not share a process with the readers: calls
outlive their bundle, so that no bundle waits for its slowest call.

Records are keyed by a slot (``SLOTS`` of them, by offset: the runner spreads the slots
over its workers) only so that the step may set timers; the calls themselves are the DoFn
instance's, in an ``Outstanding`` that each of its bundles and timers emits from:

- ``process`` submits the record's call to the worker's shared event loop and emits the
  instance's calls that have completed;
- ``finish_bundle``, when the bundle brought records, first waits until the worker has
  fewer than ``2 x policy.max_in_flight`` calls unanswered (the window, and as many queued
  to refill it), so the runner holds the rest of the input back instead of this worker
  queueing all of it; then emits what completed meanwhile;
- a processing-time ``poke`` timer, one per instance at a time while calls are
  outstanding, emits what completed when no record comes (every ``POKE_S``);
- an event-time ``end`` timer at the end of the global window fires when the input has
  ended (a drain read everything, a follow run was stopped): the instance emits its
  outstanding calls as each completes, and clears its poke.

This relies on the runner never retrying a bundle alone. Flink does not: without
checkpoints, a failed task fails the job (the pipeline's offsets are committed only after
the writes, so its records are read again by the next run). A runner that retries bundles
(Dataflow) would lose a result emitted by a retried bundle: there the enrich step keeps
waiting for its own calls at the end of each bundle (``transforms.beam.enrich``).

Why not Beam's ``AsyncWrapper`` (``apache_beam.transforms.async_dofn``, which keeps its
items in state, so it survives retried bundles): it sets only processing-time timers, and
Beam's Flink runner (2.62) finishes an operator by looping until its output watermark
reaches the end, which a pending processing-time timer holds back (its hold is the
element's timestamp) and which, outside a splittable DoFn's stage, fires no
processing-time timers: a drain never ends (seen on the local cluster: a job of 40
elements still running after 180 s, its task thread spinning in
``ExecutableStageDoFnOperator.flushData``). The ``end`` timer here is an event-time timer,
which the runner fires on that last watermark, and it clears the poke. Nor per-slot state
and timers: the runner fires a few timers per bundle, far fewer than one poke per slot a
quarter-second, and results waited seconds for theirs. Nor a splittable DoFn that defers
each record until its call completes: the runner keeps state for every deferral until the
job ends (about 70 KB of TaskManager heap each; 2,600 deferrals filled a 256 MB heap).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import apache_beam as beam
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import TimerSpec, on_timer
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.shared import Shared
from apache_beam.utils.timestamp import Duration, Timestamp

from transforms.beam.enrich import EnrichRecords
from transforms.beam.outstanding import Outstanding
from transforms.core.config.task import TaskSpec
from transforms.core.records import Parsed

__all__ = ["SLOTS", "Admission", "EnrichKeyed", "bundle_size", "slot_of"]

SLOTS = 128  # keys: enough that a runner's hash spreads them evenly over its workers
POKE_S = 0.25  # with calls outstanding and no record coming, emit what completed this often
ADMIT_WAIT_S = 0.05  # a full window: look again this often


def bundle_size(max_in_flight: int) -> int:
    """The bundle size to ask the runner for (Flink's ``--max_bundle_size``). A bundle that
    brought records ends by waiting until its worker has room again, and its outputs (and
    the settled offsets behind them) go downstream when it ends: a bundle of half the
    window keeps that to about one call's latency, where Flink's default (1,000 records or
    1 s) took as long as the worker needed for all of them."""
    return max(1, max_in_flight // 2)


def slot_of(parsed: Parsed) -> tuple[int, Parsed]:
    source = parsed.source
    return ((source.partition * 7919 + source.offset) % SLOTS, parsed)


class Admission:
    """One per worker process and run: how many calls are submitted and unanswered, to hold
    the input back by."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._unanswered = 0

    def submitted(self, future: Future[Any]) -> None:
        with self._lock:
            self._unanswered += 1
        future.add_done_callback(self._answered)

    def _answered(self, _: Future[Any]) -> None:
        with self._lock:
            self._unanswered -= 1
            self._lock.notify_all()

    def wait_for_room(self, limit: int) -> None:
        """Return once fewer than ``limit`` calls of this process are unanswered."""
        with self._lock:
            while self._unanswered >= limit:
                self._lock.wait(ADMIT_WAIT_S)


class EnrichKeyed(EnrichRecords):
    """(slot, Parsed) in; like ``EnrichRecords`` out (enriched records, ``dead`` failures)."""

    POKE = TimerSpec("poke", TimeDomain.REAL_TIME)
    END = TimerSpec("end", TimeDomain.WATERMARK)

    def __init__(self, task: TaskSpec, run_id: str, follow: bool) -> None:
        super().__init__(task, run_id, follow)
        self._admission_shared = Shared()

    def setup(self) -> None:
        super().setup()
        self._admission: Admission = self._admission_shared.acquire(
            Admission, tag=f"{self._run_id}/admission"
        )
        self._room = 2 * self.job.task.policy.max_in_flight
        self._outstanding = Outstanding()  # this instance's, emitted by any of its bundles
        self._poke_due = 0.0  # when this instance's pending poke fires (0: none pending)

    def start_bundle(self) -> None:
        self._admitted = False  # this bundle brought records (not only timers)

    def process(  # type: ignore[override]
        self,
        element: tuple[int, Parsed],
        timestamp: Any = beam.DoFn.TimestampParam,
        window: Any = beam.DoFn.WindowParam,
        poke: Any = beam.DoFn.TimerParam(POKE),
        end: Any = beam.DoFn.TimerParam(END),
    ) -> Iterator[Any]:
        _, parsed = element
        self._admitted = True
        future = self._service.submit(self._service.enrich(parsed))
        self._admission.submitted(future)
        self._outstanding.add(future, timestamp, window)
        end.set(GlobalWindow().max_timestamp())  # every key that holds a poke has its end
        yield from self._emit(self._outstanding.take_done())
        self._keep_poked(poke)

    def finish_bundle(self) -> Iterator[Any]:
        if self._admitted:  # hold the runner's next records back until there is room
            self._admission.wait_for_room(self._room)
        yield from self._emit(self._outstanding.take_done())
        self._report()

    @on_timer(POKE)
    def on_poke(self, poke: Any = beam.DoFn.TimerParam(POKE)) -> Iterator[Any]:
        self._poke_due = 0.0
        yield from self._emit(self._outstanding.take_done())
        self._keep_poked(poke)

    @on_timer(END)
    def on_end(self, poke: Any = beam.DoFn.TimerParam(POKE)) -> Iterator[Any]:
        """The input has ended: every outstanding call, each as it completes."""
        yield from self._emit(self._outstanding.take_all())
        poke.clear()
        self._poke_due = 0.0

    def _keep_poked(self, poke: Any) -> None:
        """Set a poke on the current key unless one is pending (or nothing is outstanding)."""
        if len(self._outstanding) and self._poke_due < time.time():
            self._poke_due = time.time() + POKE_S
            poke.set(Timestamp.now() + Duration(seconds=POKE_S))
