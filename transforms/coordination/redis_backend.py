"""Coordination in Redis: one set of rate limits, circuit breakers and budget per job, shared
by every worker process of it (``redis`` client, asyncio; the scripts in ``scripts``).

Keys (``<ns>`` is ``coordination.namespace``, by default the task's name)::

    llm_enrich:coord:<ns>:limit:<provider>:requests   hash  rpm bucket: level, at
    llm_enrich:coord:<ns>:limit:<provider>:tokens     hash  tpm bucket: level, at
    llm_enrich:coord:<ns>:breaker:<provider>          hash  failures, open_until, probe_until
    llm_enrich:coord:<ns>:run:<run id>:spend          hash  spent (HINCRBYFLOAT), born

Buckets expire once they would be full again, breakers ``KEEP_S`` after their last change,
a run's spend ``SPENT_TTL_S`` after its last use. Times are Redis's own (``TIME``).

Any failure to use Redis (after the client's few quick tries) raises ``CoordinationLost``,
and so does a spend counter lost (evicted or flushed, or Redis restarted without its
data; ``scripts`` says how that is seen): the run stops instead of counting per process.
Messages name the URL without credentials and never carry the password.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from transforms.coordination.scripts import (
    BREAKER_ADMIT,
    BREAKER_FAILED,
    BUCKET_GIVE,
    BUCKET_TAKE,
    SPEND_ADD,
    SPEND_READ,
)
from transforms.core.calls.policy import redact
from transforms.core.config.redis_url import public_url
from transforms.core.config.task import PolicySpec, ProviderSpec
from transforms.core.coordination.interface import Admission, CoordinationLost

__all__ = ["ROOT", "RedisBreaker", "RedisBudget", "RedisCoordination", "RedisLimits"]

ROOT = "llm_enrich:coord:"
KEEP_S = 600.0  # a breaker's state outlives its last change by at least this (10 x cooldown)
SPENT_TTL_S = 30 * 24 * 3600  # a run's spend, after its last use
MAX_CONNECTIONS = 16  # per worker process
T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


class RedisCoordination:
    """Built on the worker (``transforms.coordination.open``), never pickled. ``run_id``: the
    same in every worker of a run (the pipeline carries it); it keys the budget."""

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        password: str | None,
        namespace: str,
        run_id: str,
        timeout_s: float,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.url = public_url(url)
        self.prefix = f"{ROOT}{namespace}:"
        self._run_id = run_id
        self._sleep = sleep
        self._secrets = [password] if password else []
        # Calls beyond MAX_CONNECTIONS wait for a connection (a plain pool would fail them)
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=None,
            password=password,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.1), 4),  # about 2.5 s in all
        )
        self._client = aioredis.Redis.from_pool(pool)
        self._scripts = {
            script: self._client.register_script(script)
            for script in (
                BUCKET_TAKE,
                BUCKET_GIVE,
                BREAKER_ADMIT,
                BREAKER_FAILED,
                SPEND_ADD,
                SPEND_READ,
            )
        }

    async def run(self, script: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """One of ``scripts``' scripts; its reply as text (a list of texts for a list)."""
        reply = await self.call("a coordination script", self._scripts[script](keys, args))
        if isinstance(reply, list):
            return [_text(item) for item in reply]
        return _text(reply)

    async def call(self, what: str, operation: Awaitable[T]) -> T:
        try:
            return await operation
        except (RedisError, OSError) as exc:
            raise CoordinationLost(
                f"coordination.url {self.url}: Redis failed ({what}: {self._describe(exc)}); "
                "rate limits, breakers and the budget can no longer be kept job-wide"
            ) from None

    def limits(self, provider: ProviderSpec) -> RedisLimits:
        return RedisLimits(self, f"{self.prefix}limit:{provider.name}", provider, self._sleep)

    def breaker(self, provider: ProviderSpec, policy: PolicySpec) -> RedisBreaker:
        return RedisBreaker(self, f"{self.prefix}breaker:{provider.name}", provider, policy)

    def budget(self) -> RedisBudget:
        return RedisBudget(self, f"{self.prefix}run:{self._run_id}:spend")

    async def ping(self) -> None:
        await self.call("ping", self._client.ping())

    async def aclose(self) -> None:
        await self._client.aclose()

    @property
    def client(self) -> aioredis.Redis:
        return self._client

    def _describe(self, exc: BaseException) -> str:
        return redact(f"{type(exc).__name__}: {exc}", self._secrets)[:300]


