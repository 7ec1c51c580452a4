"""A provider with ``mode: batch``: the same ``complete()`` as a synchronous provider, but
the request joins a batch (``BatchQueue``) and the call returns when the batch answers.

    answer in the output file      -> Completion (lane "batch": cost with pricing.batch_discount)
    error line, expired or failed  -> CallFailed(BatchItemFailed): the next provider
    waited batch.deadline_s        -> CallFailed(BatchWaitExceeded): the next provider
    upload or creation refused     -> CallFailed(the SDK's error): 401/403/404 are systemic
    the run stops                  -> BatchAbandoned (the record is left uncommitted)

Re-asks never go into a batch: the enricher asks the next synchronous provider instead.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from transforms.core.calls.batching import BatchAbandoned, BatchQueue
from transforms.core.calls.policy import ContentFiltered, policy_retrying, retried
from transforms.core.calls.providers import REFUSED, CallFailed, Completion, Requests
from transforms.core.config.task import GenerationSpec, PolicySpec, ProviderSpec
from transforms.core.ledger.prices import Lane
from transforms.core.limits import estimate_tokens

__all__ = ["BatchProviderClient", "Submit", "batch_line", "custom_id", "retry_transient"]

CHAT_URL = "/v1/chat/completions"


def custom_id(body: bytes) -> str:
    """The request's id in its batch: a hash of everything in it (no secret is)."""
    return "llm-enrich-" + hashlib.sha256(body).hexdigest()[:40]


def batch_line(request_id: str, body: bytes) -> bytes:
    """One line of a batch input file (without its newline)."""
    head = f'{{"custom_id":"{request_id}","method":"POST","url":"{CHAT_URL}","body":'
    return head.encode() + body + b"}"


Submit = Callable[[Callable[[], Awaitable[str]]], Awaitable[str]]


def retry_transient(policy: PolicySpec, sleep: Callable[[float], Awaitable[None]]) -> Submit:
    """Runs an upload or a batch creation with the policy's tries on transient errors."""

    async def submit(call: Callable[[], Awaitable[str]]) -> str:
        return await retried(policy_retrying(policy, sleep), call)

    return submit


class BatchProviderClient:
    """Built on the worker (``transforms.llm.connect``) around its process's queue;
    ``close`` releases the queue's HTTP client and store. A ``calls.providers.Provider``:
    its requests are built and accounted as a synchronous provider's (``Requests``), but
    no request is sent on its own, so it has no admission, rate limits or retries."""

    throttled_s = 0.0  # it never waits for rate limits

    def __init__(
        self,
        spec: ProviderSpec,
        generation: GenerationSpec,
        queue: BatchQueue,
        *,
        secrets: Sequence[str] = (),
        close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.spec, self.queue, self._close = spec, queue, close
        self.lane: Lane = "batch"
        self.requests = Requests(spec, generation, self.lane, secrets)

    async def aclose(self) -> None:
        await self.queue.aclose()
        if self._close is not None:
            await self._close()

    async def complete(
        self,
        messages: Sequence[dict[str, str]],
        response_schema: dict[str, Any],
        *,
        kind: str,
        max_tokens: int | None = None,
        top_logprobs: int | None = None,
    ) -> Completion:
        """``top_logprobs`` is not asked of a batch (a cascade keeps batch providers in its
        last step, which does not judge confidence)."""
        body = self.requests.body(messages, response_schema, max_tokens)
        request_id = custom_id(body)
        started = time.perf_counter()
        try:
            response = await self.queue.ask(request_id, batch_line(request_id, body))
        except BatchAbandoned:
            raise
        except Exception as exc:
            raise CallFailed(exc, [self.requests.failed(kind, exc, started)]) from exc
        estimate = estimate_tokens(list(messages))
        attempt, choice = self.requests.answered(response, kind, started, estimate)
        if choice is None:
            raise CallFailed(ContentFiltered(REFUSED), [attempt])
        return Completion(choice.message.content or "", choice.finish_reason, (attempt,))

    def systemic_reason(self, exc: BaseException) -> str | None:
        return self.requests.systemic_reason(exc)
