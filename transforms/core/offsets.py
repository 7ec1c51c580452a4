"""Which offset is safe to commit for a partition, given what was read and what was written.

An input offset is settled when its output or its dead letter was acknowledged. The commit
point is the first offset read but not settled (so it is read again next time), or the end
of the range when everything read is settled. Offsets need not be contiguous (compaction,
transaction markers), which is why this works from the offsets actually read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["PartitionRange", "commit_point", "limit_ranges"]


@dataclass(frozen=True)
class PartitionRange:
    """Offsets ``[start, end)`` of one partition: what one drain run reads."""

    topic: str
    partition: int
    start: int
    end: int

    @property
    def empty(self) -> bool:
        return self.end <= self.start


def commit_point(range_: PartitionRange, read: Iterable[int], settled: Iterable[int]) -> int:
    """The offset to commit (the next offset to read) for this range."""
    settled_set = set(settled)
    for offset in sorted(read):
        if offset not in settled_set:
            return offset
    return range_.end


def limit_ranges(ranges: list[PartitionRange], limit: int | None) -> list[PartitionRange]:
    """Shorten ranges, in partition order, so they hold at most ``limit`` offsets."""
    if limit is None:
        return ranges
    kept, left = [], limit
    for range_ in sorted(ranges, key=lambda r: r.partition):
        take = max(0, min(left, range_.end - range_.start))
        kept.append(
            PartitionRange(range_.topic, range_.partition, range_.start, range_.start + take)
        )
        left -= take
    return kept
