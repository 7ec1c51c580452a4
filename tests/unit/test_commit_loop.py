"""The commit loop: commits what the ledger says is due, rides out a broker that does not
answer, and stops the run only when that lasts ``outage_s``."""

from __future__ import annotations

from collections import Counter

from kafka.errors import KafkaConnectionError

from transforms.core.run.ledger import SettleLedger
from transforms.kafka.commit_loop import CommitLoop


class Broker:
    def __init__(self) -> None:
        self.up = True
        self.committed: dict[tuple[str, int], int] = {}

    def commit(self, topic: str, partition: int, offset: int) -> bool:
        if not self.up:
            raise KafkaConnectionError("111 ECONNREFUSED")
        self.committed[(topic, partition)] = offset
        return True


def _loop(broker: Broker, clock: list[float], halts: list[str], counts: Counter[str]) -> CommitLoop:
    ledger = SettleLedger()
    ledger.begin(("t", 0), 0, None)
    for offset in range(3):
        ledger.settle(("t", 0), (offset, offset))
    loop = CommitLoop(
        ledger,
        broker.commit,
        count=lambda name, n: counts.update({name: n}),
        halt=halts.append,
        outage_s=120,
        clock=lambda: clock[0],
    )
    return loop


def test_commits_go_through_and_are_counted() -> None:
    broker, halts, counts = Broker(), [], Counter[str]()
    loop = _loop(broker, [0.0], halts, counts)
    assert loop.commit_now()
    assert broker.committed == {("t", 0): 3}
    assert counts == {"commits": 1, "commit.spans_committed": 3} and not halts


def test_a_broker_restart_is_retried_not_fatal() -> None:
    broker, clock, halts, counts = Broker(), [0.0], [], Counter[str]()
    loop = _loop(broker, clock, halts, counts)
    broker.up = False
    assert not loop.commit_now()
    clock[0] = 60.0
    assert not loop.commit_now() and not halts
    broker.up = True
    assert loop.commit_now() and broker.committed == {("t", 0): 3} and not halts


def test_a_broker_away_for_longer_than_the_outage_limit_stops_the_run() -> None:
    broker, clock, halts, counts = Broker(), [0.0], [], Counter[str]()
    loop = _loop(broker, clock, halts, counts)
    broker.up = False
    naps: list[float] = []

    def sleep(seconds: float) -> None:
        naps.append(seconds)
        clock[0] += seconds * 30  # the broker stays away

    assert not loop.commit_all(sleep=sleep)
    assert clock[0] > 120 and naps
    assert len(halts) == 1 and halts[0].startswith("systemic: cannot commit offsets for 120 s")
    assert "ECONNREFUSED" in halts[0] and not broker.committed
