"""Enrich calls submitted but not yet emitted, and when a bundle may leave them behind.

A bundle of the enrich step used to end by waiting for every call it started, so one slow
answer (a heavy-tailed provider's p99) held back its whole bundle, and the reader's next
slice with it: the in-flight window drained at every bundle's end.

Where the readers and the processing steps run fused in one process (Prism's LOOPBACK
workers: one bundle, on one thread, from the reader's fetch to the write), a bundle may
instead leave its unfinished calls in the process's ``Outstanding``, for later bundles to
emit as they complete, as long as a later bundle is sure to come: some reader of the run
is still reading or will be resumed (``Readers``: one per worker process and run, in the
run's ``transforms.beam.run_handle.WorkerRun``). The last reader to end waits for
everything outstanding, so nothing is left behind when the run ends. Elsewhere (a
Reshuffle before the step, remote runners, worker pools) a bundle only ever waits for its
own calls: a runner may retry a bundle, and must never lose a result another bundle took.

Losing an outstanding result (the process dies) loses no record: its offset is not
committed, so it is read again.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, as_completed
from dataclasses import dataclass
from typing import Any

__all__ = ["Outstanding", "Readers", "Submitted"]


@dataclass(frozen=True)
class Submitted:
    future: Future[Any]
    timestamp: Any
    window: Any


class Outstanding:
    """Submitted calls, each taken (to be emitted) exactly once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[int, Submitted] = {}
        self._done: deque[int] = deque()  # keys of completed calls, in completion order
        self._next = 0

    def __len__(self) -> int:
        return len(self._items)

    def add(self, future: Future[Any], timestamp: Any, window: Any) -> None:
        with self._lock:
            key, self._next = self._next, self._next + 1
            self._items[key] = Submitted(future, timestamp, window)
        future.add_done_callback(lambda _: self._done.append(key))

    def take_done(self) -> list[Submitted]:
        """The calls that have completed, in the order they completed."""
        taken = []
        with self._lock:
            while self._done:
                item = self._items.pop(self._done.popleft(), None)
                if item is not None:  # else taken by ``take_all``
                    taken.append(item)
        return taken

    def take_all(self) -> Iterator[Submitted]:
        """Every call outstanding now, each as it completes (the caller emits each before
        waiting for the next). Calls added meanwhile are left for others."""
        with self._lock:
            waiting = {item.future: key for key, item in self._items.items()}
        for future in as_completed(waiting):
            with self._lock:
                item = self._items.pop(waiting[future], None)
            if item is not None:  # else another bundle took it meanwhile
                yield item


class Readers:
    """The readers of each run in this process that are reading or will be resumed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[str, set[Any]] = {}

    def reading(self, run: str, key: Any) -> None:
        with self._lock:
            self._live.setdefault(run, set()).add(key)

    def ended(self, run: str, key: Any) -> None:
        """The reader finished its range or stopped (or the runner checkpointed it: then
        it counts as ended until resumed, which only makes a bundle wait needlessly)."""
        with self._lock:
            live = self._live.get(run)
            if live is not None:
                live.discard(key)
                if not live:
                    del self._live[run]

    def live(self, run: str) -> bool:
        """Some reader of ``run`` will run again: a bundle may leave calls behind."""
        with self._lock:
            return run in self._live
