"""The run's counts, kept in the worker process as well as in Beam's metrics.

Prism (2.77) can lose counter values: when bundles running at the same time first report
a counter it has not seen yet, it keeps only one of their values (``unprocessedPayloads``
is a map keyed by the counter, overwritten). A summary that must account for every record
cannot live with that, so where the whole pipeline runs in the launcher's process (Prism's
LOOPBACK workers, the default) the summary reads this tally instead; other runners report
through Beam's metrics only. One ``Tally`` per worker process and run
(``transforms.beam.run_handle``).
"""

from __future__ import annotations

import threading
from collections import Counter

__all__ = ["Tally"]


class Tally:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._reasons: set[str] = set()

    def add(self, name: str, value: int = 1) -> None:
        with self._lock:
            self._counts[name] += value

    def add_reason(self, reason: str) -> None:
        with self._lock:
            self._reasons.add(reason)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reasons(self) -> list[str]:
        with self._lock:
            return sorted(self._reasons)
