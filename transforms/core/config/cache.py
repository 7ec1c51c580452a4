"""The task's ``cache:`` section: where validated answers are kept so a repeated question
is not paid for twice (see ``transforms.core.cache``).

    backend: sqlite          # sqlite (default, a local file) | redis (shared) | off
    path: answers.sqlite     # sqlite only; default $LLM_ENRICH_STATE/cache/answers.sqlite,
                             # else ./.local/cache/answers.sqlite
    url: redis://127.0.0.1:16379/0   # redis only; no password here: password_env
    password_env: REDIS_PASSWORD     # redis only
    ttl_s: 2592000           # entries expire after this (null: never); default 30 days
    max_entries: 100000      # sqlite only: the oldest entries beyond it are evicted
    max_bytes: 1000000000    # sqlite only: the same, by the size of the stored answers
    timeout_s: 2             # one cache operation; a slower one counts as a cache error

Keys that do not apply to the chosen backend are errors, like unknown keys: Redis bounds
its size with its own ``maxmemory`` policy, not with ``max_entries``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from transforms.core.config.redis_url import check_redis_url

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_ENTRIES", "CacheSpec", "default_cache_path"]

DEFAULT_TTL_S = 30 * 24 * 3600.0
DEFAULT_MAX_ENTRIES = 100_000
DEFAULT_MAX_BYTES = 1_000_000_000
SQLITE_ONLY = ("path", "max_entries", "max_bytes")
REDIS_ONLY = ("url", "password_env")


class CacheSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["sqlite", "redis", "off"] = "sqlite"
    path: Path | None = None
    url: str | None = None
    password_env: str | None = None
    ttl_s: float | None = Field(default=DEFAULT_TTL_S, gt=0)
    max_entries: int | None = Field(default=None, gt=0)
    max_bytes: int | None = Field(default=None, gt=0)
    timeout_s: float = Field(default=2.0, gt=0)

    @model_validator(mode="after")
    def _fits_the_backend(self) -> CacheSpec:
        if self.backend == "off":
            return self
        foreign = REDIS_ONLY if self.backend == "sqlite" else SQLITE_ONLY
        for key in foreign:
            if getattr(self, key) is not None:
                raise ValueError(f"'{key}' does not apply to backend {self.backend!r}")
        if self.backend == "redis":
            check_redis_url(self.url, "redis://127.0.0.1:16379/0")
        return self


def default_cache_path() -> Path:
    """The SQLite file when the task names none: in the project's ignored data folder."""
    state = os.environ.get("LLM_ENRICH_STATE")
    base = Path(state) if state else Path.cwd() / ".local"
    return (base / "cache" / "answers.sqlite").resolve()
