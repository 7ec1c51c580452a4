"""The cost ledger's core: usage as providers report it, prices per lane, per-record sums,
and shares of a call several records used. Then the provider client recording it from a
real HTTP answer (the fault server), and the request layout that lets prefix caches hit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from openai.types.completion_usage import CompletionUsage

from pipelines.summary import RunSummary
from tests.conftest import EXAMPLE_TASK
from tests.fault_server import FaultServer, Reply
from transforms.core.calls.providers import ProviderClient
from transforms.core.config.task import (
    GenerationSpec,
    PolicySpec,
    PricingSpec,
    ProviderSpec,
    load_task,
)
from transforms.core.errors import Attempt
from transforms.core.job import compile_job
from transforms.core.ledger.prices import call_cost_usd, served_lane
from transforms.core.ledger.record import RecordUsage, split_attempt
from transforms.core.ledger.usage import Usage, apportion_counts, reported_usage
from transforms.llm.chat_http import ChatEndpoint
from transforms.llm.connect import connect

PRICES = PricingSpec(
    prompt_per_million=2.0, cached_prompt_per_million=0.5, completion_per_million=8.0
)


def test_usage_is_read_from_the_sdk_type_and_from_a_plain_dict_alike() -> None:
    typed = CompletionUsage.model_validate(
        {
            "prompt_tokens": 2048,
            "completion_tokens": 300,
            "total_tokens": 2348,
            "prompt_tokens_details": {"cached_tokens": 1920},
            "completion_tokens_details": {"reasoning_tokens": 256},
        }
    )
    expected = Usage(2048, 1920, 300, 256)
    assert reported_usage(typed, 99, "ignored") == expected
    assert reported_usage(typed.model_dump(), 99, "ignored") == expected
    assert expected.uncached_tokens == 128 and expected.total_tokens == 2348


def test_usage_without_details_has_no_cached_or_reasoning_tokens() -> None:
    assert reported_usage({"prompt_tokens": 10, "completion_tokens": 3}, 0, "") == Usage(10, 0, 3)
    # a null detail object and nonsense counts read as none, never as a crash
    odd = {"prompt_tokens": 10, "completion_tokens": -1, "prompt_tokens_details": None}
    assert reported_usage(odd, 0, "") == Usage(10, 0, 0)


def test_counts_beyond_their_total_are_capped() -> None:
    usage = {
        "prompt_tokens": 100,
        "completion_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 500},
        "completion_tokens_details": {"reasoning_tokens": 9},
    }
    assert reported_usage(usage, 0, "") == Usage(100, 100, 5, 5)


@pytest.mark.parametrize("usage", [None, {}, {"completion_tokens": 4}, {"prompt_tokens": "12"}])
def test_no_usage_is_estimated_and_says_so(usage: Any) -> None:
    estimated = reported_usage(usage, 321, "x" * 40)
    assert estimated == Usage(321, 0, 10, 0, estimated=True)


def test_the_cached_price_applies_to_cached_tokens_only() -> None:
    usage = Usage(prompt_tokens=2048, cached_tokens=1024, completion_tokens=100)
    expected = (1024 * 2.0 + 1024 * 0.5 + 100 * 8.0) / 1e6
    assert call_cost_usd(usage, PRICES) == pytest.approx(expected)
    # no cached price: cached tokens cost as much as any prompt token (the old behaviour)
    plain = PricingSpec(prompt_per_million=2.0, completion_per_million=8.0)
    assert call_cost_usd(usage, plain) == pytest.approx((2048 * 2.0 + 100 * 8.0) / 1e6)
    assert call_cost_usd(usage, None) == 0.0


def test_batch_and_flex_discounts_apply_to_the_whole_call() -> None:
    usage = Usage(prompt_tokens=2048, cached_tokens=1024, completion_tokens=100)
    full = call_cost_usd(usage, PRICES)
    prices = PRICES.model_copy(update={"batch_discount": 0.5, "flex_discount": 0.4})
    assert call_cost_usd(usage, prices, "batch") == pytest.approx(full * 0.5)
    assert call_cost_usd(usage, prices, "flex") == pytest.approx(full * 0.6)
    assert call_cost_usd(usage, prices, "sync") == pytest.approx(full)


def test_the_lane_is_the_one_the_answer_says_it_was_served_in() -> None:
    assert served_lane("flex", "flex") == "flex"
    assert served_lane("flex", "default") == "sync"  # flex asked, served at the default tier
    assert served_lane("sync", "flex") == "flex"
    assert served_lane("flex", None) == "flex"  # not said: as asked
    assert served_lane("batch", "default") == "batch"


def test_a_record_sums_every_attempt_with_cached_and_reasoning_apart() -> None:
    attempts = [
        Attempt("a", "m", status=429, error="RateLimitError"),
        Attempt("a", "m", status=200, prompt_tokens=1200, cached_tokens=1024, cost_usd=0.001),
        Attempt(
            "a",
            "m",
            "reask",
            status=200,
            prompt_tokens=1400,
            cached_tokens=1152,
            completion_tokens=50,
            reasoning_tokens=20,
            cost_usd=0.002,
        ),
        Attempt("b", "n", status=200, prompt_tokens=300, completion_tokens=9, usage_estimated=True),
    ]
    total = RecordUsage.of(attempts)
    assert total == RecordUsage(4, 2900, 2176, 59, 20, pytest.approx(0.003), 1)  # type: ignore[arg-type]
    assert total.uncached_tokens == 724
    assert total.cache_hit_share == pytest.approx(2176 / 2900)
    header = json.loads(total.header())
    assert header["cached_prompt_tokens"] == 2176 and header["estimated_calls"] == 1
    assert RecordUsage.from_json(header) == RecordUsage(4, 2900, 2176, 59, 20, 0.003, 1)
    # a header written before the ledger (three fields) still reads
    old = RecordUsage.from_json({"prompt_tokens": 5, "completion_tokens": 2, "cost_usd": 0.5})
    assert (old.prompt_tokens, old.cached_tokens, old.cost_usd) == (5, 0, 0.5)
    assert RecordUsage.of([]).cache_hit_share == 0.0


@pytest.mark.parametrize(
    ("total", "weights"),
    [(10, [1, 1, 1]), (1000, [3, 1, 1, 5]), (7, [0, 0]), (0, [2, 1]), (5, [1])],
)
def test_apportioned_counts_add_up_to_the_call(total: int, weights: list[float]) -> None:
    counts = apportion_counts(total, weights)
    assert sum(counts) == total and len(counts) == len(weights)
    assert max(counts) - min(counts) <= total  # sanity
    if len(set(weights)) == 1:
        assert max(counts) - min(counts) <= 1


def test_a_shared_call_splits_into_shares_that_sum_to_it() -> None:
    call = Attempt(
        "a",
        "m",
        status=200,
        prompt_tokens=2003,
        cached_tokens=1024,
        completion_tokens=401,
        reasoning_tokens=7,
        cost_usd=0.0123,
    )
    shares = split_attempt(call, [1, 2, 1])
    assert [s.shared_by for s in shares] == [3, 3, 3]
    for name in ("prompt_tokens", "cached_tokens", "completion_tokens", "reasoning_tokens"):
        assert sum(getattr(s, name) for s in shares) == getattr(call, name)
    assert sum(s.cost_usd for s in shares) == pytest.approx(call.cost_usd, abs=1e-15)
    assert shares[1].prompt_tokens > shares[0].prompt_tokens
    assert split_attempt(call, []) == []


# --------------------------------------------------------------------------- the client


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as running:
        yield running


def _complete(spec: ProviderSpec, messages: list[dict[str, str]]) -> Any:
    client = connect(spec, GenerationSpec(), PolicySpec(attempts_per_provider=1))

    async def go() -> Any:
        try:
            return await client.complete(messages, {"type": "object"}, kind="call")
        finally:
            await client.aclose()

    return asyncio.run(go())


def _spec(server: FaultServer, **extra: Any) -> ProviderSpec:
    return ProviderSpec(name="p", base_url=server.base_url, model="m", pricing=PRICES, **extra)


def test_the_client_records_cached_and_reasoning_tokens_and_prices_them(
    server: FaultServer,
) -> None:
    server.set_default(
        Reply.ok(prompt_tokens=1500, completion_tokens=40, cached_tokens=1280, reasoning_tokens=16)
    )
    attempt = _complete(_spec(server), [{"role": "user", "content": "hi"}]).attempts[0]
    assert (attempt.prompt_tokens, attempt.cached_tokens) == (1500, 1280)
    assert (attempt.completion_tokens, attempt.reasoning_tokens) == (40, 16)
    assert not attempt.usage_estimated and attempt.lane == "sync"
    assert attempt.cost_usd == pytest.approx((220 * 2.0 + 1280 * 0.5 + 40 * 8.0) / 1e6)


def test_an_answer_without_usage_is_counted_by_an_estimate(server: FaultServer) -> None:
    server.set_default(Reply.ok(content='{"a": "12345678"}', usage=False))
    messages = [{"role": "user", "content": "x" * 400}]
    attempt = _complete(_spec(server), messages).attempts[0]
    assert attempt.usage_estimated
    assert attempt.prompt_tokens == 104 and attempt.completion_tokens == 5  # ~4 chars a token
    assert attempt.cost_usd == pytest.approx((104 * 2.0 + 5 * 8.0) / 1e6)


def test_flex_is_asked_for_and_priced_as_the_answer_says(server: FaultServer) -> None:
    server.set_default(Reply.ok(prompt_tokens=1000, completion_tokens=0, service_tier="flex"))
    done = _complete(_spec(server, service_tier="flex"), [{"role": "user", "content": "hi"}])
    assert server.stats.bodies[0]["service_tier"] == "flex"
    assert done.attempts[0].lane == "flex"
    assert done.attempts[0].cost_usd == pytest.approx(1000 * 2.0 / 1e6 * 0.5)
    server.set_default(Reply.ok(prompt_tokens=1000, completion_tokens=0, service_tier="default"))
    done = _complete(_spec(server, service_tier="flex"), [{"role": "user", "content": "hi"}])
    assert done.attempts[0].lane == "sync"  # served at the default tier: the default price
    assert done.attempts[0].cost_usd == pytest.approx(1000 * 2.0 / 1e6)


class Recording:
    """The real HTTP endpoint, keeping the bytes of every body it sends."""

    def __init__(self, endpoint: ChatEndpoint) -> None:
        self.endpoint, self.sent = endpoint, list[bytes]()

    async def create(self, body: bytes) -> Any:
        self.sent.append(body)
        return await self.endpoint.create(body)

    async def aclose(self) -> None:
        await self.endpoint.aclose()


def test_every_request_starts_with_the_same_bytes_up_to_the_record(server: FaultServer) -> None:
    """Two records' requests: everything that does not change per record (model,
    parameters, prompt_cache_key, response format, system message, few shots) comes first
    and is byte-identical; they differ only from the record's own turn on."""
    job = compile_job(load_task(EXAMPLE_TASK))
    server.set_default(Reply.ok())
    spec = _spec(server, prompt_cache_key="reviews-v1", service_tier="flex")
    records = [
        {"review_id": "r1", "product": "Lamp", "text": "Bright.", "submitted_at": 0},
        {"review_id": "r2", "product": "Lamp", "text": "Dim.", "submitted_at": 1},
    ]
    wire = Recording(ChatEndpoint(spec.base_url, "", 5.0, 2))
    client = ProviderClient(spec, job.task.generation, PolicySpec(), wire)

    async def go() -> None:
        try:
            for record in records:
                messages = job.prompt.messages(record)
                await client.complete(messages, job.shape.json_schema, kind="call")
        finally:
            await client.aclose()

    asyncio.run(go())
    first, second = wire.sent
    common = next(i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b)
    # the two differ first inside the record's own (last) user turn, never before it
    record_turn = first.rindex(b'{"role":"user"')
    assert record_turn < common < len(first)
    assert first[:record_turn] == second[:record_turn]
    sent = json.loads(first)
    assert list(sent)[-1] == "messages"  # the messages come last, the record last of them
    assert (sent["prompt_cache_key"], sent["service_tier"]) == ("reviews-v1", "flex")
    prefix = first[:record_turn]
    fixed = json.dumps(sent["response_format"], separators=(",", ":")).encode()
    assert fixed in prefix
    for message in sent["messages"][:-1]:  # system and few shots
        assert json.dumps(message, separators=(",", ":")).encode() in prefix
    assert "Dim." in server.stats.bodies[1]["messages"][-1]["content"]


