"""ProviderClient against the fault server: retries, waits, breaker, redaction.
Sleep is injected, so a 7-second Retry-After costs nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fault_server import FaultServer, Reply
from transforms.core.calls.providers import CallFailed, ProviderClient
from transforms.core.config.task import GenerationSpec, PolicySpec, ProviderSpec
from transforms.llm.connect import connect

SCHEMA = {
    "type": "object",
    "properties": {"rating": {"type": "integer"}},
    "required": ["rating"],
    "additionalProperties": False,
}
MESSAGES = [{"role": "user", "content": "Rate: fine"}]


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as running:
        yield running


def _client(server: FaultServer, slept: list[float], **policy: Any) -> ProviderClient:
    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    spec = ProviderSpec(
        name="p",
        base_url=server.base_url,
        model="m",
        timeout_s=0.5,
        api_key_env=policy.pop("api_key_env", None),
    )
    return connect(spec, GenerationSpec(), PolicySpec(**policy), sleep=sleep)


def _complete(client: ProviderClient) -> Any:
    async def go() -> Any:
        try:
            return await client.complete(MESSAGES, SCHEMA, kind="call")
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_retry_after_is_honoured_through_the_injected_sleep(server: FaultServer) -> None:
    replies = [Reply.status(429, headers={"retry-after": "7"}), Reply.ok()]
    server.set_script(lambda index, body: replies[min(index, 1)])
    slept: list[float] = []
    completion = _complete(_client(server, slept, attempts_per_provider=3))
    assert slept == [7.0]
    assert [a.status for a in completion.attempts] == [429, 200]


def test_retry_after_beyond_the_cap_means_unavailable_and_opens_the_circuit(
    server: FaultServer,
) -> None:
    server.set_default(Reply.status(429, headers={"retry-after": "120"}))
    slept: list[float] = []
    client = _client(server, slept, attempts_per_provider=3, max_retry_after_s=30)
    with pytest.raises(CallFailed) as failed:
        _complete(client)
    assert slept == [] and server.stats.requests == 1
    assert "ProviderUnavailable" in str(failed.value) and failed.value.attempts[0].status == 429
    assert client.breaker.state == "open"


def test_transient_errors_back_off_then_give_up(server: FaultServer) -> None:
    server.set_default(Reply.status(503))
    slept: list[float] = []
    with pytest.raises(CallFailed) as failed:
        _complete(
            _client(server, slept, attempts_per_provider=3, backoff_initial_s=1, backoff_max_s=5)
        )
    assert len(slept) == 2 and all(0 < s <= 5 for s in slept)
    assert [a.status for a in failed.value.attempts] == [503, 503, 503]


@pytest.mark.parametrize("reply", [Reply.hang(2), Reply.reset()])
def test_timeouts_and_resets_are_retried(server: FaultServer, reply: Any) -> None:
    server.set_script(lambda index, body: reply if index == 0 else Reply.ok())
    completion = _complete(_client(server, [], attempts_per_provider=2))
    assert completion.attempts[0].status is None and "transient" in completion.attempts[0].error
    assert completion.attempts[1].status == 200


@pytest.mark.parametrize("code", [400, 401, 403, 404, 422])
def test_final_statuses_are_not_retried(server: FaultServer, code: int) -> None:
    server.set_default(Reply.status(code))
    with pytest.raises(CallFailed):
        _complete(_client(server, [], attempts_per_provider=3))
    assert server.stats.requests == 1


def test_the_api_key_never_appears_in_recorded_errors(
    server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-test-9f8e7d6c5b4a39281706"
    monkeypatch.setenv("FAULT_KEY", secret)
    server.set_default(Reply.status(401, body=f"Incorrect API key provided: {secret}"))
    with pytest.raises(CallFailed) as failed:
        _complete(_client(server, [], api_key_env="FAULT_KEY"))
    recorded = " ".join(a.error or "" for a in failed.value.attempts) + str(failed.value)
    assert "Incorrect API key provided: ***" in recorded
    assert secret not in recorded and secret[:8] not in recorded


def test_missing_api_key_variable_is_a_config_error(server: FaultServer) -> None:
    from transforms.core.errors import TaskConfigError

    with pytest.raises(TaskConfigError, match="environment variable NOPE_KEY is not set"):
        _client(server, [], api_key_env="NOPE_KEY")


def test_requests_per_minute_are_paced_with_the_injected_clock(server: FaultServer) -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    spec = ProviderSpec(name="p", base_url=server.base_url, model="m", rpm=3)
    client = connect(spec, GenerationSpec(), PolicySpec(), sleep=sleep, clock=lambda: now[0])

    async def go() -> None:
        for _ in range(4):
            await client.complete(MESSAGES, SCHEMA, kind="call")
        await client.aclose()

    asyncio.run(go())
    assert server.stats.requests == 4
    assert slept == [pytest.approx(20.0)]  # the 4th of 3/minute waits a third of a minute


def test_context_length_error_does_not_count_against_the_provider(server: FaultServer) -> None:
    server.set_default(Reply.context_length_exceeded())
    client = _client(server, [], attempts_per_provider=3, circuit_failure_threshold=1)
    with pytest.raises(CallFailed) as failed:
        _complete(client)
    assert server.stats.requests == 1  # not retried
    assert "(fallback)" in (failed.value.attempts[0].error or "")
    assert client.breaker.state == "closed"


def test_a_request_specific_422_does_not_open_the_circuit(server: FaultServer) -> None:
    server.set_default(Reply.status(422))
    client = _client(server, [], circuit_failure_threshold=1)
    with pytest.raises(CallFailed):
        _complete(client)
    assert client.breaker.state == "closed"
    server.set_default(Reply.status(401))
    client = _client(server, [], circuit_failure_threshold=1)
    with pytest.raises(CallFailed):
        _complete(client)
    assert client.breaker.state == "open"  # a bad key: the provider is unusable


def test_the_request_body_is_unchanged_unless_a_shared_call_raises_max_tokens(
    server: FaultServer,
) -> None:
    """``prompt.records_per_call: 1`` sends the bytes it always sent; a pack only raises
    max_tokens."""
    client = _client(server, [])
    expected = (
        '{"model":"m","temperature":0.0,"seed":42,"max_tokens":512,"response_format":'
        '{"type":"json_schema","json_schema":{"name":"answer","strict":true,"schema":'
        '{"type":"object","properties":{"rating":{"type":"integer"}},"required":["rating"],'
        '"additionalProperties":false}}},"messages":[{"role":"user","content":"Rate: fine"}]}'
    )
    assert client.requests.body(MESSAGES, SCHEMA) == expected.encode()
    assert client.requests.body(MESSAGES, SCHEMA, None) == expected.encode()
    raised = expected.replace('"max_tokens":512', '"max_tokens":2720').encode()
    assert client.requests.body(MESSAGES, SCHEMA, 2720) == raised
    assert client.requests.body(MESSAGES, SCHEMA) == expected.encode()  # each head kept apart

    async def go() -> None:
        try:
            await client.complete(MESSAGES, SCHEMA, kind="call")
            await client.complete(MESSAGES, SCHEMA, kind="call", max_tokens=2720)
        finally:
            await client.aclose()

    asyncio.run(go())
    assert [b["max_tokens"] for b in server.stats.bodies] == [512, 2720]
