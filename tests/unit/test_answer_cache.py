"""The response cache's policy inside the enricher, over an in-memory backend and scripted
providers (pure: no network, no disk): what is served, what is stored, what is not."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from tests.unit.test_enricher import GOOD, JOB, RECORD, Scripted
from transforms.core.cache.answers import AnswerCache
from transforms.core.cache.backend import CacheError
from transforms.core.cache.entry import decode_entry
from transforms.core.calls.enricher import Enricher
from transforms.core.errors import Attempt
from transforms.core.records import Enriched, Failure, KafkaRecord, Parsed

A, B = (p.name for p in JOB.task.providers)  # the cache keys the job's provider chain
GENERATED = {k: GOOD[k] for k in ("sentiment", "topics", "summary", "rating")}


class Memory:
    """A backend in a dict; ``fail`` makes every operation raise; counts operations."""

    name = "memory"

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}
        self.fail: BaseException | None = None
        self.operations = 0

    async def ping(self) -> None:
        pass

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        self._maybe_fail()
        return [self.values.get(k) for k in keys]

    async def put(self, key: str, value: bytes) -> None:
        self._maybe_fail()
        self.values[key] = value

    async def aclose(self) -> None:
        pass

    def _maybe_fail(self) -> None:
        self.operations += 1
        if self.fail is not None:
            raise self.fail


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def enricher(backend: Memory, *providers: Scripted, clock: Clock | None = None) -> Enricher:
    clock = clock or Clock()
    cache = AnswerCache(JOB, backend, clock=lambda: 1_700_000_000.0, monotonic=clock)
    return Enricher(JOB, providers, cache=cache)  # type: ignore[arg-type]


def other_record(offset: int, **fields: Any) -> Parsed:
    source = replace(RECORD.source, offset=offset)
    return Parsed(source, {**RECORD.fields, **fields}, RECORD.input_schema)


def enrich(e: Enricher, record: Parsed = RECORD) -> Enriched | Failure:
    return asyncio.run(e.enrich(record))


def test_a_second_ask_is_served_from_the_cache_without_a_call() -> None:
    backend = Memory()
    provider = Scripted(A, [json.dumps(GOOD)])  # one answer only: a second call fails
    first = enrich(enricher(backend, provider))
    second = enrich(enricher(backend, provider), other_record(4))
    assert isinstance(first, Enriched) and first.cache == "miss" and len(first.attempts) == 1
    assert isinstance(second, Enriched) and second.cache == "hit" and second.attempts == ()
    assert second.output == first.output and second.provider == A
    assert second.model == f"{A}-model" and second.source.offset == 4
    assert len(provider.conversations) == 1


def test_a_hit_says_what_the_answer_cost_when_it_was_produced() -> None:
    backend = Memory()

    class Priced(Scripted):
        async def complete(self, messages: Any, schema: Any, *, kind: str) -> Any:
            done = await super().complete(messages, schema, kind=kind)
            priced = replace(done.attempts[0], prompt_tokens=100, completion_tokens=20)
            return replace(done, attempts=(replace(priced, cost_usd=0.0025),))

    provider = Priced(A, ['{"sentiment": "good"}', json.dumps(GOOD)])  # re-asked once
    enrich(enricher(backend, provider))
    second = enrich(enricher(backend), other_record(4))
    assert isinstance(second, Enriched) and second.saved is not None
    assert (second.saved.calls, second.saved.prompt_tokens) == (2, 200)
    assert (second.saved.completion_tokens, second.saved.cost_usd) == (40, 0.005)
    (entry,) = [decode_entry(v) for v in backend.values.values()]
    assert entry is not None and entry.created_at_ms == 1_700_000_000_000


def test_copied_fields_come_from_the_record_being_enriched_not_the_cache() -> None:
    """review_id is copied and not in the prompt: two records with the same product and
    text ask the same question, and each keeps its own id."""
    backend = Memory()
    enrich(enricher(backend, Scripted(A, [json.dumps(GOOD)])))
    second = enrich(enricher(backend), other_record(4, review_id="r-other"))
    assert isinstance(second, Enriched) and second.output["review_id"] == "r-other"
    (stored,) = backend.values.values()
    assert json.loads(stored)["answer"] == GENERATED  # only what the model generated


def test_another_record_is_a_miss() -> None:
    backend = Memory()
    enrich(enricher(backend, Scripted(A, [json.dumps(GOOD)])))
    provider = Scripted(A, [json.dumps(GOOD)])
    result = enrich(enricher(backend, provider), other_record(4, text="Too dim."))
    assert isinstance(result, Enriched) and result.cache == "miss"
    assert len(provider.conversations) == 1 and len(backend.values) == 2


def test_failures_are_never_stored() -> None:
    backend = Memory()
    result = enrich(enricher(backend, Scripted(A, ['{"rating": 9}', '{"rating": 9}'])))
    assert isinstance(result, Failure) and result.stage == "validate"
    assert backend.values == {}


def test_an_answer_from_the_fallback_is_stored_under_its_key_and_served_first() -> None:
    backend = Memory()
    first = enrich(enricher(backend, Scripted(A, [TimeoutError()]), Scripted(B, [GOOD_S])))
    assert isinstance(first, Enriched) and first.provider == B
    primary = Scripted(A, [])  # would fail if asked
    second = enrich(enricher(backend, primary, Scripted(B, [])), other_record(4))
    assert isinstance(second, Enriched) and second.cache == "hit" and second.provider == B
    assert primary.conversations == []


def test_an_entry_that_no_longer_validates_is_a_miss() -> None:
    backend = Memory()
    enrich(enricher(backend, Scripted(A, [json.dumps(GOOD)])))
    (key,) = backend.values
    backend.values[key] = backend.values[key].replace(b'"rating":5', b'"rating":"five"')
    provider = Scripted(A, [json.dumps(GOOD)])
    cached = enricher(backend, provider)
    result = enrich(cached, other_record(4))
    assert isinstance(result, Enriched) and result.cache == "miss"
    assert len(provider.conversations) == 1
    assert cached._cache is not None and cached._cache.unusable == 1


def test_a_backend_failing_is_a_miss_counted_logged_once_then_left_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend, clock = Memory(), Clock()
    backend.fail = CacheError("ConnectionError: Error 111 connecting to 127.0.0.1:16379")
    provider = Scripted(A, [json.dumps(GOOD)] * 3)
    e = enricher(backend, provider, clock=clock)
    with caplog.at_level(logging.WARNING, "llm_enrich.cache"):
        results = [enrich(e, other_record(n)) for n in range(2)]
        clock.now += 11  # after retry_after_error_s the cache is tried again
        results.append(enrich(e, other_record(2)))
    assert all(isinstance(r, Enriched) and r.cache == "miss" for r in results)
    assert len(provider.conversations) == 3
    assert backend.operations == 2  # the first lookup, then one lookup 11 s later
    assert e._cache is not None and e._cache.errors == 2 and e._cache.errors_since_last() == 2
    (warning,) = caplog.records
    assert "going on without it" in warning.getMessage()
    assert "Error 111" in warning.getMessage()


def test_an_unexpected_backend_error_is_logged_by_class_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = Memory()
    backend.fail = RuntimeError("redis://:hunter2-password@host")  # never printed
    with caplog.at_level(logging.WARNING, "llm_enrich.cache"):
        result = enrich(enricher(backend, Scripted(A, [json.dumps(GOOD)])))
    assert isinstance(result, Enriched)
    assert "hunter2" not in caplog.text and "RuntimeError" in caplog.text


def test_duplicates_in_flight_together_make_one_call() -> None:
    backend = Memory()

    class Slow(Scripted):
        async def complete(self, messages: Any, schema: Any, *, kind: str) -> Any:
            await asyncio.sleep(0.01)
            return await super().complete(messages, schema, kind=kind)

    provider = Slow(A, [json.dumps(GOOD)])
    e = enricher(backend, provider)
    records = [other_record(n) for n in range(5)]
    results = asyncio.run(e.enrich_all(records))
    assert len(provider.conversations) == 1
    assert [r.cache for r in results if isinstance(r, Enriched)] == ["miss"] + ["hit"] * 4


def test_without_a_cache_nothing_is_marked() -> None:
    result = asyncio.run(Enricher(JOB, [Scripted(A, [GOOD_S])]).enrich(RECORD))  # type: ignore[list-item]
    assert isinstance(result, Enriched) and result.cache is None and result.saved is None


GOOD_S = json.dumps(GOOD)
_ = (Attempt, KafkaRecord)
