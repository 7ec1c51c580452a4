"""Per-provider admission: a circuit breaker and request/token rate limits.

Both take an injected clock (and the limiter an injected sleep), so tests never wait.

    CircuitBreaker  closed --N consecutive failures--> open --cooldown--> half-open
                    half-open lets one probe through: success closes, failure re-opens
    RateLimiter     token buckets for requests/minute and tokens/minute; a call takes its
                    estimated prompt tokens up front and is corrected with the reported usage
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

__all__ = ["CircuitBreaker", "RateLimiter", "TokenBucket", "estimate_tokens"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class CircuitBreaker:
    def __init__(self, threshold: int, cooldown_s: float, clock: Clock = time.monotonic) -> None:
        self._threshold = threshold
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self._probing or self._clock() >= self._opened_at + self._cooldown_s:
            return "half-open"
        return "open"

    def allow(self) -> bool:
        """May a call go through now? In half-open, only one probe at a time."""
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self._probing:
            self._probing = True
            return True
        return False

    def abandon_probe(self) -> None:
        """The call was cancelled before any verdict: let another probe through."""
        self._probing = False

    def record_success(self) -> None:
        self._failures, self._opened_at, self._probing = 0, None, False

    def record_failure(self, open_for_s: float | None = None) -> None:
        """Count a failure; ``open_for_s`` opens the circuit at once (e.g. a long Retry-After)."""
        self._failures += 1
        if self._probing or self._failures >= self._threshold or open_for_s is not None:
            cooldown = max(open_for_s or 0.0, self._cooldown_s)
            self._opened_at = self._clock() + cooldown - self._cooldown_s
            self._probing = False


class TokenBucket:
    """``rate_per_minute`` units refill continuously up to one minute's worth."""

    def __init__(self, rate_per_minute: float, clock: Clock = time.monotonic) -> None:
        self.capacity = float(rate_per_minute)
        self._rate_per_s = rate_per_minute / 60.0
        self._tokens = self.capacity
        self._clock = clock
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self._rate_per_s)
        self._updated = now

    def wait_time(self, amount: float) -> float:
        self._refill()
        amount = min(amount, self.capacity)
        return max(0.0, (amount - self._tokens) / self._rate_per_s)

    def take(self, amount: float) -> None:
        self._refill()
        self._tokens -= min(amount, self.capacity)

    def give_back(self, amount: float) -> None:
        """Correct an estimate: negative ``amount`` takes more (the call used more)."""
        self._refill()
        self._tokens = min(self.capacity, self._tokens + amount)


class RateLimiter:
    def __init__(
        self,
        rpm: int | None,
        tpm: int | None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._requests = TokenBucket(rpm, clock) if rpm else None
        self._tokens = TokenBucket(tpm, clock) if tpm else None
        self._sleep = sleep
        self.throttled_s = 0.0  # time calls waited for rpm/tpm, in total

    async def acquire(self, estimated_tokens: int) -> None:
        while True:
            wait = max(
                self._requests.wait_time(1) if self._requests else 0.0,
                self._tokens.wait_time(estimated_tokens) if self._tokens else 0.0,
            )
            if wait <= 0:
                break
            self.throttled_s += wait
            await self._sleep(wait)
        if self._requests:
            self._requests.take(1)
        if self._tokens:
            self._tokens.take(estimated_tokens)

    async def correct(self, estimated_tokens: int, used_tokens: int) -> None:
        if self._tokens:
            self._tokens.give_back(estimated_tokens - used_tokens)


def estimate_tokens(messages: list[dict[str, str]]) -> int:
    """A provider-neutral estimate: about four characters per token, plus per-message framing."""
    return sum(len(m.get("content", "")) // 4 + 4 for m in messages)
