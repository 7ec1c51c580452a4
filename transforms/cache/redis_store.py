"""The shared backend: a Redis server (``redis`` client, asyncio), for many workers.

Entries are plain string keys ``llm_enrich:answer:<key>`` with a TTL (``cache.ttl_s``).
The size bound is Redis's own: its ``maxmemory`` and ``maxmemory-policy`` (``deploy/redis.sh``
sets ``allkeys-lru``), not ``cache.max_entries``. The client does not retry: a failed
operation is a cache miss for that record, and the ``AnswerCache`` leaves Redis alone for a
while; timeouts are ``cache.timeout_s``. Messages never carry the password.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from transforms.core.cache.backend import CacheError, CacheUnavailable
from transforms.core.calls.policy import redact
from transforms.core.config.redis_url import public_url

__all__ = ["PREFIX", "RedisStore"]

PREFIX = "llm_enrich:answer:"


class RedisStore:
    name = "redis"

    def __init__(
        self, url: str, *, password: str | None, ttl_s: float | None, timeout_s: float
    ) -> None:
        self.url = public_url(url)
        self._secrets = [password] if password else []
        self._ttl_ms = int(ttl_s * 1000) if ttl_s is not None else None
        self._client = aioredis.Redis.from_url(
            url,
            password=password,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
        )

    async def ping(self) -> None:
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            raise CacheUnavailable(
                f"cache.url {self.url}: Redis does not answer ({self._describe(exc)})"
            ) from None

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        try:
            values = await self._client.mget([PREFIX + key for key in keys])
        except (RedisError, OSError) as exc:
            raise CacheError(self._describe(exc)) from None
        return [v if isinstance(v, bytes) else None for v in values]

    async def put(self, key: str, value: bytes) -> None:
        try:
            await self._client.set(PREFIX + key, value, px=self._ttl_ms)
        except (RedisError, OSError) as exc:
            raise CacheError(self._describe(exc)) from None

    async def aclose(self) -> None:
        await self._client.aclose()

    def _describe(self, exc: BaseException) -> str:
        return redact(f"{type(exc).__name__}: {exc}", self._secrets)[:300]
