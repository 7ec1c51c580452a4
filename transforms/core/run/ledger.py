"""What a run has settled, per partition, as the broker acknowledges each write.

Where the readers and the writers of a run share a process (Prism's LOOPBACK workers),
they report to one ``SettleLedger`` directly: a reader says where it starts each partition
(``begin``) and which offsets it skipped without a record (``settle`` of a gap span); a
writer settles a record's span when the broker acknowledges its output or dead letter.
Nothing passes through the runner on the way, so no bundle boundary, shuffle or timer
stands between an acknowledgement and the commit it allows, and nothing the runner drops
or delays can leave a hole in a partition's chain.

Thread-safe: acknowledgements arrive on the producer's I/O thread, commits are made from
another. Plain logic over ``PartitionProgress``; the committing itself is an edge's job
(``transforms.kafka.commit_loop``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from transforms.core.records import Span, TopicPartition
from transforms.core.run.progress import PartitionProgress

__all__ = ["Due", "SettleLedger"]


@dataclass(frozen=True)
class Due:
    """A commit to make: ``offset`` is the next offset to read in ``key``'s partition."""

    key: TopicPartition
    offset: int


class SettleLedger:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._partitions: dict[TopicPartition, PartitionProgress] = {}

    def _progress(self, key: TopicPartition) -> PartitionProgress:
        progress = self._partitions.get(key)
        if progress is None:
            progress = self._partitions[key] = PartitionProgress()
        return progress

    def begin(self, key: TopicPartition, start: int, end: int | None) -> None:
        """A reader starts ``key`` at ``start`` (``end``: a drain's snapshotted end)."""
        with self._lock:
            self._progress(key).begin(start, end)

    def settle(self, key: TopicPartition, span: Span) -> bool:
        """A span ``(span_start, offset)`` is settled; False when it was known already."""
        with self._lock:
            return self._progress(key).settle(*span)

    def due(self, now: float, interval_s: float, every: int, *, final: bool = False) -> list[Due]:
        """The commits to make now: partitions whose chain moved past their last commit and
        whose interval passed (or ``every`` spans settled, or the range is complete), or
        every moved partition when ``final``."""
        with self._lock:
            points = [
                (key, p.due() if final else p.should_commit(now, interval_s, every))
                for key, p in self._partitions.items()
            ]
        return [Due(key, offset) for key, offset in points if offset is not None]

    def committed(self, due: Due, now: float) -> int:
        """``due`` was committed: forget the spans below it; how many that was."""
        with self._lock:
            progress = self._partitions[due.key]
            if progress.committed is not None and progress.committed >= due.offset:
                return 0  # committed already by a concurrent caller
            return progress.committed_to(due.offset, now)

    def uncommitted(self) -> int:
        """Spans settled but not yet below a commit."""
        with self._lock:
            return sum(len(p.settled) for p in self._partitions.values())
