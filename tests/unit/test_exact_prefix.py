"""``prefix_cache: exact``: the fixed-prefix request built from a record's request, and the
order of requests ``ExactPrefix`` sends (warm-up once, then reset + record per record; a
record that did not reuse exactly the prefix is asked again after a new warm-up). The real
server's side is ``tests/integration/test_prefix_cache.py``."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from transforms.llm import chat_http
from transforms.llm.chat_http import ExactPrefix, fixed_prefix_body

FEW_SHOT = [
    {"role": "system", "content": "Tag reviews."},
    {"role": "user", "content": "Review: great"},
    {"role": "assistant", "content": '{"rating": 5}'},
]
REQUEST: dict[str, Any] = {
    "model": "smollm2-135m",
    "temperature": 0,
    "seed": 42,
    "max_tokens": 160,
    "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
    "messages": [*FEW_SHOT, {"role": "user", "content": "Review: awful"}],
}


def test_the_fixed_prefix_request_empties_the_last_user_turn_and_asks_for_one_token() -> None:
    body = fixed_prefix_body(REQUEST, cache_prompt=True)
    assert body is not None
    assert json.loads(body) == {
        "model": "smollm2-135m",
        "temperature": 0,
        "seed": 42,
        "messages": [*FEW_SHOT, {"role": "user", "content": ""}],
        "max_tokens": 1,
        "cache_prompt": True,
    }
    warm = fixed_prefix_body(REQUEST, cache_prompt=False)
    assert warm is not None and json.loads(warm)["cache_prompt"] is False
    # the same for every record: only the last user turn differs between records
    other = {**REQUEST, "messages": [*FEW_SHOT, {"role": "user", "content": "Review: ok"}]}
    assert fixed_prefix_body(other, cache_prompt=True) == body


@pytest.mark.parametrize(
    "messages",
    [[], [*FEW_SHOT[:2], {"role": "assistant", "content": "{"}], "not a list"],
)
def test_no_fixed_prefix_without_a_last_user_turn(messages: Any) -> None:
    assert fixed_prefix_body({**REQUEST, "messages": messages}, cache_prompt=True) is None


class FakeServer:
    """Records what was posted; answers with ``timings.cache_n`` from ``reused``."""

    def __init__(self, reused: list[int]) -> None:
        self.posted: list[dict[str, Any]] = []
        self._reused = reused

    async def post(self, body: bytes) -> bytes:
        request = json.loads(body)
        self.posted.append(request)
        cache_n = self._reused.pop(0) if request["max_tokens"] != 1 else 0
        return json.dumps({"choices": [], "timings": {"cache_n": cache_n}}).encode()


def _kinds(posted: list[dict[str, Any]]) -> list[str]:
    def kind(request: dict[str, Any]) -> str:
        if request["max_tokens"] == 1:
            return "reset" if request["cache_prompt"] else "warm-up"
        assert request["cache_prompt"] is True and "response_format" in request
        return "record"

    return [kind(r) for r in posted]


def _record(text: str) -> bytes:
    return json.dumps(
        {**REQUEST, "messages": [*FEW_SHOT, {"role": "user", "content": text}]}
    ).encode()


@pytest.fixture(autouse=True)
def fresh_slots(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chat_http, "_SLOTS", {})


def test_one_warm_up_then_a_reset_before_every_record() -> None:
    server = FakeServer(reused=[539, 539, 539])
    prefix = ExactPrefix("http://llm/v1/chat/completions", server.post)

    async def run() -> None:
        await asyncio.gather(*(prefix.create(_record(t)) for t in ("a", "b", "c")))

    asyncio.run(run())
    assert _kinds(server.posted) == ["warm-up"] + ["reset", "record"] * 3


def test_endpoints_of_one_server_share_the_warm_up() -> None:
    server = FakeServer(reused=[539, 539])
    url = "http://llm/v1/chat/completions"
    asyncio.run(ExactPrefix(url, server.post).create(_record("a")))
    asyncio.run(ExactPrefix(url, server.post).create(_record("b")))
    assert _kinds(server.posted) == ["warm-up", "reset", "record", "reset", "record"]


def test_a_record_that_did_not_reuse_exactly_the_prefix_is_asked_again_after_a_warm_up() -> None:
    server = FakeServer(reused=[539, 20, 539])  # someone else used the slot in between
    prefix = ExactPrefix("http://llm/v1/chat/completions", server.post)

    async def run() -> None:
        await prefix.create(_record("a"))
        await prefix.create(_record("b"))

    asyncio.run(run())
    assert _kinds(server.posted) == [
        "warm-up", "reset", "record",
        "reset", "record", "warm-up", "reset", "record",
    ]  # fmt: skip


def test_a_failed_request_makes_the_next_record_warm_up_again() -> None:
    server = FakeServer(reused=[539, 539])
    calls = 0

    async def flaky(body: bytes) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 3:  # the first record's request
            raise ConnectionError("lost")
        return await server.post(body)

    prefix = ExactPrefix("http://llm/v1/chat/completions", flaky)
    with pytest.raises(ConnectionError):
        asyncio.run(prefix.create(_record("a")))
    asyncio.run(prefix.create(_record("b")))
    assert _kinds(server.posted) == ["warm-up", "reset", "warm-up", "reset", "record"]
