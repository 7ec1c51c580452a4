"""Group the records waiting for a provider into shared calls, and hand each its answer.

With ``prompt.records_per_call: K`` > 1 a record's first call to a synchronous provider
goes through that provider's ``PackQueue`` (one per provider and enricher, so one per
worker process: every bundle's records in flight meet there):

    ask(record)        joins the open group; a group of K is sent at once, a smaller one
                       ``prompt.pack_linger_s`` after its first record joined (default
                       0.05 s: records that arrive together, a bundle or the in-flight
                       window refilling, share a call; a lone record waits that long)
    the group's call   one chat call (``prompting.packing``), max_tokens K times the
                       record's plus 8 a record for the number; its answer is split by
                       record number (``answers.unpack``), its tokens and cost by the
                       apportioning rule (``calls.apportion``), and every record gets its
                       share of the attempts
    a group of one     no pack: the record is asked as an ordinary single call

On the record's side (``packed_completion``), what it gets is its first answer from that
provider; the enricher judges it like any answer, so an invalid one is re-asked alone
(a single-record re-ask quoting its errors), and one record's bad answer never touches
its neighbours. Asked alone instead (kind ``alone``, then the ordinary ladder):

    the pack's answer holds no usable answer for it (missing, given twice, cut off)
    the pack's call failed for a reason about the request (400, 422, context too long,
        content filter): the record may be what it was about

A pack's call that failed for a reason about the provider (transient errors after the
retries, circuit open, 401/403/404) is every record's failure on that provider: each
moves on to the next provider with its share of the attempts, as a single call would.

Time a record waits for its pack (the linger, and the pack's wait for provider capacity)
does not count against its deadline (``core.deadline``): the call itself is bounded by
the provider's ``timeout_s`` and retries, like every call. Cached records never get here:
the response cache answers them before any call.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from transforms.core.answers.unpack import Element, unpack
from transforms.core.calls.apportion import share_attempt, weights
from transforms.core.calls.policy import ProviderUnavailable, classify, systemic_reason
from transforms.core.calls.providers import CallFailed, Completion, Provider
from transforms.core.deadline import waiting_for_capacity
from transforms.core.errors import Attempt
from transforms.core.job import Job
from transforms.core.prompting.packing import PackPrompt

__all__ = ["PackQueue", "Share", "pack_queues", "packed_completion"]

NUMBER_TOKENS = 8  # room for an answer's number and separators, per record of a pack
Sleep = Callable[[float], Awaitable[None]]
Messages = Sequence[Mapping[str, str]]


@dataclass(frozen=True)
class Share:
    """What one record gets back from its pack: its share of the call's attempts and its
    answer, or why it has none. No attempts and no reason: it was alone, nothing was sent."""

    attempts: tuple[Attempt, ...] = ()
    element: Element | None = None
    why: str | None = None


_Waiter = tuple[str, "asyncio.Future[Share]"]


class PackQueue:
    def __init__(
        self,
        provider: Provider,
        prompt: PackPrompt,
        size: int,
        linger_s: float,
        max_tokens: int,
        *,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._provider, self._prompt = provider, prompt
        self._size, self._linger_s, self._max_tokens = size, linger_s, max_tokens
        self._sleep = sleep
        self._pricing = provider.spec.pricing
        self._open: list[_Waiter] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def ask(self, content: str) -> Share:
        """The record's share of its pack (``content``: its rendered user turn). Raises
        ``CallFailed`` (with the record's share of the attempts) when the call failed."""
        waiter: asyncio.Future[Share] = asyncio.get_running_loop().create_future()
        group = self._open
        group.append((content, waiter))
        if len(group) >= self._size:
            self._close(group)
        elif len(group) == 1:
            self._spawn(self._linger(group))
        async with waiting_for_capacity():  # bounded by the pack call's own timeouts
            return await waiter

    async def _linger(self, group: list[_Waiter]) -> None:
        await self._sleep(self._linger_s)
        self._close(group)

    def _close(self, group: list[_Waiter]) -> None:
        if group is self._open:
            self._open = []
            self._spawn(self._send(group))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        # A context of its own: no record's deadline is the pack's.
        task = asyncio.get_running_loop().create_task(coroutine, context=contextvars.Context())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, group: list[_Waiter]) -> None:
        live = [(content, waiter) for content, waiter in group if not waiter.done()]
        if len(live) < 2:  # nobody to share with: asked as an ordinary call
            for _, waiter in live:
                waiter.set_result(Share())
            return
        contents = [content for content, _ in live]
        size = len(contents)
        messages = self._prompt.messages(contents)
        total = sum(len(m["content"]) for m in messages)
        prompt_weights = weights(total, [len(self._prompt.block([c])) for c in contents])
        try:
            completion = await self._provider.complete(
                messages,
                self._prompt.schema(size),
                kind="call",
                max_tokens=size * (self._max_tokens + NUMBER_TOKENS),
            )
        except CallFailed as failed:
            shares = self._shares(failed.attempts, prompt_weights, [1.0] * size)
            for (_, waiter), attempts in zip(live, shares, strict=True):
                if not waiter.done():
                    waiter.set_exception(CallFailed(failed.last_error, attempts))
            return
        except Exception as exc:  # a defect: every record of the pack meets it
            for _, waiter in live:
                if not waiter.done():
                    waiter.set_exception(exc)
            return
        truncated = completion.finish_reason == "length"
        unpacked = unpack(completion.text, size, truncated=truncated)
        elements = unpacked.elements
        own = [elements[n].chars if n in elements else 0 for n in range(1, size + 1)]
        completion_weights = weights(len(completion.text), own)
        shares = self._shares(completion.attempts, prompt_weights, completion_weights)
        for number, ((_, waiter), attempts) in enumerate(zip(live, shares, strict=True), 1):
            if not waiter.done():
                element = unpacked.elements.get(number)
                waiter.set_result(Share(attempts, element, unpacked.missing.get(number)))

    def _shares(
        self,
        attempts: Sequence[Attempt],
        prompt_weights: Sequence[float],
        completion_weights: Sequence[float],
    ) -> list[tuple[Attempt, ...]]:
        """Per record, its share of every attempt of the call."""
        per_attempt = [
            share_attempt(a, prompt_weights, completion_weights, self._pricing) for a in attempts
        ]
        return [tuple(shared[i] for shared in per_attempt) for i in range(len(prompt_weights))]


