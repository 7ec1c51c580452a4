"""The interface every cache backend implements (SQLite, Redis: ``transforms.cache``).

Values are opaque bytes (``entry.encode_entry``); keys are ``key.answer_key`` hex digests.
Expiry (``ttl_s``) and the size bound are the backend's business. Any failure of a backend
operation raises an exception; the ``AnswerCache`` treats it as a miss.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from transforms.core.errors import EnrichError, SystemicFault

__all__ = ["CacheBackend", "CacheError", "CacheUnavailable"]


class CacheError(EnrichError):
    """A backend operation failed mid-run; the message is safe to log (no secret in it)."""


class CacheUnavailable(SystemicFault):
    """The configured cache cannot be used at start (unreachable, unreadable): the run
    stops before anything is read, as for any environmental fault."""


class CacheBackend(Protocol):
    name: str  # "sqlite" or "redis", for messages

    async def ping(self) -> None:
        """Raise ``CacheUnavailable`` saying why when the cache cannot be used."""

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values of ``keys``, in order; None where missing or expired."""

    async def put(self, key: str, value: bytes) -> None: ...

    async def aclose(self) -> None: ...
