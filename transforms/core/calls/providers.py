"""One OpenAI-compatible provider: an async client, admission control, retried calls.

    complete()  circuit open?            -> CallFailed(ProviderUnavailable), no call made
                rate limits (rpm, tpm)   -> wait for a slot (injected sleep)
                max_concurrency          -> semaphore
                (waiting for either pauses the record's deadline: ``core.deadline``)
                call, retried by tenacity on transient errors (Retry-After honoured up to
                policy.max_retry_after_s; a longer wait counts as the provider unavailable)

Every try is recorded as an ``Attempt``; the caller gets the attempts whether the call
succeeded or not (``CallFailed`` carries them), so they can travel into the dead letter.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import openai
from openai.types.chat import ChatCompletion

from transforms.core.answers.confidence import TokenLogprob
from transforms.core.calls.policy import (
    ContentFiltered,
    ProviderUnavailable,
    classify,
    policy_retrying,
    redact,
    retried,
    retry_after_seconds,
    systemic_reason,
)
from transforms.core.config.task import GenerationSpec, PolicySpec, ProviderSpec
from transforms.core.coordination.in_process import InProcess
from transforms.core.coordination.interface import Coordination
from transforms.core.deadline import waiting_for_capacity
from transforms.core.errors import Attempt, EnrichError, SystemicFault
from transforms.core.ledger.prices import Lane, call_cost_usd, served_lane
from transforms.core.ledger.usage import reported_usage
from transforms.core.limits import estimate_tokens

__all__ = [
    "CallFailed",
    "ChatCall",
    "Completion",
    "Provider",
    "ProviderClient",
    "Requests",
    "response_format",
    "token_logprobs",
]

Sleep = Callable[[float], Awaitable[None]]
REFUSED = "the provider returned no answer (content filter)"
Clock = Callable[[], float]


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str | None
    attempts: tuple[Attempt, ...]
    # what it took to read this answer out of a shared call's answer (``calls.packs``)
    repairs: tuple[str, ...] = ()
    # the answer's tokens with their log-probabilities, when asked for (``top_logprobs``)
    # and returned; None otherwise
    logprobs: tuple[TokenLogprob, ...] | None = None


class CallFailed(EnrichError):
    """Every try at one provider failed; the attempts say how."""

    def __init__(self, last_error: BaseException, attempts: Sequence[Attempt]) -> None:
        self.last_error = last_error
        self.attempts = tuple(attempts)
        super().__init__(str(self))  # the redacted description, never the raw error

    def __str__(self) -> str:  # attempts hold the redacted description
        if self.attempts and self.attempts[-1].error:
            return self.attempts[-1].error
        return type(self.last_error).__name__


class ChatCall(Protocol):
    """Sends one chat completion request (its JSON body) to a provider: the HTTP edge,
    ``transforms.llm.chat_http.ChatEndpoint``. Raises the ``openai`` SDK's exceptions."""

    async def create(self, body: bytes) -> ChatCompletion: ...

    async def aclose(self) -> None: ...


class Provider(Protocol):
    """What the enricher asks of a provider: a synchronous one (``ProviderClient``) or one
    that answers through batches (``calls.batch_provider.BatchProviderClient``)."""

    spec: ProviderSpec
    lane: Lane

    @property
    def throttled_s(self) -> float: ...

    async def complete(
        self,
        messages: Sequence[dict[str, str]],
        response_schema: dict[str, Any],
        *,
        kind: str,
        max_tokens: int | None = None,
        top_logprobs: int | None = None,
    ) -> Completion: ...

    def systemic_reason(self, exc: BaseException) -> str | None: ...

    async def aclose(self) -> None: ...


