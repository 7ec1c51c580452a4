"""The run's counts, kept in the worker process as well as in Beam's metrics.

Prism (2.77) can lose counter values: when bundles running at the same time first report
a counter it has not seen yet, it keeps only one of their values (``unprocessedPayloads``
is a map keyed by the counter, overwritten). A summary that must account for every record
cannot live with that, so where the whole pipeline runs in the launcher's process (Prism's
LOOPBACK workers, the default) the summary reads this tally instead; other runners report
through Beam's metrics only.
"""

from __future__ import annotations

import threading
from collections import Counter

__all__ = ["add", "add_reason", "counts", "reasons", "reset"]

_lock = threading.Lock()
_counts: Counter[str] = Counter()
_reasons: set[str] = set()


def add(name: str, value: int = 1) -> None:
    with _lock:
        _counts[name] += value


def add_reason(reason: str) -> None:
    with _lock:
        _reasons.add(reason)


def counts() -> dict[str, int]:
    with _lock:
        return dict(_counts)


def reasons() -> list[str]:
    with _lock:
        return sorted(_reasons)


def reset() -> None:
    with _lock:
        _counts.clear()
        _reasons.clear()
