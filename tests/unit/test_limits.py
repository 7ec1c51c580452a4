from __future__ import annotations

import asyncio

from transforms.core.limits import CircuitBreaker, RateLimiter, TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_breaker_opens_after_threshold_then_probes_once_after_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=3, cooldown_s=30, clock=clock)
    for _ in range(2):
        breaker.record_failure()
    assert breaker.state == "closed" and breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    clock.now += 29
    assert not breaker.allow()
    clock.now += 1
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # only one probe at a time
    breaker.record_failure()  # the probe failed: open again for a full cooldown
    assert breaker.state == "open"
    clock.now += 30
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow()


def test_breaker_success_resets_the_consecutive_count() -> None:
    breaker = CircuitBreaker(threshold=2, cooldown_s=10, clock=FakeClock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state == "closed"


def test_long_retry_after_opens_the_circuit_for_that_long() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=5, cooldown_s=10, clock=clock)
    breaker.record_failure(open_for_s=120)
    assert breaker.state == "open"
    clock.now += 119
    assert breaker.state == "open"
    clock.now += 1
    assert breaker.allow()


def test_token_bucket_refills_continuously() -> None:
    clock = FakeClock()
    bucket = TokenBucket(60, clock)  # one per second
    bucket.take(60)
    assert bucket.wait_time(1) == 1.0
    clock.now += 0.5
    assert bucket.wait_time(1) == 0.5
    assert bucket.wait_time(1000) == 59.5  # capped at capacity: never waits forever


def test_rate_limiter_paces_requests_without_real_sleep() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rpm=120, tpm=None, clock=clock, sleep=clock.sleep)

    async def burst() -> None:
        for _ in range(125):
            await limiter.acquire(10)

    asyncio.run(burst())
    assert round(sum(clock.slept), 3) == 2.5  # 5 over the minute's 120, at 2/s
    assert round(limiter.throttled_s, 3) == 2.5  # reported as throttled time


def test_token_limit_is_corrected_with_reported_usage() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rpm=None, tpm=1000, clock=clock, sleep=clock.sleep)
    asyncio.run(limiter.acquire(100))
    asyncio.run(limiter.correct(estimated_tokens=100, used_tokens=1000))  # it used far more
    asyncio.run(limiter.acquire(100))
    assert round(sum(clock.slept), 2) == 6.0  # 100 tokens at 1000/min


def test_a_cancelled_probe_does_not_keep_the_circuit_half_open_forever() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=1, cooldown_s=5, clock=clock)
    breaker.record_failure()
    clock.now += 5
    assert breaker.allow() and not breaker.allow()
    breaker.abandon_probe()  # e.g. the record's deadline cancelled the probe call
    assert breaker.allow()
