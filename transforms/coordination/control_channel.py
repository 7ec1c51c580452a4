"""Stop, halt and pause through Redis when the task's coordination is Redis
(``coordination: {backend: redis}``): the ``Channel`` of ``transforms.core.run.control``
for workers on any host, next to the control folder (one machine).

    llm_enrich:coord:<ns>:run:<run id>:control   hash  stop, halt, pause (their text)

``stop`` and ``halt`` keep their first writer's text (``HSETNX``); ``pause`` is set and
taken back. The key expires ``CONTROL_TTL_S`` after its last write. Each process reads it at
most every ``control.CHECK_EVERY_S`` (one ``HGETALL``). A Redis that does not answer here is
no signal (logged once): the folder, where there is one, still carries them, and the
coordination's own calls stop the run when Redis is gone (``CoordinationLost``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from transforms.coordination.redis_backend import ROOT
from transforms.core.config.coordination import CoordinationSpec
from transforms.core.config.redis_url import public_url
from transforms.core.config.secrets import resolve_secret

__all__ = ["CONTROL_TTL_S", "RedisChannel", "redis_channel"]

log = logging.getLogger("llm_enrich")

CONTROL_TTL_S = 7 * 24 * 3600


class RedisChannel:
    def __init__(
        self, url: str, *, password: str | None, namespace: str, run_id: str, timeout_s: float
    ) -> None:
        self.url, self.key = public_url(url), f"{ROOT}{namespace}:run:{run_id}:control"
        timeouts = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
        retry = Retry(NoBackoff(), 1)  # one more try, at once: a read comes again in 0.2 s
        self._client = redis.Redis.from_url(url, password=password, retry=retry, **timeouts)
        self._failed = False

    def post(self, name: str, text: str = "") -> None:
        def write() -> None:
            pipe = self._client.pipeline()
            if name == "pause":
                pipe.hset(self.key, name, text)
            else:
                pipe.hsetnx(self.key, name, text)
            pipe.expire(self.key, CONTROL_TTL_S)
            pipe.execute()

        self._try(f"post {name}", write)

    def clear(self, name: str) -> None:
        self._try(f"clear {name}", lambda: self._client.hdel(self.key, name))

    def read(self) -> dict[str, str]:
        found: dict[str, str] = {}

        def read() -> None:
            raw = self._client.hgetall(self.key)
            found.update({_text(k): _text(v) for k, v in raw.items()})

        self._try("read", read)
        return found

    def _try(self, doing: str, action: Callable[[], object]) -> None:
        try:
            action()
        except (RedisError, OSError) as exc:
            if not self._failed:  # once: the coordination's own calls decide about Redis
                self._failed = True
                log.warning(
                    "coordination.url %s: cannot %s the run's control signals (%s)",
                    self.url,
                    doing,
                    type(exc).__name__,
                )
        else:
            self._failed = False


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def redis_channel(spec: CoordinationSpec, task_name: str, run_id: str) -> RedisChannel | None:
    """The run's Redis channel when its coordination is Redis (None otherwise, or when the
    password variable is unset: the coordination stops the run for that)."""
    if not spec.shared or spec.url is None:
        return None
    password = resolve_secret(spec.password_env) if spec.password_env else None
    if spec.password_env and not password:
        return None
    return RedisChannel(
        spec.url,
        password=password,
        namespace=spec.namespace or task_name,
        run_id=run_id,
        timeout_s=spec.timeout_s,
    )