def pack_queues(
    job: Job, providers: Sequence[Provider], sleep: Sleep = asyncio.sleep
) -> dict[str, PackQueue]:
    """One queue per synchronous provider of the chain, by name; none without packing."""
    prompt = job.packing
    if prompt is None:
        return {}
    spec = job.task.prompt
    return {
        p.spec.name: PackQueue(
            p,
            prompt,
            spec.records_per_call,
            spec.pack_linger_s,
            job.task.generation.max_tokens,
            sleep=sleep,
        )
        for p in providers
        if getattr(p.spec, "mode", "sync") == "sync"
    }


def _about_the_request(error: BaseException) -> bool:
    """A failure that may be about what was asked (400, 422, context too long, content
    filter), not about the provider: worth asking each record alone."""
    if isinstance(error, ProviderUnavailable) or systemic_reason(error) is not None:
        return False
    return classify(error) != "transient"


async def packed_completion(
    queue: PackQueue, provider: Provider, messages: Messages, schema: dict[str, Any]
) -> Completion:
    """The record's first answer from ``provider`` (``messages``: its own single-record
    conversation): its answer out of its pack, or asked alone. Raises ``CallFailed`` with
    every attempt of the record (its shares included)."""
    try:
        share = await queue.ask(messages[-1]["content"])
    except CallFailed as failed:
        if not _about_the_request(failed.last_error):
            raise
        return await _alone(provider, messages, schema, failed.attempts)
    if share.element is not None:
        element = share.element
        return Completion(element.text, "stop", share.attempts, element.repairs)
    return await _alone(provider, messages, schema, share.attempts)


async def _alone(
    provider: Provider, messages: Messages, schema: dict[str, Any], before: Sequence[Attempt]
) -> Completion:
    """Asked on its own: an ordinary call when nothing was sent for it yet, else ``alone``."""
    kind = "alone" if before else "call"
    try:
        completion = await provider.complete([dict(m) for m in messages], schema, kind=kind)
    except CallFailed as failed:
        raise CallFailed(failed.last_error, (*before, *failed.attempts)) from None
    return replace(completion, attempts=(*before, *completion.attempts))
