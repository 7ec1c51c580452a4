"""When a broker that does not answer stops being a blip, and when an outage is over."""

from __future__ import annotations

from kafka.errors import KafkaConnectionError, KafkaTimeoutError, TopicAuthorizationFailedError

from transforms.core.run.outage import QUIET_S, Outage
from transforms.kafka.client import broker_away


def test_an_outage_is_over_its_limit_only_while_calls_keep_failing() -> None:
    now = [0.0]
    outage = Outage(120, clock=lambda: now[0])
    assert outage.failed() and not outage.over
    for _ in range(130):
        now[0] += 1
        assert not outage.failed()
    assert outage.over and outage.ongoing
    assert outage.recovered() and not outage.over and not outage.ongoing


def test_a_failure_long_after_the_last_one_starts_a_new_outage() -> None:
    # a caller that saw the end of one outage fail and was not called again since
    now = [0.0]
    outage = Outage(120, clock=lambda: now[0])
    outage.failed()
    now[0] = 500.0
    assert outage.failed() and not outage.over
    now[0] += QUIET_S / 2
    assert not outage.failed() and not outage.over


def test_only_broker_trouble_is_retried() -> None:
    assert broker_away(KafkaConnectionError("111 ECONNREFUSED"))
    assert broker_away(KafkaTimeoutError("Unable to bootstrap"))
    assert broker_away(ConnectionResetError())
    assert not broker_away(TopicAuthorizationFailedError())
    assert not broker_away(ValueError("a defect"))