def test_the_summary_shows_cached_and_reasoning_tokens_and_flags_estimates() -> None:
    counters = {
        "prompt_tokens": 4000,
        "cached_prompt_tokens": 3072,
        "completion_tokens": 300,
        "reasoning_tokens": 64,
        "cost_micro_usd": 1234,
    }
    lines = RunSummary(counters).lines()
    assert (
        "tokens              prompt 4000 (cached 3072, cache-hit share 76.8%), completion 300 "
        "(reasoning 64)" in lines
    )
    assert not any(line.startswith("usage estimated") for line in lines)
    estimated = RunSummary({**counters, "usage_estimated_calls": 2}).lines()
    assert any(line.startswith("usage estimated     2 calls") for line in estimated)
    assert "cache-hit share 0.0%" in RunSummary({}).lines()[5]
    settled = RunSummary({**counters, "written.output": 3, "written.dead_letter": 1}).lines()
    assert "cost                $0.001234  ($0.000309 per record settled)" in settled


@pytest.mark.parametrize(
    ("extra", "complaint"),
    [
        ({"service_tier": "priority"}, "service_tier"),
        ({"service_tier": "flex", "mode": "batch"}, "service_tier applies only"),
        ({"prompt_cache_key": ""}, "prompt_cache_key"),
        ({"pricing": {"cached_prompt_per_million": -1}}, "cached_prompt_per_million"),
        ({"pricing": {"flex_discount": 1.5}}, "flex_discount"),
        ({"pricing": {"cache_price": 1}}, "cache_price"),
    ],
)
def test_bad_cost_settings_are_errors_naming_the_key(extra: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        ProviderSpec(name="p", base_url="http://x/v1", model="m", **extra)
