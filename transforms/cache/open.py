"""Build the configured cache backend (on the worker, never pickled) and check it answers.

An unusable cache at start is an environmental fault: the launch check says why in one
line (``run`` exits 2); a worker that meets it stops the run (exit 3). Mid-run failures are
misses (``transforms.core.cache.answers``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from transforms.core.cache.answers import AnswerCache
from transforms.core.cache.backend import CacheBackend, CacheUnavailable
from transforms.core.config.cache import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_ENTRIES,
    CacheSpec,
    default_cache_path,
)
from transforms.core.config.secrets import resolve_secret
from transforms.core.job import Job

__all__ = ["answer_cache", "cache_problems", "open_backend"]

Run = Callable[[Coroutine[Any, Any, None]], None]


def open_backend(spec: CacheSpec) -> CacheBackend | None:
    """The backend (not yet asked anything), or None when the cache is off."""
    if spec.backend == "off":
        return None
    if spec.backend == "sqlite":
        from transforms.cache.sqlite_store import SqliteStore

        return SqliteStore(
            spec.path or default_cache_path(),
            ttl_s=spec.ttl_s,
            max_entries=spec.max_entries or DEFAULT_MAX_ENTRIES,
            max_bytes=spec.max_bytes or DEFAULT_MAX_BYTES,
            timeout_s=spec.timeout_s,
        )
    from transforms.cache.redis_store import RedisStore

    password = None
    if spec.password_env:
        password = resolve_secret(spec.password_env)
        if not password:
            raise CacheUnavailable(f"cache.password_env: {spec.password_env} is not set")
    assert spec.url is not None, "CacheSpec requires a url for redis"
    return RedisStore(spec.url, password=password, ttl_s=spec.ttl_s, timeout_s=spec.timeout_s)


def answer_cache(job: Job, run: Run) -> AnswerCache | None:
    """The job's response cache, checked; ``run`` runs a coroutine on the loop that will
    use the backend. Raises ``CacheUnavailable``."""
    backend = open_backend(job.task.cache)
    if backend is None:
        return None
    run(backend.ping())
    return AnswerCache(job, backend)


def cache_problems(spec: CacheSpec) -> list[str]:
    """The launch check: why the configured cache cannot be used (empty: it can)."""

    async def check() -> None:
        backend = open_backend(spec)
        if backend is not None:
            try:
                await backend.ping()
            finally:
                await backend.aclose()

    try:
        asyncio.run(check())
    except CacheUnavailable as exc:
        return [exc.reason]
    return []