def _text(reply: Any) -> str:
    return reply.decode() if isinstance(reply, bytes) else str(reply)


class RedisLimits:
    """A provider's rpm and tpm buckets, taken together in one script call."""

    def __init__(
        self, owner: RedisCoordination, key: str, provider: ProviderSpec, sleep: Sleep
    ) -> None:
        self._owner, self._sleep = owner, sleep
        self._requests = (f"{key}:requests", float(provider.rpm)) if provider.rpm else None
        self._tokens = (f"{key}:tokens", float(provider.tpm)) if provider.tpm else None
        self.throttled_s = 0.0

    async def acquire(self, estimated_tokens: int) -> None:
        keys: list[str] = []
        args: list[float] = []
        for bucket, amount in ((self._requests, 1), (self._tokens, estimated_tokens)):
            if bucket is not None:
                keys.append(bucket[0])
                args += [bucket[1], bucket[1] / 60.0, amount]
        if not keys:
            return
        while True:
            wait = float(await self._owner.run(BUCKET_TAKE, keys, args))
            if wait <= 0:
                return
            self.throttled_s += wait
            await self._sleep(wait)

    async def correct(self, estimated_tokens: int, used_tokens: int) -> None:
        if self._tokens is None or estimated_tokens == used_tokens:
            return
        key, per_minute = self._tokens
        args = [per_minute, per_minute / 60.0, estimated_tokens - used_tokens]
        await self._owner.run(BUCKET_GIVE, [key], args)


class RedisBreaker:
    """A provider's circuit, shared: a failure counts for every worker, an open circuit is
    open for all of them, and one worker at a time probes a half-open one (for a lease of
    the provider's ``timeout_s`` plus the cooldown, in case it dies while probing)."""

    def __init__(
        self, owner: RedisCoordination, key: str, provider: ProviderSpec, policy: PolicySpec
    ) -> None:
        self._owner, self._key = owner, key
        self._threshold = policy.circuit_failure_threshold
        self._cooldown_s = policy.circuit_cooldown_s
        self._lease_s = provider.timeout_s + policy.circuit_cooldown_s
        self._keep_ms = round(max(KEEP_S, 10 * policy.circuit_cooldown_s) * 1000)
        self._state = "closed"
        self._dirty = True  # the shared state may hold failures a success must clear

    @property
    def state(self) -> str:
        return self._state

    async def admit(self) -> Admission:
        answer = await self._owner.run(BREAKER_ADMIT, [self._key], [self._lease_s, self._keep_ms])
        if answer in ("call", "call-failures"):
            self._state = "closed"
            self._dirty = self._dirty or answer == "call-failures"
            return "call"
        self._state = "half-open" if answer == "probe" else answer
        self._dirty = True
        return "probe" if answer == "probe" else "refused"

    async def succeeded(self) -> None:
        if self._dirty:
            self._dirty = False
            await self._owner.call("breaker reset", self._owner.client.delete(self._key))
        self._state = "closed"

    async def failed(self, open_for_s: float | None = None) -> None:
        args = [self._threshold, self._cooldown_s, open_for_s or "", self._keep_ms]
        self._state = await self._owner.run(BREAKER_FAILED, [self._key], args)
        self._dirty = True

    async def abandoned(self) -> None:
        await self._owner.call("breaker probe", self._owner.client.hdel(self._key, "probe_until"))


class RedisBudget:
    """The run's spend, one counter for every worker. A counter made anew after this worker
    saw it (``scripts.SPEND_ADD``) means it was lost: ``CoordinationLost``."""

    def __init__(self, owner: RedisCoordination, key: str) -> None:
        self._owner, self._key = owner, key
        self._born: str | None = None  # the creator's token, as first seen

    async def add(self, cost_usd: float) -> float:
        token = uuid.uuid4().hex  # one per call: a hash made anew never has the old token
        reply = await self._owner.run(SPEND_ADD, [self._key], [cost_usd, token, SPENT_TTL_S])
        return self._checked(reply)

    async def spent(self) -> float:
        return self._checked(await self._owner.run(SPEND_READ, [self._key], [SPENT_TTL_S]))

    def _checked(self, reply: list[str]) -> float:
        total, born = float(reply[0]), reply[1]
        if self._born is None and born:
            self._born = born
        elif self._born is not None and born != self._born:
            raise CoordinationLost(
                f"coordination: the run's spend in Redis ({self._key}) was lost (evicted, "
                "flushed, or Redis restarted without its data): the budget can no longer be "
                "kept job-wide"
            )
        return total