class Requests:
    """One provider's requests and what each costs: the request body (its fixed head
    encoded once), the ``Attempt`` an answer or a failure makes, descriptions with the
    secrets redacted. Shared by the synchronous and the batch client."""

    def __init__(
        self, spec: ProviderSpec, generation: GenerationSpec, lane: Lane, secrets: Sequence[str]
    ) -> None:
        self.spec, self.lane = spec, lane
        self._generation = generation
        self._secrets = [s for s in secrets if s]
        # Everything in a request body but the messages, serialised once per response schema
        # (and max_tokens, which a shared call raises, and the log-probabilities asked for).
        self._body_heads: dict[tuple[int, int, int | None], tuple[dict[str, Any], bytes]] = {}

    def body(
        self,
        messages: Sequence[dict[str, str]],
        response_schema: dict[str, Any],
        max_tokens: int | None = None,
        top_logprobs: int | None = None,
    ) -> bytes:
        """The request's JSON. Its fixed part (model, generation parameters, cache key and
        service tier, the log-probabilities asked for, the response format with the schema)
        is encoded once per schema and comes first; then the messages, whose own fixed part
        (system, few shots) precedes the record. Everything before the record's turn is
        byte-identical across records, so a provider's prefix cache can serve it
        (``ledger.prices``: cached tokens). ``max_tokens``: instead of
        ``generation.max_tokens`` (a call shared by records)."""
        limit = self._generation.max_tokens if max_tokens is None else max_tokens
        key = (id(response_schema), limit, top_logprobs)
        cached = self._body_heads.get(key)
        if cached is None or cached[0] is not response_schema:
            fixed: dict[str, Any] = {
                "model": self.spec.model,
                "temperature": self._generation.temperature,
                "seed": self._generation.seed,
                "max_tokens": limit,
            }
            if self.spec.prompt_cache_key is not None:
                fixed["prompt_cache_key"] = self.spec.prompt_cache_key
            if self.spec.service_tier is not None:
                fixed["service_tier"] = self.spec.service_tier
            if top_logprobs:
                fixed.update(logprobs=True, top_logprobs=top_logprobs)
            fixed["response_format"] = response_format(response_schema)
            head = json.dumps(fixed, separators=(",", ":")).encode()
            cached = (response_schema, head[:-1] + b',"messages":')
            self._body_heads[key] = cached
        tail = json.dumps(list(messages), separators=(",", ":"))
        return cached[1] + tail.encode() + b"}"

    def answered(
        self, response: ChatCompletion, kind: str, started: float, prompt_estimate: int
    ) -> tuple[Attempt, Any]:
        """The attempt an answer makes, and its first choice; no choice (None, the attempt
        marked as refused) when the provider gave no answer (content filter)."""
        choice = response.choices[0] if response.choices else None
        text = (choice.message.content or "") if choice and choice.message else ""
        usage = reported_usage(response.usage, prompt_estimate, text)
        lane = served_lane(self.lane, getattr(response, "service_tier", None))
        attempt = Attempt(
            provider=self.spec.name,
            model=self.spec.model,
            kind=kind,
            status=200,
            latency_ms=(time.perf_counter() - started) * 1000,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            finish_reason=choice.finish_reason if choice else None,
            cost_usd=call_cost_usd(usage, self.spec.pricing, lane),
            cached_tokens=usage.cached_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            usage_estimated=usage.estimated,
            lane=lane,
        )
        if choice is None or choice.finish_reason == "content_filter":
            return replace(attempt, error=f"ContentFiltered (fallback): {REFUSED}"), None
        return attempt, choice

    def failed(
        self, kind: str, exc: BaseException, started: float, cause: BaseException | None = None
    ) -> Attempt:
        origin = cause or exc
        status = origin.status_code if isinstance(origin, openai.APIStatusError) else None
        return Attempt(
            provider=self.spec.name,
            model=self.spec.model,
            kind=kind,
            status=status,
            error=self.describe(exc),
            latency_ms=(time.perf_counter() - started) * 1000,
            lane=self.lane,
        )

    def systemic_reason(self, exc: BaseException) -> str | None:
        """Why a failure of this provider would hit every record (secrets redacted)."""
        reason = systemic_reason(exc)
        return None if reason is None else redact(reason, self._secrets)[:300]

    def describe(self, exc: BaseException) -> str:
        message = f"{type(exc).__name__} ({classify(exc)}): {exc}"
        return redact(message, self._secrets)[:1000]


