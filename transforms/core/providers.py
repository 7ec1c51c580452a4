"""One OpenAI-compatible provider: an async client, bounded concurrency, retried calls.

Every try is recorded as an ``Attempt``; the caller gets the attempts whether the call
succeeded or not (``CallFailed`` carries them), so they can travel into the dead letter.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import openai
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

from transforms.core.errors import Attempt, TaskConfigError
from transforms.core.policy import (
    ContentFiltered,
    RetryAfterWait,
    classify,
    is_transient,
    redact,
)
from transforms.core.task import GenerationSpec, ProviderSpec

__all__ = ["CallFailed", "Completion", "ProviderClient"]

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str | None
    attempts: tuple[Attempt, ...]


@dataclass
class CallFailed(Exception):
    """Every try at one provider failed; ``kind`` says whether to fall back or give up."""

    last_error: BaseException
    attempts: tuple[Attempt, ...] = field(default=())

    def __str__(self) -> str:  # attempts hold the redacted description
        if self.attempts and self.attempts[-1].error:
            return self.attempts[-1].error
        return type(self.last_error).__name__


class ProviderClient:
    """Built on the worker (holds a network client); never pickled."""

    def __init__(
        self,
        spec: ProviderSpec,
        generation: GenerationSpec,
        *,
        attempts: int,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.spec = spec
        self._generation = generation
        self._attempts = attempts
        self._sleep = sleep
        api_key = "unused"
        self._secrets: list[str] = []
        if spec.api_key_env:
            api_key = os.environ.get(spec.api_key_env, "")
            if not api_key:
                raise TaskConfigError(
                    f"provider {spec.name!r}: environment variable {spec.api_key_env} is not set"
                )
            self._secrets.append(api_key)
        self._client = openai.AsyncOpenAI(
            base_url=spec.base_url, api_key=api_key, max_retries=0, timeout=spec.timeout_s
        )
        self._slots = asyncio.Semaphore(spec.max_concurrency)

    async def aclose(self) -> None:
        await self._client.close()

    async def complete(
        self, messages: Sequence[dict[str, str]], response_schema: dict[str, Any], *, kind: str
    ) -> Completion:
        attempts: list[Attempt] = []
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=RetryAfterWait(),
            retry=retry_if_exception(is_transient),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._call_once(messages, response_schema, kind, attempts)
        except Exception as exc:
            raise CallFailed(exc, tuple(attempts)) from exc
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def _call_once(
        self,
        messages: Sequence[dict[str, str]],
        response_schema: dict[str, Any],
        kind: str,
        attempts: list[Attempt],
    ) -> Completion:
        started = time.perf_counter()
        async with self._slots:
            try:
                create: Any = self._client.chat.completions.create
                response = await create(
                    model=self.spec.model,
                    messages=list(messages),
                    temperature=self._generation.temperature,
                    seed=self._generation.seed,
                    max_tokens=self._generation.max_tokens,
                    response_format={
                        "type": "json_schema",
                        "json_schema": {
                            "name": "answer",
                            "strict": True,
                            "schema": response_schema,
                        },
                    },
                )
            except Exception as exc:
                attempts.append(self._failed(kind, exc, started))
                raise
        choice = response.choices[0] if response.choices else None
        usage = response.usage
        attempt = Attempt(
            provider=self.spec.name,
            model=self.spec.model,
            kind=kind,
            status=200,
            latency_ms=(time.perf_counter() - started) * 1000,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            finish_reason=choice.finish_reason if choice else None,
        )
        if choice is None or choice.finish_reason == "content_filter":
            refused = ContentFiltered("the provider returned no answer (content filter)")
            attempts.append(_with_error(attempt, refused))
            raise refused
        attempts.append(attempt)
        return Completion(choice.message.content or "", choice.finish_reason, tuple(attempts))

    def _failed(self, kind: str, exc: BaseException, started: float) -> Attempt:
        status = exc.status_code if isinstance(exc, openai.APIStatusError) else None
        return Attempt(
            provider=self.spec.name,
            model=self.spec.model,
            kind=kind,
            status=status,
            error=self.describe(exc),
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    def describe(self, exc: BaseException) -> str:
        message = f"{type(exc).__name__} ({classify(exc)}): {exc}"
        return redact(message, self._secrets)[:1000]


def _response_format(schema: dict[str, Any]) -> Any:
    return {
        "type": "json_schema",
        "json_schema": {"name": "answer", "strict": True, "schema": schema},
    }


def _with_error(attempt: Attempt, exc: BaseException) -> Attempt:
    return Attempt(**{**attempt.__dict__, "error": f"{type(exc).__name__} (fallback): {exc}"})
