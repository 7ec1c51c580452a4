"""The ledger a fused run settles into: chains per partition, in any settle order, from any
thread; what is due to commit, and what a commit lets it forget."""

from __future__ import annotations

import random
import threading

from transforms.core.run.ledger import Due, SettleLedger

P0, P1 = ("t", 0), ("t", 1)


def test_only_the_chain_from_the_start_is_due() -> None:
    ledger = SettleLedger()
    ledger.begin(P0, 10, 20)
    for offset in (10, 11, 13):
        assert ledger.settle(P0, (offset, offset))
    assert ledger.due(0.0, 1.0, 100, final=True) == [Due(P0, 12)]
    assert not ledger.settle(P0, (11, 11))  # known already


def test_interval_count_and_completion_decide_when_a_commit_is_due() -> None:
    ledger = SettleLedger()
    ledger.begin(P0, 0, None)
    ledger.begin(P1, 0, 2)
    ledger.settle(P0, (0, 0))
    ledger.settle(P1, (0, 0))
    assert ledger.due(now=0.5, interval_s=1.0, every=100) == []  # nothing ripe yet
    ledger.settle(P1, (1, 1))  # P1's drained range is complete: due at once
    assert ledger.due(now=0.5, interval_s=1.0, every=100) == [Due(P1, 2)]
    assert ledger.due(now=1.5, interval_s=1.0, every=100) == [Due(P0, 1), Due(P1, 2)]


def test_a_commit_forgets_what_it_covers_and_is_not_due_again() -> None:
    ledger = SettleLedger()
    ledger.begin(P0, 0, None)
    for offset in range(5):
        ledger.settle(P0, (offset, offset))
    assert ledger.committed(Due(P0, 5), now=1.0) == 5
    assert ledger.uncommitted() == 0 and ledger.due(9.0, 1.0, 100, final=True) == []
    assert ledger.committed(Due(P0, 5), now=2.0) == 0  # a second committer: nothing more
    assert not ledger.settle(P0, (3, 3))  # below the commit


def test_settling_from_many_threads_in_any_order_leaves_no_hole() -> None:
    ledger = SettleLedger()
    ledger.begin(P0, 0, 4000)
    offsets = list(range(4000))
    random.Random(7).shuffle(offsets)

    def settle(part: list[int]) -> None:
        for offset in part:
            ledger.settle(P0, (offset, offset))

    threads = [threading.Thread(target=settle, args=(offsets[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ledger.due(0.0, 1.0, 100) == [Due(P0, 4000)]