class ProviderClient:
    """Admission, retries and bookkeeping around one provider's endpoint. Built on the
    worker (``transforms.llm.connect``); never pickled. ``secrets``: what to redact.
    ``coordination``: where its rate limits and circuit breaker live (default: this
    process, with ``clock`` and ``sleep``)."""

    def __init__(
        self,
        spec: ProviderSpec,
        generation: GenerationSpec,
        policy: PolicySpec,
        endpoint: ChatCall,
        *,
        secrets: Sequence[str] = (),
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
        coordination: Coordination | None = None,
    ) -> None:
        self.spec = spec
        self._policy = policy
        self._sleep = sleep
        self._endpoint = endpoint
        self._slots = asyncio.Semaphore(spec.max_concurrency)
        self.queued_s = 0.0  # time calls waited for a slot or a rate limit, in total
        coordination = coordination or InProcess(clock, sleep)
        self.breaker = coordination.breaker(spec, policy)
        self._limiter = coordination.limits(spec)
        self.lane: Lane = "flex" if spec.service_tier == "flex" else "sync"
        self.requests = Requests(spec, generation, self.lane, secrets)

    @property
    def throttled_s(self) -> float:
        """Time calls to this provider waited for its rpm/tpm limits, in total."""
        return self._limiter.throttled_s

    async def aclose(self) -> None:
        await self._endpoint.aclose()

    async def complete(
        self,
        messages: Sequence[dict[str, str]],
        response_schema: dict[str, Any],
        *,
        kind: str,
        max_tokens: int | None = None,
        top_logprobs: int | None = None,
    ) -> Completion:
        """``top_logprobs``: also ask for the answer's token log-probabilities, with that
        many alternatives per token (a cascade step judging its confidence)."""
        attempts: list[Attempt] = []
        retrying = policy_retrying(self._policy, self._sleep)
        try:
            return await retried(
                retrying,
                lambda: self._call_once(
                    messages, response_schema, kind, attempts, max_tokens, top_logprobs
                ),
            )
        except SystemicFault:  # the coordination store is gone: not this provider's failure
            raise
        except Exception as exc:
            raise CallFailed(exc, attempts) from exc

    async def _call_once(
        self,
        messages: Sequence[dict[str, str]],
        response_schema: dict[str, Any],
        kind: str,
        attempts: list[Attempt],
        max_tokens: int | None = None,
        top_logprobs: int | None = None,
    ) -> Completion:
        admission = await self.breaker.admit()  # per try: an opening circuit stops retries too
        if admission == "refused":
            skipped = ProviderUnavailable(f"circuit {self.breaker.state}; provider skipped")
            attempts.append(self._failed(kind, skipped, time.perf_counter()))
            raise skipped
        is_probe = admission == "probe"
        estimate = estimate_tokens(list(messages))
        started = time.perf_counter()
        try:
            async with waiting_for_capacity():  # queued: not the record's time
                await self._limiter.acquire(estimate)
                await self._slots.acquire()
                self.queued_s += time.perf_counter() - started
            try:
                started = time.perf_counter()
                body = self.requests.body(messages, response_schema, max_tokens, top_logprobs)
                response = await self._endpoint.create(body)
            finally:
                self._slots.release()
        except SystemicFault:  # the coordination store is gone: no verdict on the provider
            raise
        except Exception as exc:
            error = await self._judge_failure(exc, is_probe=is_probe)
            attempts.append(self._failed(kind, error, started, cause=exc))
            raise error from exc
        except BaseException:  # cancelled (the record's deadline): no verdict on the provider
            if is_probe:
                await asyncio.shield(self.breaker.abandoned())
            raise
        await self.breaker.succeeded()  # it answered; what it answered is judged elsewhere
        attempt, choice = self.requests.answered(response, kind, started, estimate)
        await self._limiter.correct(estimate, attempt.prompt_tokens + attempt.completion_tokens)
        attempts.append(attempt)
        if choice is None:
            raise ContentFiltered(REFUSED)
        return Completion(
            choice.message.content or "",
            choice.finish_reason,
            tuple(attempts),
            logprobs=token_logprobs(choice) if top_logprobs else None,
        )

    async def _judge_failure(self, exc: BaseException, *, is_probe: bool) -> BaseException:
        """Update the breaker; turn a Retry-After beyond the cap into 'unavailable'.

        Only errors that say something about the provider's health count as failures; a
        context-length error or a 400/422 about this record's request leaves it as it was.
        """
        asked = retry_after_seconds(exc)
        if asked is not None and asked > self._policy.max_retry_after_s:
            await self.breaker.failed(open_for_s=asked)
            return ProviderUnavailable(
                f"asked to retry after {asked:.1f}s, over policy.max_retry_after_s "
                f"({self._policy.max_retry_after_s:.1f}s)"
            )
        status = exc.status_code if isinstance(exc, openai.APIStatusError) else None
        if classify(exc) == "fallback" or status in (400, 422):
            if is_probe:
                await self.breaker.abandoned()
        else:
            await self.breaker.failed()
        return exc

    def _failed(
        self, kind: str, exc: BaseException, started: float, cause: BaseException | None = None
    ) -> Attempt:
        return self.requests.failed(kind, exc, started, cause)

    def systemic_reason(self, exc: BaseException) -> str | None:
        """Why a failure of this provider would hit every record (secrets redacted)."""
        return self.requests.systemic_reason(exc)

    def describe(self, exc: BaseException) -> str:
        return self.requests.describe(exc)


def token_logprobs(choice: Any) -> tuple[TokenLogprob, ...] | None:
    """The choice's ``logprobs.content`` (OpenAI's shape, which llama-server also sends),
    or None when the provider sent none. Read leniently: a lenient completion holds dicts."""

    def get(item: Any, key: str) -> Any:
        return item.get(key) if isinstance(item, dict) else getattr(item, key, None)

    content = get(get(choice, "logprobs"), "content")
    if not isinstance(content, list):
        return None
    tokens = []
    for item in content:
        text, logprob = get(item, "token"), get(item, "logprob")
        if not isinstance(text, str) or not isinstance(logprob, int | float):
            return None
        top = tuple(
            (get(alt, "token"), float(get(alt, "logprob")))
            for alt in get(item, "top_logprobs") or ()
            if isinstance(get(alt, "token"), str) and isinstance(get(alt, "logprob"), int | float)
        )
        tokens.append(TokenLogprob(text, float(logprob), top))
    return tuple(tokens)


def response_format(schema: dict[str, Any]) -> Any:
    """The request's ``response_format``: a strict JSON schema, as every call sends it."""
    return {
        "type": "json_schema",
        "json_schema": {"name": "answer", "strict": True, "schema": schema},
    }
