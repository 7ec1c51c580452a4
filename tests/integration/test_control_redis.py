"""Stop, halt and pause through Redis (``coordination: {backend: redis}``), as the workers
of one run on different hosts see them: each process its own client on the real Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from tests.integration.conftest import closed_port_url
from transforms.coordination.control_channel import RedisChannel, redis_channel
from transforms.core.config.coordination import CoordinationSpec
from transforms.core.run.control import RunControl


@pytest.fixture(autouse=True)
def _forget(redis_url: str) -> Iterator[None]:
    """Remove the runs' control keys this test wrote (namespace ``it-control``)."""
    yield
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter("llm_enrich:coord:it-control:*"):
        client.delete(key)


def _process(redis_url: str, run_id: str) -> RunControl:
    channel = RedisChannel(
        redis_url, password=None, namespace="it-control", run_id=run_id, timeout_s=2
    )
    control = RunControl(channel)
    control.look_now()
    return control


def test_signals_reach_every_process_of_the_run_and_no_other(redis_url: str) -> None:
    run = uuid.uuid4().hex
    launcher, reader, enricher = (_process(redis_url, run) for _ in range(3))
    other_run = _process(redis_url, uuid.uuid4().hex)

    enricher.set_paused(True)  # every provider down, seen by one worker
    reader.look_now()
    assert reader.paused() and not reader.stop_requested()
    enricher.set_paused(False)
    reader.look_now()
    assert not reader.paused()

    enricher.halt("systemic: every provider failed: fault: authentication failed (401)")
    _process(redis_url, run).halt("systemic: second")  # a later worker: the first one wins
    for control in (launcher, reader):
        control.look_now()
        assert control.stop_requested()
        assert control.halted() == (
            "systemic: every provider failed: fault: authentication failed (401)"
        )
    other_run.look_now()
    assert not other_run.stop_requested() and other_run.halted() is None


def test_a_stop_from_the_launcher_is_not_a_halt(redis_url: str) -> None:
    run = uuid.uuid4().hex
    launcher, reader = _process(redis_url, run), _process(redis_url, run)
    launcher.request_stop()
    reader.look_now()
    assert reader.stop_requested() and reader.halted() is None


def test_a_redis_that_does_not_answer_is_no_signal_and_no_crash(redis_url: str) -> None:
    url = closed_port_url().replace("http://", "redis://").removesuffix("/v1") + "/0"
    channel = RedisChannel(url, password=None, namespace="it-control", run_id="x", timeout_s=1)
    control = RunControl(channel)
    control.request_stop()  # still stops this process
    assert control.stop_requested() and control.halted() is None


def test_only_a_redis_coordination_makes_a_channel(redis_url: str) -> None:
    assert redis_channel(CoordinationSpec(), "task", "run") is None
    channel = redis_channel(CoordinationSpec(backend="redis", url=redis_url), "task", "run")
    assert channel is not None and channel.key == "llm_enrich:coord:task:run:run:control"
