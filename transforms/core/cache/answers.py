"""The response cache's policy: serve a validated answer asked before, store new ones.

    through(record, messages, produce)
        keys      one per provider of the chain (``key.answer_key``), in chain order
        lookup    one round trip for all of them; the first entry that decodes and still
                  validates against the output schema is a hit: the answer, with the
                  record's own copied fields, and no call
        wait      the same question already in flight in this process (a duplicate
                  input): wait for it, then look again
        produce   the provider chain; its validated answer is stored under the key of the
                  provider that gave it, failures are never stored

The cache is an optimisation: a backend error is a miss (counted in ``errors``), logged
once, and the cache is left alone for ``retry_after_error_s`` so that a Redis gone away
mid-run costs no time per record; the providers are asked as if there were no cache.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace

from transforms.core.answers.validation import validate
from transforms.core.cache.backend import CacheBackend, CacheError
from transforms.core.cache.entry import CachedAnswer, decode_entry, encode_entry
from transforms.core.cache.key import acceptance_of, answer_key
from transforms.core.deadline import waiting_for_capacity
from transforms.core.job import Job
from transforms.core.records import Enriched, Parsed, Saved

__all__ = ["AnswerCache"]

log = logging.getLogger("llm_enrich.cache")
Clock = Callable[[], float]
Messages = Sequence[Mapping[str, str]]


class AnswerCache:
    def __init__(
        self,
        job: Job,
        backend: CacheBackend,
        *,
        clock: Clock = time.time,
        monotonic: Clock = time.monotonic,
        retry_after_error_s: float = 10.0,
    ) -> None:
        self._job = job
        self._acceptance = acceptance_of(job.task)
        self.backend = backend
        self._clock = clock
        self._monotonic = monotonic
        self._retry_after_error_s = retry_after_error_s
        self._down_until = 0.0
        self._warned = False
        self._in_flight: dict[str, asyncio.Event] = {}
        self.errors = 0  # failed backend operations
        self.unusable = 0  # entries found that did not decode or validate: misses
        self._errors_reported = 0

    def errors_since_last(self) -> int:
        delta, self._errors_reported = self.errors - self._errors_reported, self.errors
        return delta

    def keys(self, messages: Messages) -> list[str]:
        job, task = self._job, self._job.task
        return [
            answer_key(
                provider=provider,
                generation=task.generation,
                messages=messages,
                response_schema=job.shape.json_schema,
                prompt_hash=job.prompt.hash,
                output_schema=job.output_schema.identity,
                acceptance=self._acceptance,
            )
            for provider in task.chain
        ]

    async def through(
        self, parsed: Parsed, messages: Messages, produce: Callable[[], Awaitable[Enriched]]
    ) -> Enriched:
        """The record's answer: from the cache, or from ``produce`` (then stored).
        Exceptions from ``produce`` pass through; nothing is stored for them."""
        keys = self.keys(messages)
        question = keys[0]
        while True:
            hit = await self._lookup(parsed, keys)
            if hit is not None:
                return hit
            pending = self._in_flight.get(question)
            if pending is None:
                break
            async with waiting_for_capacity():  # the leader's own deadline bounds it
                await pending.wait()  # a duplicate in flight: its answer may be stored soon
        done = self._in_flight[question] = asyncio.Event()
        try:
            result = await produce()
            await self._store(result, keys)
        finally:
            del self._in_flight[question]
            done.set()
        return replace(result, cache="miss")

    async def _lookup(self, parsed: Parsed, keys: list[str]) -> Enriched | None:
        if self._monotonic() < self._down_until:
            return None
        try:
            values = await self.backend.get_many(keys)
        except Exception as exc:
            self._failed("lookup", exc)
            return None
        for value in values:
            entry = decode_entry(value) if value is not None else None
            if value is not None and (entry is None or not self._usable(entry)):
                self.unusable += 1
                continue
            if entry is not None:
                return self._served(parsed, entry)
        return None

    def _usable(self, entry: CachedAnswer) -> bool:
        shape = self._job.shape
        if not set(entry.answer) <= set(shape.generated_fields):
            return False
        return not validate(entry.answer, shape.avro)

    def _served(self, parsed: Parsed, entry: CachedAnswer) -> Enriched:
        copied = {name: parsed.fields.get(name) for name in self._job.shape.copied_fields}
        saved = Saved(entry.calls, entry.prompt_tokens, entry.completion_tokens, entry.cost_usd)
        return Enriched(
            parsed.source,
            {**copied, **entry.answer},
            entry.provider,
            entry.model,
            attempts=(),
            cache="hit",
            saved=saved,
        )

    async def _store(self, result: Enriched, keys: list[str]) -> None:
        names = [p.name for p in self._job.task.chain]
        if result.provider not in names or self._monotonic() < self._down_until:
            return
        generated = set(self._job.shape.generated_fields)
        attempts = result.attempts
        entry = CachedAnswer(
            answer={k: v for k, v in result.output.items() if k in generated},
            provider=result.provider,
            model=result.model,
            calls=len(attempts),
            prompt_tokens=sum(a.prompt_tokens for a in attempts),
            completion_tokens=sum(a.completion_tokens for a in attempts),
            cost_usd=sum(a.cost_usd for a in attempts),
            created_at_ms=int(self._clock() * 1000),
        )
        try:
            await self.backend.put(keys[names.index(result.provider)], encode_entry(entry))
        except Exception as exc:
            self._failed("store", exc)

    def _failed(self, operation: str, exc: BaseException) -> None:
        self.errors += 1
        self._down_until = self._monotonic() + self._retry_after_error_s
        if self._warned:
            return
        self._warned = True
        # A backend's own errors are worded without secrets; of anything else, the class.
        why = str(exc) if isinstance(exc, CacheError) else type(exc).__name__
        log.warning(
            "response cache (%s) %s failed: %s; going on without it: providers are asked, "
            "cache errors are counted in the summary (logged once)",
            self.backend.name,
            operation,
            why,
        )
