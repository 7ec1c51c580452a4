"""A record's deadline bounds its own attempts, not its wait for provider capacity.

``policy.record_deadline_s`` is how long a record may spend being answered: calls,
retries, backoffs, re-asks, fallbacks. Time it spends queued for a provider's capacity (a
free ``max_concurrency`` slot, or room under ``rpm``/``tpm``) is not the record's doing,
and overload must not turn into dead letters of records that were never sent: while a
record waits for capacity its deadline is paused (``waiting_for_capacity``).

A stuck provider is still found: calls that hang time out (``timeout_s``), fail, open
the provider's circuit, and every circuit open is an outage (a systemic fault).

The deadline lives in a context variable of the record's own task, so the provider client
can pause it without the enricher passing it down.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator

__all__ = ["record_deadline", "waiting_for_capacity"]

_current: contextvars.ContextVar[asyncio.Timeout | None] = contextvars.ContextVar(
    "llm_enrich_record_deadline", default=None
)


@contextlib.asynccontextmanager
async def record_deadline(seconds: float) -> AsyncIterator[None]:
    """Raise ``TimeoutError`` when the block's own time (waits for capacity aside) passes
    ``seconds``."""
    async with asyncio.timeout(seconds) as timeout:
        token = _current.set(timeout)
        try:
            yield
        finally:
            _current.reset(token)


@contextlib.asynccontextmanager
async def waiting_for_capacity() -> AsyncIterator[None]:
    """The time spent in this block does not count against the record's deadline."""
    timeout = _current.get()
    when = timeout.when() if timeout is not None else None
    if timeout is None or when is None or timeout.expired():
        yield
        return
    loop = asyncio.get_running_loop()
    left = when - loop.time()
    timeout.reschedule(None)  # paused: no deadline while queued
    try:
        yield
    finally:
        if not timeout.expired():
            timeout.reschedule(loop.time() + max(0.0, left))
