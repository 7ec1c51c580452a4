"""The billing server reports cached tokens the way OpenAI documents them and bills what
it answered (real HTTP, through the openai SDK)."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import openai
import pytest

from tests.billing_server import BillingServer, Prices, prompt_tokens_of, resource_unavailable
from tests.fault_server import Reply

PRICES = Prices(prompt=2.0, cached_prompt=0.5, completion=8.0, flex_discount=0.5)
LONG = "Instructions that every request repeats. " * 120  # ~1,200 tokens


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _ask(server: BillingServer, record: str, **extra: Any) -> Any:
    client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
    try:
        return client.chat.completions.create(
            model="m",
            messages=[{"role": "system", "content": LONG}, {"role": "user", "content": record}],
            **extra,
        )
    finally:
        client.close()


def test_a_repeated_long_prefix_is_cached_in_128_token_blocks() -> None:
    with BillingServer(PRICES) as server:
        first = _ask(server, "first record").usage
        second = _ask(server, "second record, a different one").usage
    assert first.prompt_tokens_details.cached_tokens == 0  # nothing seen before
    cached = second.prompt_tokens_details.cached_tokens
    assert cached >= 1024 and cached % 128 == 0
    # the shared part ends inside the record's turn: everything before it, in whole blocks
    shared_chars = len("system:" + LONG + "\nuser:")
    assert cached == (shared_chars // 4) // 128 * 128
    assert second.prompt_tokens > cached
    bills = server.billing
    assert [(b.prompt_tokens, b.cached_tokens) for b in bills] == [
        (first.prompt_tokens, 0),
        (second.prompt_tokens, cached),
    ]
    expected = (
        (second.prompt_tokens - cached) * 2.0 + cached * 0.5 + second.completion_tokens * 8.0
    ) / 1e6
    assert bills[1].usd == pytest.approx(expected)


def test_prompts_under_1024_tokens_are_never_cached() -> None:
    with BillingServer(PRICES) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
        short = [{"role": "system", "content": "Short. " * 100}, {"role": "user", "content": "x"}]
        for _ in range(3):
            client.chat.completions.create(model="m", messages=short)  # type: ignore[arg-type]
        client.close()
        assert [b.cached_tokens for b in server.billing] == [0, 0, 0]
        assert server.billing[0].prompt_tokens == prompt_tokens_of({"messages": short}) < 1024


def test_overflow_past_the_rate_lands_on_a_cold_machine_and_a_key_routes() -> None:
    clock = Clock()
    with BillingServer(PRICES, machines=2, overflow_rpm=2, clock=clock) as server:
        for n in range(3):
            _ask(server, f"record {n}")
        hot = server.billing[0].machine
        assert [b.machine for b in server.billing] == [hot, hot, 1 - hot]
        assert [b.cached_tokens > 0 for b in server.billing] == [False, True, False]
        clock.now = 61.0  # a minute later the rate is back under the limit
        _ask(server, "record 4")
        assert server.billing[-1].machine == hot and server.billing[-1].cached_tokens > 0
        # another key is another route (its own rate; here, by its hash, maybe another machine)
        keys = {_route_of(server, f"key-{n}") for n in range(8)}
        assert keys == {0, 1}


def _route_of(server: BillingServer, key: str) -> int:
    _ask(server, "probe", extra_body={"prompt_cache_key": key})
    return server.billing[-1].machine


def test_flex_is_billed_at_its_discount_and_unavailability_is_not_billed() -> None:
    unavailable = {1}
    faults = lambda index, body: resource_unavailable() if index in unavailable else None  # noqa: E731
    with BillingServer(PRICES, faults=faults) as server:
        answer = _ask(server, "r", service_tier="flex")
        assert answer.service_tier == "flex"
        with pytest.raises(openai.RateLimitError) as refused:
            _ask(server, "r", service_tier="flex")
        assert "Resource unavailable" in str(refused.value)
        bills = server.billing
        assert len(bills) == 1 and bills[0].service_tier == "flex"
        full = (bills[0].prompt_tokens * 2.0 + bills[0].completion_tokens * 8.0) / 1e6
        assert bills[0].usd == pytest.approx(full / 2)
        invoice = json.loads(urllib.request.urlopen(server.base_url[:-3] + "/billing").read())
        assert invoice["calls"] == 1 and invoice["usd"] == pytest.approx(bills[0].usd)


def test_a_scripted_answer_is_billed_and_errors_are_not() -> None:
    script = [Reply.status(503), Reply.ok(content='{"a": 1}'), None]
    with BillingServer(PRICES, faults=lambda index, body: script[index], reasoning_tokens=64) as s:
        with pytest.raises(openai.InternalServerError):
            _ask(s, "r")
        scripted = _ask(s, "r")
        assert scripted.choices[0].message.content == '{"a": 1}'
        usage = scripted.usage
        assert usage.completion_tokens_details.reasoning_tokens == 64
        assert usage.completion_tokens == 2 + 64  # '{"a": 1}' is 8 characters: 2 tokens
        _ask(s, "r")
        assert [b.index for b in s.billing] == [1, 2]
