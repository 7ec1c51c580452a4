"""The Redis coordination backend against the real Redis (``deploy/redis.sh``): its token
buckets, breakers and budget, with two "workers" (two clients, as two processes would have)
on the same keys. Each test uses a namespace of its own.

Times come from Redis's clock, so these tests wait for real, briefly: rates are chosen so
that a refill takes tenths of a second."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.integration.conftest import start_redis
from transforms.coordination.redis_backend import ROOT, RedisCoordination
from transforms.coordination.scripts import BUCKET_TAKE
from transforms.core.config.task import PolicySpec, ProviderSpec
from transforms.core.coordination.interface import CoordinationLost

PASSWORD = "s3cret-coordination-pass"


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    name = f"test-{uuid.uuid4().hex[:10]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{ROOT}{name}:*"))
    if keys:
        client.delete(*keys)


def _workers(
    url: str, namespace: str, count: int = 2, run: str = "run1"
) -> list[RedisCoordination]:
    return [
        RedisCoordination(url, password=None, namespace=namespace, run_id=run, timeout_s=2)
        for _ in range(count)
    ]


def _provider(**limits: Any) -> ProviderSpec:
    return ProviderSpec(name="p", base_url="http://127.0.0.1:1/v1", model="m", **limits)


def _run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


async def _closed(*coordinations: RedisCoordination) -> None:
    for coordination in coordinations:
        await coordination.aclose()


def test_two_workers_draw_from_one_request_bucket(redis_url: str, namespace: str) -> None:
    """30 a minute: 30 calls at once over both workers, not 60; then about one per 2 s."""

    async def go() -> tuple[int, float]:
        a, b = _workers(redis_url, namespace)
        keys = [f"{a.prefix}limit:p:requests"]
        args = [30.0, 0.5, 1]
        replies = await asyncio.gather(
            *(w.run(BUCKET_TAKE, keys, args) for w in (a, b) for _ in range(25))
        )
        granted = sum(float(r) == 0 for r in replies)
        wait = min(float(r) for r in replies if float(r) > 0)
        await _closed(a, b)
        return granted, wait

    granted, wait = _run(go())
    assert granted in (30, 31)  # the bucket's capacity (31 if 2 s passed meanwhile)
    assert 0 < wait <= 2.0  # the next one refills at 0.5/s


def test_limits_pace_both_workers_together(redis_url: str, namespace: str) -> None:
    """tpm 6000 (100 tokens/s, a bucket of 6000): 62 calls of 100 tokens over two workers
    take at least 2 s, whichever worker waits."""
    provider = _provider(tpm=6000)

    async def go() -> tuple[float, float]:
        a, b = _workers(redis_url, namespace)
        limits = [a.limits(provider), b.limits(provider)]
        started = time.monotonic()
        await asyncio.gather(*(limits[i % 2].acquire(100) for i in range(62)))
        elapsed = time.monotonic() - started
        await _closed(a, b)
        return elapsed, limits[0].throttled_s + limits[1].throttled_s

    elapsed, throttled = _run(go())
    assert elapsed >= 1.9  # 200 tokens over the bucket, at 100/s
    assert throttled >= 1.0  # reported as throttled time


def test_tokens_are_taken_with_requests_and_corrected_after(redis_url: str, namespace: str) -> None:
    provider = _provider(rpm=60, tpm=600)  # a request and 10 tokens a second

    async def go() -> list[float]:
        a, b = _workers(redis_url, namespace)
        keys = [f"{a.prefix}limit:p:requests", f"{a.prefix}limit:p:tokens"]
        args = [60.0, 1.0, 1, 600.0, 10.0, 500]
        first = float(await a.run(BUCKET_TAKE, keys, args))  # 500 of 600 tokens
        second = float(await b.run(BUCKET_TAKE, keys, args))  # 500 more: wait about 40 s
        await a.limits(provider).correct(500, 100)  # the first used only 100: 400 back
        third = float(await b.run(BUCKET_TAKE, keys, args))
        client = redis.Redis.from_url(redis_url)
        requests_left = float(client.hget(keys[0], "level") or 0)
        await _closed(a, b)
        return [first, second, third, requests_left]

    first, second, third, requests_left = _run(go())
    assert first == 0
    assert 39 < second <= 40  # waiting takes nothing from either bucket
    assert third == 0  # 100 + 400 given back: room for 500
    assert 58 <= requests_left < 58.5  # two requests taken, none for the refused one


def test_a_bucket_expires_once_it_would_be_full_again(redis_url: str, namespace: str) -> None:
    async def go() -> None:
        (a,) = _workers(redis_url, namespace, count=1)
        await a.run(BUCKET_TAKE, [f"{a.prefix}limit:p:requests"], [60.0, 1.0, 30])
        await _closed(a)

    _run(go())
    ttl_ms = redis.Redis.from_url(redis_url).pttl(f"{ROOT}{namespace}:limit:p:requests")
    assert 30_000 < ttl_ms <= 31_000  # 30 to refill at 1/s, plus a second


def test_a_breaker_opened_by_one_worker_is_open_for_the_other(
    redis_url: str, namespace: str
) -> None:
    provider = _provider(timeout_s=0.2)
    policy = PolicySpec(circuit_failure_threshold=3, circuit_cooldown_s=1.0)

    async def go() -> list[Any]:
        a, b = _workers(redis_url, namespace)
        one, two = a.breaker(provider, policy), b.breaker(provider, policy)
        seen: list[Any] = []
        await one.failed()
        await one.failed()
        seen.append((await two.admit(), one.state))  # 2 of 3: still closed
        await two.failed()  # the third, on the other worker: open for both
        seen.append((await one.admit(), one.state, two.state))
        await asyncio.sleep(1.1)  # the cooldown
        seen.append((await two.admit(), await one.admit(), one.state))  # one probe only
        await two.failed()  # the probe failed: open again
        seen.append(await one.admit())
        await asyncio.sleep(1.1)
        seen.append(await one.admit())  # the next probe, on the other worker this time
        await one.succeeded()  # closes it for everyone
        seen.append((await two.admit(), two.state))
        await _closed(a, b)
        return seen

    assert _run(go()) == [
        ("call", "closed"),
        ("refused", "open", "open"),
        ("probe", "refused", "half-open"),
        "refused",
        "probe",
        ("call", "closed"),
    ]


def test_a_success_clears_failures_counted_by_another_worker(
    redis_url: str, namespace: str
) -> None:
    provider, policy = _provider(), PolicySpec(circuit_failure_threshold=2)

    async def go() -> str:
        a, b = _workers(redis_url, namespace)
        one, two = a.breaker(provider, policy), b.breaker(provider, policy)
        await one.admit()
        await two.succeeded()  # nothing to clear yet
        await one.failed()
        assert await two.admit() == "call"  # it sees the failure ...
        await two.succeeded()  # ... and clears it: failures are consecutive, job-wide
        await one.failed()
        await _closed(a, b)
        return one.state

    assert _run(go()) == "closed"


def test_a_probe_lease_lapses_when_its_worker_goes_away(redis_url: str, namespace: str) -> None:
    provider = _provider(timeout_s=0.1)
    policy = PolicySpec(circuit_failure_threshold=1, circuit_cooldown_s=1.0)

    async def go() -> list[str]:
        a, b = _workers(redis_url, namespace)
        one, two = a.breaker(provider, policy), b.breaker(provider, policy)
        await one.failed()
        await asyncio.sleep(1.1)
        taken = [await one.admit(), await two.admit()]  # one probes, then "dies"
        await asyncio.sleep(1.2)  # the lease: timeout_s + cooldown
        taken.append(await two.admit())
        await _closed(a, b)
        return taken

    assert _run(go()) == ["probe", "refused", "probe"]


def test_a_long_retry_after_opens_the_circuit_for_at_least_that_long(
    redis_url: str, namespace: str
) -> None:
    provider, policy = _provider(), PolicySpec(circuit_failure_threshold=5, circuit_cooldown_s=1)

    async def go() -> str:
        (a,) = _workers(redis_url, namespace, count=1)
        await a.breaker(provider, policy).failed(open_for_s=900)
        await _closed(a)
        return a.prefix

    prefix = _run(go())
    ttl_ms = redis.Redis.from_url(redis_url).pttl(f"{prefix}breaker:p")
    assert ttl_ms > 900_000  # kept while open, and for a while after


def test_the_budget_is_one_per_run_across_workers(redis_url: str, namespace: str) -> None:
    async def go() -> list[float]:
        a, b = _workers(redis_url, namespace)
        (other_run,) = _workers(redis_url, namespace, count=1, run="run2")
        one, two = a.budget(), b.budget()
        totals = [await one.add(0.25), await two.add(0.5), await one.spent()]
        totals.append(await other_run.budget().spent())  # another run starts at zero
        await _closed(a, b, other_run)
        return totals

    assert _run(go()) == [0.25, 0.75, 0.75, 0.0]


def test_concurrent_spending_is_counted_exactly_and_never_taken_for_a_loss(
    redis_url: str, namespace: str
) -> None:
    """Replies to concurrent calls arrive in any order: a smaller total after a larger one
    is not a lost counter (a check on the totals' order said so, wrongly, in a real run)."""

    async def go() -> tuple[float, float]:
        a, b = _workers(redis_url, namespace)
        one, two = a.budget(), b.budget()
        totals = await asyncio.gather(
            *(budget.add(0.001) for _ in range(50) for budget in (one, two)),
            *(budget.spent() for _ in range(20) for budget in (one, two)),
        )
        final = await one.spent()
        await _closed(a, b)
        return max(totals), final

    most, final = _run(go())
    assert most == pytest.approx(0.1) and final == pytest.approx(0.1)


def test_a_lost_budget_counter_stops_the_run(redis_url: str, namespace: str) -> None:
    async def go() -> list[str]:
        (a,) = _workers(redis_url, namespace, count=1)
        budget = a.budget()
        await budget.add(0.5)
        redis.Redis.from_url(redis_url).delete(f"{a.prefix}run:run1:spend")  # evicted
        reasons = []
        for step in (budget.spent(), budget.add(0.1)):
            with pytest.raises(CoordinationLost) as lost:
                await step
            reasons.append(lost.value.reason)
        await _closed(a)
        return reasons

    for reason in _run(go()):
        assert "run:run1:spend) was lost (evicted" in reason


@pytest.fixture
def redis_with_password(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    url, process = start_redis(tmp_path, PASSWORD)
    yield url, process
    process.kill()
    process.wait()


def test_unreachable_or_refusing_redis_is_named_without_the_password(
    redis_with_password: tuple[str, subprocess.Popen[bytes]],
) -> None:
    url, process = redis_with_password

    async def attempt(password: str) -> str:
        coordination = RedisCoordination(
            url, password=password, namespace="n", run_id="r", timeout_s=1
        )
        try:
            await coordination.ping()
        except CoordinationLost as lost:
            return lost.reason
        finally:
            await coordination.aclose()
        return ""

    wrong = _run(attempt("wrong-password-123456"))
    assert wrong.startswith(f"coordination.url {url}: Redis failed (ping: ")
    assert "wrong-password" not in wrong
    assert _run(attempt(PASSWORD)) == ""
    process.kill()
    process.wait()
    gone = _run(attempt(PASSWORD))
    assert "ConnectionError" in gone and "s3cret" not in gone
