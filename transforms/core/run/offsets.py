"""Partition ranges: what a run reads from each partition of a topic.

Drain mode snapshots ``[committed, end)`` per partition at start; follow mode reads
``[committed, ∞)``. Which offset may be committed while records settle is
``transforms.core.run.progress``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PartitionRange", "limit_ranges"]


@dataclass(frozen=True)
class PartitionRange:
    """Offsets ``[start, end)`` of one partition. ``end`` is None when following the
    partition (unbounded). ``expired`` counts the offsets between the group's committed
    offset and the earliest the broker still holds: records that left the topic by
    retention before this group read them."""

    topic: str
    partition: int
    start: int
    end: int | None
    expired: int = 0

    @property
    def empty(self) -> bool:
        return self.end is not None and self.end <= self.start

    @property
    def key(self) -> tuple[str, int]:
        return (self.topic, self.partition)


def limit_ranges(ranges: list[PartitionRange], limit: int | None) -> list[PartitionRange]:
    """Shorten bounded ranges, in partition order, so they hold at most ``limit`` offsets."""
    if limit is None:
        return ranges
    kept, left = [], limit
    for range_ in sorted(ranges, key=lambda r: r.partition):
        end = range_.end if range_.end is not None else range_.start
        take = max(0, min(left, end - range_.start))
        kept.append(
            PartitionRange(
                range_.topic, range_.partition, range_.start, range_.start + take, range_.expired
            )
        )
        left -= take
    return kept
