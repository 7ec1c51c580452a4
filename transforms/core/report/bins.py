"""Fixed latency bins, shared by the eval and run reports: a histogram of any number of
calls in constant memory."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable

__all__ = ["LATENCY_EDGES_MS", "latency_bin", "latency_counts", "latency_labels"]

LATENCY_EDGES_MS = (100, 250, 500, 1000, 2000, 4000, 8000, 15000, 30000, 60000)


def latency_bin(latency_ms: float) -> int:
    """The bin index (0 .. len(LATENCY_EDGES_MS)) of one latency."""
    return bisect.bisect_right(LATENCY_EDGES_MS, latency_ms)


def latency_counts(values: Iterable[float]) -> list[int]:
    counts = [0] * (len(LATENCY_EDGES_MS) + 1)
    for value in values:
        counts[latency_bin(value)] += 1
    return counts


def _seconds(ms: int) -> str:
    return f"{ms / 1000:g}s"


def latency_labels() -> list[str]:
    edges = LATENCY_EDGES_MS
    inner = [f"{_seconds(a)}-{_seconds(b)}" for a, b in itertools.pairwise(edges)]
    return [f"<{_seconds(edges[0])}", *inner, f">={_seconds(edges[-1])}"]
