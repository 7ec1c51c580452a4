"""The enrich step on Flink, where it does not share a process with the readers: calls
outlive their bundle, so that no bundle waits for its slowest call.

Records are keyed by a slot (``SLOTS`` of them, by offset: the runner spreads the slots
over its workers) only so that the step may set timers. The calls are the worker
process's (``WorkerCalls``), and every bundle and timer of the step in that process emits
those that have completed:

- ``process`` submits the record's call to the worker's shared event loop;
- ``finish_bundle``, when the bundle brought records, first waits until the worker has
  fewer than ``2 x policy.max_in_flight`` calls unanswered (the window, and as many queued
  to refill it), so the runner holds the rest of the input back instead of this worker
  queueing all of it;
- a processing-time ``poke`` timer, one per worker at a time while calls are outstanding,
  emits what completed when no record comes (every ``POKE_S``);
- an event-time ``end`` timer at the end of the global window fires when a subtask's input
  has ended (a drain read everything, a follow run was stopped): it emits every call
  outstanding in the worker, as each completes, and clears its key's poke.

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
from transforms.beam.run_handle import RunHandle
from transforms.core.config.task import TaskSpec
from transforms.core.records import Parsed

__all__ = ["SLOTS", "EnrichKeyed", "WorkerCalls", "bundle_size", "slot_of"]

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


class WorkerCalls:
    """One per worker process and run: the enrich step's outstanding calls, each emitted
    once by whichever of its bundles or timers comes next in this process (the runner
    hands a subtask's bundles to any of the process's DoFn instances, and a timer fires
    in the subtask of its key); how many are unanswered, to hold the input back by; and
    when the process's one pending poke fires."""

    def __init__(self) -> None:
        self.outstanding = Outstanding()
        self._lock = threading.Condition()
        self._unanswered = 0
        self._poke_due = 0.0  # 0: no poke pending

    def add(self, future: Future[Any], timestamp: Any, window: Any) -> None:
        with self._lock:
            self._unanswered += 1
        self.outstanding.add(future, timestamp, window)
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

    def claim_poke(self) -> bool:
        """True when a poke should be set now: calls are outstanding and none is pending
        (or the pending one is overdue: the runner may be slow to fire it)."""
        with self._lock:
            now = time.time()
            if not len(self.outstanding) or self._poke_due > now:
                return False
            self._poke_due = now + POKE_S
            return True

    def poked(self) -> None:
        with self._lock:
            self._poke_due = 0.0


class EnrichKeyed(EnrichRecords):
    """(slot, Parsed) in; like ``EnrichRecords`` out (enriched records, ``dead`` failures)."""

    POKE = TimerSpec("poke", TimeDomain.REAL_TIME)
    END = TimerSpec("end", TimeDomain.WATERMARK)

    def __init__(self, task: TaskSpec, run: RunHandle, follow: bool) -> None:
        super().__init__(task, run, follow)
        self._calls_shared = Shared()

    def setup(self) -> None:
        super().setup()
        self._worker_calls: WorkerCalls = self._calls_shared.acquire(
            WorkerCalls, tag=f"{self._run.run_id}/keyed"
        )
        self._room = 2 * self.job.task.policy.max_in_flight

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
        self._worker_calls.add(
            self._service.submit(self._service.enrich(parsed)), timestamp, window
        )
        end.set(GlobalWindow().max_timestamp())  # every key that holds a poke has its end
        yield from self._emit(self._worker_calls.outstanding.take_done())
        self._keep_poked(poke)

    def finish_bundle(self) -> Iterator[Any]:
        if self._admitted:  # hold the runner's next records back until there is room
            self._worker_calls.wait_for_room(self._room)
        yield from self._emit(self._worker_calls.outstanding.take_done())
        self._report()

    @on_timer(POKE)
    def on_poke(self, poke: Any = beam.DoFn.TimerParam(POKE)) -> Iterator[Any]:
        self._worker_calls.poked()
        yield from self._emit(self._worker_calls.outstanding.take_done())
        self._keep_poked(poke)

    @on_timer(END)
    def on_end(self, poke: Any = beam.DoFn.TimerParam(POKE)) -> Iterator[Any]:
        """This subtask's input has ended: every call outstanding in this process, each as
        it completes (those that other subtasks submit later are theirs to emit)."""
        yield from self._emit(self._worker_calls.outstanding.take_all())
        poke.clear()
        self._worker_calls.poked()

    def _keep_poked(self, poke: Any) -> None:
        if self._worker_calls.claim_poke():
            poke.set(Timestamp.now() + Duration(seconds=POKE_S))
