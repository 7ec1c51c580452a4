"""The default coordination: every worker process keeps its own limits, breakers and budget
(``core.limits``). On N worker processes they add up to N times the configured values."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from transforms.core.config.task import PolicySpec, ProviderSpec
from transforms.core.coordination.interface import Admission
from transforms.core.limits import CircuitBreaker, RateLimiter

__all__ = ["InProcess", "ProcessBreaker", "ProcessBudget"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class ProcessBreaker:
    """A ``CircuitBreaker`` of this process behind the ``Breaker`` interface."""

    def __init__(self, breaker: CircuitBreaker) -> None:
        self._breaker = breaker

    @property
    def state(self) -> str:
        return self._breaker.state

    async def admit(self) -> Admission:
        probe = self._breaker.state == "half-open"
        if not self._breaker.allow():
            return "refused"
        return "probe" if probe else "call"

    async def succeeded(self) -> None:
        self._breaker.record_success()

    async def failed(self, open_for_s: float | None = None) -> None:
        self._breaker.record_failure(open_for_s)

    async def abandoned(self) -> None:
        self._breaker.abandon_probe()


class ProcessBudget:
    def __init__(self) -> None:
        self._spent = 0.0

    async def add(self, cost_usd: float) -> float:
        self._spent += cost_usd
        return self._spent

    async def spent(self) -> float:
        return self._spent


class InProcess:
    name = "process"

    def __init__(self, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        self._clock, self._sleep = clock, sleep

    def limits(self, provider: ProviderSpec) -> RateLimiter:
        return RateLimiter(provider.rpm, provider.tpm, self._clock, self._sleep)

    def breaker(self, provider: ProviderSpec, policy: PolicySpec) -> ProcessBreaker:
        return ProcessBreaker(
            CircuitBreaker(policy.circuit_failure_threshold, policy.circuit_cooldown_s, self._clock)
        )

    def budget(self) -> ProcessBudget:
        return ProcessBudget()

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        return None
