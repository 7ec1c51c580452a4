"""Commit a ``SettleLedger``'s offsets as the run goes, from a thread of its own.

Every ``COMMIT_INTERVAL_S`` the loop commits each partition whose chain of settled spans
moved (sooner after ``COMMIT_EVERY`` spans); ``commit_now`` commits everything that moved
at once (the end of a write bundle, the end of the run).

A commit that fails because the broker is unreachable (a restart, a network blip) is
retried on the next tick: nothing is lost meanwhile, the chain only grows. Only when
commits keep failing for ``KAFKA_OUTAGE_S`` does the loop halt the run as a systemic fault
(exit 3); what was settled stays uncommitted and is read again.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable

from transforms.core import counters
from transforms.core.run.ledger import Due, SettleLedger
from transforms.core.run.outage import Outage
from transforms.kafka.client import broker_away

__all__ = ["COMMIT_EVERY", "COMMIT_INTERVAL_S", "KAFKA_OUTAGE_S", "CommitLoop"]

COMMIT_INTERVAL_S = 1.0
COMMIT_EVERY = 100
KAFKA_OUTAGE_S = 120.0  # the broker unreachable this long: a systemic fault, not a blip
_TICK_S = 0.25

Commit = Callable[[str, int, int], bool]  # (topic, partition, offset) -> not behind
Count = Callable[[str, int], None]

log = logging.getLogger(__name__)


class CommitLoop:
    """``commit`` raises when the broker cannot be reached; ``count`` takes the counters
    (``commits``, ``commits_behind_another_run``, ``commit.spans_committed``); ``halt``
    stops the run with a reason."""

    def __init__(
        self,
        ledger: SettleLedger,
        commit: Commit,
        *,
        count: Count,
        halt: Callable[[str], None],
        outage_s: float = KAFKA_OUTAGE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ledger, self._commit, self._count, self._halt = ledger, commit, count, halt
        self._clock = clock
        self._outage = Outage(outage_s, clock)
        self._lock = threading.Lock()  # one committer at a time: commits only move forward
        self._stopped = threading.Event()

    def start(self) -> None:
        """Commit on a daemon thread until ``stop`` or until this loop is collected (the
        thread holds it weakly, so a loop nobody uses any more ends its thread)."""
        thread = threading.Thread(
            target=_tick, args=(weakref.ref(self), self._stopped), name="llm-enrich-commit"
        )
        thread.daemon = True
        thread.start()

    def stop(self) -> None:
        """End the thread; what was not committed yet stays uncommitted (read again)."""
        self._stopped.set()

    def commit_now(self) -> bool:
        """Commit every partition whose chain moved; False when the broker did not answer."""
        return self._commit_due(final=True)

    def commit_all(self, sleep: Callable[[float], None] = time.sleep) -> bool:
        """Commit every partition whose chain moved, retrying while the broker is away (up
        to ``outage_s``): the end of a run must not leave settled offsets behind."""
        while not self.commit_now():
            if self._outage.over:
                return False
            sleep(_TICK_S * 4)
        return True

    def commit_due(self) -> bool:
        return self._commit_due(final=False)

    def _commit_due(self, *, final: bool) -> bool:
        with self._lock:
            now = self._clock()
            for due in self._ledger.due(now, COMMIT_INTERVAL_S, COMMIT_EVERY, final=final):
                if not self._commit_one(due, now):
                    return False
            return True

    def _commit_one(self, due: Due, now: float) -> bool:
        topic, partition = due.key
        try:
            forward = self._commit(topic, partition, due.offset)
        except Exception as exc:
            if not broker_away(exc):
                self._halt(f"systemic: cannot commit offsets: {type(exc).__name__}: {exc}"[:400])
                return False
            self._failed(exc)
            return False
        if self._outage.recovered():
            log.warning("llm-enrich: commits go through again")
        self._count(counters.COMMITS if forward else counters.COMMITS_BEHIND, 1)
        self._count(counters.SPANS_COMMITTED, self._ledger.committed(due, now))
        return True

    def _failed(self, exc: Exception) -> None:
        what = f"{type(exc).__name__}: {exc}"[:300]
        if self._outage.failed():
            log.warning("llm-enrich: cannot commit offsets (%s); retrying", what)
        elif self._outage.over:
            self._halt(
                f"systemic: cannot commit offsets for {self._outage.limit_s:.0f} s: {what}: "
                "is the broker up?"
            )


def _tick(ref: weakref.ref[CommitLoop], stopped: threading.Event) -> None:
    while not stopped.wait(_TICK_S):
        loop = ref()
        if loop is None:
            return
        try:
            loop.commit_due()
        finally:
            del loop
