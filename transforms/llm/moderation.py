"""An OpenAI-compatible moderation endpoint (``POST {base_url}/moderations``): an edge.

    flagged(texts)  -> the flagged categories ([] when clean); one call for all the texts
                       of one answer, retried by tenacity on transient errors
    401/403/404     -> SystemicFault: every answer would fail the same way; stop the run
    anything else   -> ModerationFailed (stage guard): the answer is not let through
                       unscreened; the record is dead-lettered and can be replayed

``safety.moderation.categories`` narrows what counts: only those categories, else the
endpoint's own ``flagged``. Built on the worker; never pickled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import openai

from transforms.core.calls.policy import redact, retried, systemic_reason, transient_retrying
from transforms.core.config.safety import ModerationSpec
from transforms.core.config.secrets import required_secret
from transforms.core.errors import ModerationFailed, SystemicFault

__all__ = ["Moderator"]

Sleep = Callable[[float], Awaitable[None]]


class Moderator:
    def __init__(self, spec: ModerationSpec, *, sleep: Sleep = asyncio.sleep) -> None:
        self.spec = spec
        self._sleep = sleep
        api_key = required_secret(spec.api_key_env, "safety.moderation")
        self._secrets = [api_key] if api_key else []
        self._client = openai.AsyncOpenAI(
            base_url=spec.base_url,
            api_key=api_key or "unused",
            max_retries=0,
            timeout=spec.timeout_s,
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def flagged(self, texts: Sequence[str]) -> list[str]:
        if not texts:
            return []
        retrying = transient_retrying(
            self.spec.attempts, self._sleep, backoff_initial_s=0.5, backoff_max_s=10.0
        )
        try:
            body: Any = await retried(
                retrying,
                lambda: self._client.post(
                    "/moderations",
                    cast_to=object,
                    body={"model": self.spec.model, "input": list(texts)},
                ),
            )
        except Exception as exc:
            reason = systemic_reason(exc)
            message = redact(f"{type(exc).__name__}: {exc}", self._secrets)[:500]
            if reason is not None:
                raise SystemicFault(f"moderation endpoint: {reason}") from None
            raise ModerationFailed(f"the moderation endpoint failed: {message}") from None
        return self._categories(body)

    def _categories(self, body: Any) -> list[str]:
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list) or not results:
            raise ModerationFailed(f"the moderation endpoint answered no results: {body!r:.200}")
        wanted = set(self.spec.categories)
        found: set[str] = set()
        for result in results:
            if not isinstance(result, dict):
                raise ModerationFailed(f"a moderation result is not an object: {result!r:.200}")
            categories = result.get("categories") or {}
            named = {str(k) for k, v in categories.items() if v is True}
            if wanted:
                found |= named & wanted
            elif result.get("flagged") is True:
                found |= named or {"flagged"}
        return sorted(found)
