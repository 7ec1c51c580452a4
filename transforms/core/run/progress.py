"""How far a partition may be committed, while records settle in any order.

The reader gives every record the span of offsets it accounts for: ``[span_start,
offset + 1)``, where ``span_start`` is the reader's position before the record (the previous
record's offset + 1, or where reading started). Spans chain without holes even when offsets
do not (compaction, transaction markers). A record's span is *settled* when its output or
its dead letter was acknowledged by the broker. The commit point is the end of the chain of
settled spans that begins at the partition's start: the first record not settled stops it,
so that record is read again after a crash, and nothing after it is lost.

``PartitionProgress`` is plain data: the commit step keeps one per partition in Beam state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["PartitionProgress"]


@dataclass
class PartitionProgress:
    start: int | None = None  # where this run started reading (None: not known yet)
    end: int | None = None  # drain mode: the snapshotted end; None when following
    committed: int | None = None  # the last offset committed by this run
    settled: dict[int, int] = field(default_factory=dict)  # span_start -> span end
    since_commit: int = 0  # spans settled since the last commit
    committed_at: float = 0.0  # when (wall clock, seconds) the last commit was made

    def begin(self, start: int, end: int | None) -> None:
        """The reader starts at ``start`` (the group's committed offset or the earliest)."""
        if self.start is None or start < self.start:
            self.start = start
        self.end = end

    def settle(self, span_start: int, offset: int) -> bool:
        """Record a settled span; False when it was known already (settled twice, or
        below the last commit)."""
        base = self._base
        if span_start in self.settled or (base is not None and span_start < base):
            return False
        self.settled[span_start] = offset + 1
        self.since_commit += 1
        return True

    @property
    def _base(self) -> int | None:
        """Where the chain starts: the last commit, else where reading started."""
        return self.committed if self.committed is not None else self.start

    @property
    def commit_point(self) -> int | None:
        """The next offset to read after a crash; None when nothing can be committed."""
        point = self._base
        if point is None:
            return None
        while point in self.settled:
            point = self.settled[point]
        return point

    @property
    def complete(self) -> bool:
        """Drain mode: every offset up to the snapshotted end is settled."""
        point = self.commit_point
        return self.end is not None and point is not None and point >= self.end

    def due(self) -> int | None:
        """The offset to commit now, if the chain moved past the last commit."""
        point = self.commit_point
        return None if point is None or point == self._base else point

    def should_commit(self, now: float, interval_s: float, every: int) -> int | None:
        """The offset to commit now: the chain moved, and the interval passed, or ``every``
        records settled, or a drained partition is complete."""
        point = self.due()
        if point is None:
            return None
        if self.complete or self.since_commit >= every or now - self.committed_at >= interval_s:
            return point
        return None

    def committed_to(self, offset: int, now: float = 0.0) -> int:
        """Forget the spans below a committed offset; how many that was."""
        kept = {s: e for s, e in self.settled.items() if s >= offset}
        forgotten = len(self.settled) - len(kept)
        self.committed, self.committed_at, self.settled = offset, now, kept
        self.since_commit = 0
        return forgotten
