"""How provider failures are treated: classification, retry waits, secret redaction.

    transient  408, 409, 429, 5xx, connection errors, timeouts  -> retry (same provider)
    fallback   context too long for this model, content filter,
               circuit open, Retry-After beyond the cap           -> next provider, no retry
    final      400, 401, 403, 404, 422 and anything unknown      -> next provider, no retry

Some final errors say nothing about the record and everything about the environment:
401, 403, 404 (no such model or endpoint), 405 and an answer that is not an OpenAI chat
completion. When every provider fails like that (or is unavailable), the run stops
(``systemic_reason``) instead of dead-lettering every record.

The SDK's own retries are off; this module is the only retry layer: ``transient_retrying``
is the one tenacity recipe (tries, waits, what is retried) every call site uses.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Literal, TypeVar

import openai
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_base, wait_exponential_jitter

from transforms.core.config.task import PolicySpec
from transforms.core.errors import EnrichError

__all__ = [
    "ContentFiltered",
    "ContextTooLong",
    "FailureClass",
    "NotChatCompletions",
    "ProviderUnavailable",
    "RetryAfterWait",
    "classify",
    "is_transient",
    "policy_retrying",
    "redact",
    "retried",
    "retry_after_seconds",
    "systemic_reason",
    "transient_retrying",
]

FailureClass = Literal["transient", "fallback", "final"]  # how a failure is treated (above)

_CONTEXT_PATTERNS = re.compile(
    r"context[_ ]length|maximum context|context window|too many tokens|exceeds the context",
    re.IGNORECASE,
)


class ContextTooLong(EnrichError):
    """The prompt does not fit this provider's context window."""


class ContentFiltered(EnrichError):
    """The provider refused to answer (finish_reason ``content_filter``)."""


class ProviderUnavailable(EnrichError):
    """Skip this provider for now: its circuit is open, or it asked to wait past the cap."""


class NotChatCompletions(EnrichError):
    """The endpoint answered, but not as an OpenAI-compatible chat completions API."""


_SYSTEMIC_STATUS = {
    401: "authentication failed (401): check the API key",
    403: "permission denied (403)",
    404: "not found (404): no such model or endpoint",
    405: "method not allowed (405): not an OpenAI-compatible endpoint",
}


_MODERATION = re.compile(r"moderation|flagged|content[ _]policy|safety", re.IGNORECASE)


def systemic_reason(exc: BaseException) -> str | None:
    """Why this failure would hit every record, or None when it is about this one."""
    if isinstance(exc, NotChatCompletions | openai.APIResponseValidationError):
        return f"not an OpenAI-compatible chat completions endpoint: {exc}"
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code == 403 and _MODERATION.search(str(exc)):
            return None  # some gateways refuse flagged input with a 403: about the record
        return _SYSTEMIC_STATUS.get(exc.status_code)
    return None


def classify(exc: BaseException) -> FailureClass:
    if isinstance(exc, ContextTooLong | ContentFiltered | ProviderUnavailable):
        return "fallback"
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return "transient"
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status in (408, 409, 429) or status >= 500:
            return "transient"
        if status == 400 and _CONTEXT_PATTERNS.search(str(exc)):
            return "fallback"
        return "final"
    if isinstance(exc, TimeoutError | ConnectionError):
        return "transient"
    return "final"


def is_transient(exc: BaseException) -> bool:
    return classify(exc) == "transient"


def retry_after_seconds(exc: BaseException) -> float | None:
    """The wait a 429/503 asks for, from ``retry-after-ms`` or ``Retry-After`` (seconds)."""
    if not isinstance(exc, openai.APIStatusError):
        return None
    headers = exc.response.headers
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            continue  # an HTTP date; rare from LLM APIs, treated as absent
    return None


class RetryAfterWait(wait_base):
    """Exponential backoff with jitter, unless the provider said how long to wait."""

    def __init__(self, initial: float = 0.5, maximum: float = 20.0) -> None:
        self._maximum = maximum
        self._backoff = wait_exponential_jitter(initial=initial, max=maximum, jitter=initial)

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        asked = retry_after_seconds(exc) if exc is not None else None
        if asked is not None:
            return asked
        return min(self._maximum, float(self._backoff(retry_state)))


Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")


def transient_retrying(
    attempts: int, sleep: Sleep, *, backoff_initial_s: float, backoff_max_s: float
) -> AsyncRetrying:
    """Up to ``attempts`` tries, retrying transient errors only (waits as ``RetryAfterWait``);
    the last error is re-raised as it is. Run a call with it through ``retried``."""
    return AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=RetryAfterWait(backoff_initial_s, backoff_max_s),
        retry=retry_if_exception(is_transient),
        sleep=sleep,
        reraise=True,
    )


def policy_retrying(policy: PolicySpec, sleep: Sleep) -> AsyncRetrying:
    """``transient_retrying`` with a provider policy's tries and waits."""
    return transient_retrying(
        policy.attempts_per_provider,
        sleep,
        backoff_initial_s=policy.backoff_initial_s,
        backoff_max_s=policy.backoff_max_s,
    )


async def retried(retrying: AsyncRetrying, call: Callable[[], Awaitable[T]]) -> T:
    """``await call()`` under ``retrying``. (Not ``retrying(call)``: tenacity awaits only
    what a coroutine function returns, and a lambda's coroutine is not.)"""
    async for attempt in retrying:
        with attempt:
            return await call()
    raise AssertionError("unreachable: tenacity either returns or raises")


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret (and any 8+ char prefix of it that an API echoes) by ``***``."""
    for secret in secrets:
        if len(secret) < 4:
            continue
        text = text.replace(secret, "***")
        if len(secret) >= 12:
            text = text.replace(secret[:8], "***")
    return text
