"""The counters every run reports; one namespace, names shared with the summary.

Each count goes to Beam's metrics (what a runner's UI and autoscaler see) and to the
run's tally in this process (``transforms.core.run.tally``, in the run's ``WorkerRun``:
what the summary reads on Prism, whose metrics can drop values). Every helper takes the
run's ``RunHandle``.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from apache_beam.metrics.metric import Metrics

from transforms.beam.failures import log_failure
from transforms.beam.run_handle import RunHandle, WorkerRun
from transforms.core import counters
from transforms.core.records import Enriched, Failure
from transforms.core.run.outage import Outage

NAMESPACE, STOP_REASONS = counters.NAMESPACE, counters.STOP_REASONS


class Count:
    """A Beam counter that also counts in the run's tally. Picklable."""

    def __init__(self, run: RunHandle, name: str) -> None:
        self.name, self._run = name, run
        self._beam: Any = Metrics.counter(NAMESPACE, name)
        self._worker: WorkerRun | None = None

    def __getstate__(self) -> dict[str, Any]:  # acquired again where it is unpickled
        return {**self.__dict__, "_worker": None}

    def inc(self, value: int = 1) -> None:
        if value:
            self._beam.inc(value)
            if self._worker is None:
                self._worker = self._run.acquire()
            self._worker.tally.add(self.name, value)


class LaterCounts:
    """Counts made off a bundle's thread (the producer's acknowledgements, the commit loop):
    into the tally at once, into Beam's metrics at the next ``report`` from inside a bundle
    (Beam drops increments made where no bundle runs). Made on the worker."""

    def __init__(self, run: RunHandle) -> None:
        self._tally = run.acquire().tally
        self._lock = threading.Lock()
        self._pending: Counter[str] = Counter()

    def add(self, name: str, value: int = 1) -> None:
        if value:
            self._tally.add(name, value)
            with self._lock:
                self._pending[name] += value

    def report(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, Counter()
        for name, value in pending.items():
            Metrics.counter(NAMESPACE, name).inc(value)


class ThrottledTime:
    """Time spent waiting for providers' rate limits, as Beam counters: ``throttled_ms``,
    and ``cumulativeThrottlingSeconds``, the name Beam's remote model handlers use and
    Dataflow's autoscaler reads (throttled workers are not a reason to add workers)."""

    def __init__(self, run: RunHandle) -> None:
        self._ms = counter(run, counters.THROTTLED_MS)
        self._seconds: Any = Metrics.counter(NAMESPACE, counters.THROTTLING_SECONDS)
        self._carry = 0.0

    def report(self, seconds: float) -> None:
        self._ms.inc(round(seconds * 1000))
        self._carry += seconds
        whole = int(self._carry)
        if whole:
            self._seconds.inc(whole)
            self._carry -= whole


class CacheCounts:
    """The response cache's counters: ``cache_hits`` and what they saved (calls, tokens,
    ``cache_saved_micro_usd``, from the usage recorded when each answer was first produced),
    ``cache_misses``, ``cache_errors`` (failed cache operations: misses too)."""

    def __init__(self, run: RunHandle) -> None:
        self.hits, self.misses, self.errors = (
            counter(run, counters.CACHE_HITS),
            counter(run, counters.CACHE_MISSES),
            counter(run, counters.CACHE_ERRORS),
        )
        self.calls = counter(run, counters.CACHE_SAVED_CALLS)
        self.tokens = counter(run, counters.CACHE_SAVED_TOKENS)
        self.micro_usd = counter(run, counters.CACHE_SAVED_MICRO_USD)

    def count(self, enriched: Any) -> None:
        if enriched.cache == "miss":
            self.misses.inc()
        saved = enriched.saved
        if enriched.cache == "hit" and saved is not None:
            self.hits.inc()
            self.calls.inc(saved.calls)
            self.tokens.inc(saved.prompt_tokens + saved.completion_tokens)
            self.micro_usd.inc(round(saved.cost_usd * 1_000_000))


class CascadeCounts:
    """The cascade's counters, over the records it answered: ``cascade.answered.<i>.<step>``,
    ``cascade.escalated.<i>.<step>.<reason>`` (``i``: the step's place), their cost (every
    step's attempts, ``cascade.cost_micro_usd``) and what the strongest step alone would cost
    (``cascade.all_strong_micro_usd``). A cached answer counts for its step, at no cost."""

    def __init__(self, run: RunHandle) -> None:
        self._run = run
        self.cost = counter(run, counters.CASCADE_COST_MICRO_USD)
        self.all_strong = counter(run, counters.CASCADE_ALL_STRONG_MICRO_USD)

    def count(self, enriched: Any) -> None:
        mark = enriched.cascade
        if mark is None:
            return
        counter(self._run, counters.cascade_answered(mark.index, mark.step)).inc()
        for index, (step, reason) in enumerate(mark.escalated):  # every step before it
            counter(self._run, counters.cascade_escalated(index, step, reason)).inc()
        self.cost.inc(round(sum(a.cost_usd for a in enriched.attempts) * 1_000_000))
        self.all_strong.inc(round(mark.all_strong_usd * 1_000_000))


def counter(run: RunHandle, name: str) -> Count:
    return Count(run, name)


def dead_letter_counter(run: RunHandle, stage: str) -> Count:
    return counter(run, counters.dead_letter(stage))


def count_safety(run: RunHandle, result: Enriched | Failure) -> None:
    """``safety.flagged`` and ``safety.flag.<kind>`` for an enriched record that carried
    injection markers; ``safety.guarded.<error class>`` for a record the guard refused."""
    if isinstance(result, Enriched) and result.safety_flags:
        counter(run, counters.SAFETY_FLAGGED).inc()
        for kind in result.safety_flags:
            counter(run, counters.safety_flag(kind)).inc()
    elif isinstance(result, Failure) and result.stage == "guard":
        counter(run, counters.safety_guarded(result.error_class)).inc()


def stop_reason(run: RunHandle, reason: str) -> None:
    Metrics.string_set(NAMESPACE, STOP_REASONS).add(reason)
    run.acquire().tally.add_reason(reason)


def count_halted(run: RunHandle, reason: str) -> None:
    """A record left unsettled because the run stopped early (a guard or a systemic
    fault): counted as ``halted.<kind>``, and the reason kept for the summary."""
    counter(run, counters.halted(reason)).inc()
    stop_reason(run, reason)


def note_stop(run: RunHandle) -> None:
    """If the run was stopped early (by any stage of this process), say why."""
    reason = run.acquire().control.halted()
    if reason:
        stop_reason(run, reason)


def halt(run: RunHandle, reason: str) -> None:
    """A stage met a systemic fault: stop the run (the readers stop claiming offsets)."""
    run.acquire().control.halt(reason)
    count_halted(run, reason)


def broker_failed(run: RunHandle, outage: Outage, doing: str, exc: Exception) -> bool:
    """A Kafka call failed for want of the broker (a restart, a blip): log the first failure
    of the outage; once it has lasted ``outage.limit_s``, stop the run as a systemic fault.
    True when the run was stopped."""
    what = f"{type(exc).__name__}: {exc}"[:300]
    if outage.failed():
        log_failure(doing, type(exc).__name__, f"{exc} (retrying while the broker is away)")
    elif outage.over:
        halt(run, f"systemic: cannot {doing} for {outage.limit_s:.0f} s: {what}: is the broker up?")
        return True
    return False
