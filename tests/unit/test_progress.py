"""The commit point: the end of the chain of settled spans, in any settle order."""

from __future__ import annotations

from transforms.core.run.offsets import PartitionRange, limit_ranges
from transforms.core.run.progress import PartitionProgress


def _progress(start: int = 10, end: int | None = 15) -> PartitionProgress:
    progress = PartitionProgress()
    progress.begin(start, end)
    return progress


def test_commit_point_stops_at_the_first_unsettled_record() -> None:
    progress = _progress()
    for offset in (10, 11, 13, 14):
        progress.settle(offset, offset)
    assert progress.commit_point == 12 and not progress.complete
    progress.settle(12, 12)
    assert progress.commit_point == 15 and progress.complete


def test_spans_cover_gaps_in_offsets() -> None:
    # a transaction marker at 12: the record at 13 accounts for [12, 13]
    progress = _progress()
    progress.settle(10, 10)
    progress.settle(12, 13)
    assert progress.commit_point == 11
    progress.settle(11, 11)
    progress.settle(14, 14)
    assert progress.commit_point == 15


def test_settled_before_the_start_is_known_commits_nothing() -> None:
    progress = PartitionProgress()
    progress.settle(11, 11)  # arrived before the reader's begin event
    assert progress.commit_point is None and progress.due() is None
    progress.begin(10, None)
    assert progress.commit_point == 10  # 10 is not settled: nothing to commit
    assert progress.due() is None
    progress.settle(10, 10)
    assert progress.due() == 12


def test_commits_are_due_by_interval_count_or_completion() -> None:
    progress = _progress(0, 1000)
    progress.committed_to(0, now=100.0)
    progress.settle(0, 0)
    assert progress.should_commit(100.5, interval_s=2.0, every=3) is None
    assert progress.should_commit(102.0, interval_s=2.0, every=3) == 1
    for offset in (1, 2):
        progress.settle(offset, offset)
    assert progress.should_commit(100.5, interval_s=2.0, every=3) == 3
    assert progress.committed_to(3, now=100.5) == 3  # spans now covered by a commit
    assert progress.due() is None and progress.settled == {}


def test_a_completed_drain_commits_at_once() -> None:
    progress = _progress(0, 2)
    progress.committed_to(0, now=100.0)
    progress.settle(0, 0)
    progress.settle(1, 1)
    assert progress.should_commit(100.1, interval_s=60.0, every=1000) == 2


def test_a_follow_range_has_no_end_and_never_completes() -> None:
    progress = _progress(5, None)
    progress.settle(5, 5)
    assert progress.commit_point == 6 and not progress.complete


def test_limit_ranges_caps_bounded_ranges_in_partition_order() -> None:
    ranges = [PartitionRange("t", 1, 0, 5), PartitionRange("t", 0, 10, 14)]
    assert limit_ranges(ranges, 6) == [PartitionRange("t", 0, 10, 14), PartitionRange("t", 1, 0, 2)]
    assert limit_ranges(ranges, None) == ranges


def test_a_span_settled_twice_or_below_the_commit_counts_once() -> None:
    progress = _progress(0, 10)
    assert progress.settle(0, 2)
    assert not progress.settle(0, 2)  # a gap read again after a checkpoint, say
    progress.committed_to(3)
    assert not progress.settle(0, 2)  # below the commit: covered already
    assert progress.settle(3, 3)
