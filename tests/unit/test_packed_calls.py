"""Shared calls through the enricher, with a scripted provider that answers each record
from its own text (pure: no network). Swapped, missing, duplicated, out-of-range and bad
answers land on the right records or are asked again alone; tokens add up."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import httpx2 as httpx
import openai
import pytest

from tests.conftest import EXAMPLE_TASK
from tests.unit.test_answer_cache import Memory
from transforms.core.cache.answers import AnswerCache
from transforms.core.calls.enricher import Enricher
from transforms.core.calls.policy import systemic_reason
from transforms.core.calls.providers import CallFailed, Completion
from transforms.core.config.task import PricingSpec, load_task, with_records_per_call
from transforms.core.errors import Attempt, SystemicFault
from transforms.core.job import Job, compile_job
from transforms.core.ledger.prices import call_cost_usd
from transforms.core.ledger.usage import Usage
from transforms.core.records import Enriched, Failure, KafkaRecord, Parsed

TASK = load_task(EXAMPLE_TASK)
PRICING = PricingSpec(prompt_per_million=0.15, completion_per_million=0.6)
JOB = compile_job(with_records_per_call(TASK, 4))
TEXTS = ["Great kettle.", "Leaks a lot, returned.", "Fine I guess, does the job.", "Loud."]
_VALUE = re.compile(r"Review: <data-\w+>(.*?)</data-\w+>", re.DOTALL)
_BLOCK = re.compile(r'<record-(\w+) i="(\d+)">\n(.*?)\n</record-\1>', re.DOTALL)
Mangle = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


def expected(text: str) -> dict[str, Any]:
    """What the scripted provider answers for a review text (its own, deterministic)."""
    return {
        "sentiment": "positive",
        "topics": [text.split()[0].lower()],
        "summary": text[:40],
        "rating": len(text) % 5 + 1,
    }


def record(offset: int, text: str) -> Parsed:
    fields = {"review_id": f"r{offset}", "product": "P", "text": text, "submitted_at": 0}
    return Parsed(KafkaRecord("reviews", 0, offset, 0, None, b"v"), fields, "in@x")


RECORDS = [record(i, t) for i, t in enumerate(TEXTS)]


class Echo:
    """Answers every record of a call from its text; ``mangle`` rewrites a pack's answers
    (swap, drop, break them), ``fail`` makes pack calls fail with an error."""

    def __init__(
        self, name: str = "a", mangle: Mangle | None = None, fail: BaseException | None = None
    ) -> None:
        self.spec = SimpleNamespace(name=name, model=f"{name}-model", mode="sync", pricing=PRICING)
        self.mangle, self.fail = mangle, fail
        self.calls: list[dict[str, Any]] = []
        self.usage: list[tuple[int, int]] = []  # (prompt, completion) tokens it reported

    @staticmethod
    def systemic_reason(exc: BaseException) -> str | None:
        return systemic_reason(exc)

    @staticmethod
    def cost(prompt_tokens: int, completion_tokens: int) -> float:
        return call_cost_usd(Usage(prompt_tokens, 0, completion_tokens), PRICING)

    async def complete(
        self, messages: Any, schema: Any, *, kind: str, max_tokens: int | None = None
    ) -> Completion:
        packed = "answers" in schema["properties"]
        self.calls.append(
            {"kind": kind, "messages": list(messages), "max_tokens": max_tokens, "pack": packed}
        )
        prompt_tokens = sum(len(m["content"]) for m in messages) // 4 + 7
        if packed and self.fail is not None:
            attempt = Attempt(self.spec.name, self.spec.model, kind, error=repr(self.fail))
            raise CallFailed(self.fail, (attempt,))
        if packed:
            blocks = _BLOCK.findall(messages[-1]["content"])
            items = [{"i": int(n), **expected(_text(b))} for _, n, b in blocks]
            text = json.dumps({"answers": self.mangle(items) if self.mangle else items})
        else:  # alone, or a re-ask: the record is the last user turn that shows one
            shown = [
                m["content"] for m in messages if m["role"] == "user" and "Review:" in m["content"]
            ]
            text = json.dumps(expected(_text(shown[-1])))
        completion_tokens = len(text) // 3
        self.usage.append((prompt_tokens, completion_tokens))
        attempt = Attempt(
            self.spec.name,
            self.spec.model,
            kind,
            status=200,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=self.cost(prompt_tokens, completion_tokens),
        )
        return Completion(text, "stop", (attempt,))


def _text(content: str) -> str:
    return _VALUE.findall(content)[-1]


def enrich_all(
    job: Job, providers: Sequence[Any], records: Sequence[Parsed] = RECORDS, **options: Any
) -> list[Enriched | Failure]:
    async def go() -> list[Enriched | Failure]:
        enricher = Enricher(job, providers, **options)
        return list(await asyncio.gather(*(enricher.enrich(r) for r in records)))

    return asyncio.run(go())


def assert_right(results: Sequence[Enriched | Failure], records: Sequence[Parsed]) -> None:
    """Every result is its own record's answer (by offset and by the text it was about)."""
    for result, parsed in zip(results, records, strict=True):
        assert isinstance(result, Enriched), result
        assert result.source.offset == parsed.source.offset
        assert result.output == {
            "review_id": parsed.fields["review_id"],
            "product": "P",
            **expected(parsed.fields["text"]),
        }


def kinds(result: Enriched | Failure) -> list[str]:
    return [a.kind for a in result.attempts]


def test_four_records_share_one_call_and_each_gets_its_own_answer() -> None:
    echo = Echo()
    results = enrich_all(JOB, [echo])
    assert_right(results, RECORDS)
    assert len(echo.calls) == 1 and echo.calls[0]["pack"]
    assert echo.calls[0]["max_tokens"] == 4 * (TASK.generation.max_tokens + 8)
    assert echo.calls[0]["messages"][:-1] == list(JOB.packing.preamble)  # type: ignore[union-attr]
    assert [r.attempts[0].shared_index for r in results] == [1, 2, 3, 4]
    assert {r.attempts[0].shared_by for r in results} == {4}


def test_tokens_and_cost_of_a_shared_call_add_up_over_its_records() -> None:
    echo = Echo()
    results = enrich_all(JOB, [echo])
    [(prompt, completion)] = echo.usage
    assert sum(r.attempts[0].prompt_tokens for r in results) == prompt
    assert sum(r.attempts[0].completion_tokens for r in results) == completion
    total_cost = Echo.cost(prompt, completion)
    assert sum(r.attempts[0].cost_usd for r in results) == pytest.approx(total_cost, rel=1e-12)
    # the shared part evenly, each record's own by its length: the longest text pays most
    shares = [r.attempts[0].prompt_tokens for r in results]
    assert max(shares) - min(shares) <= (len(TEXTS[2]) - len(TEXTS[3])) // 4 + 2
    assert shares.index(max(shares)) == 2


def test_answers_in_another_order_land_on_their_own_records() -> None:
    echo = Echo(mangle=lambda items: [items[2], items[0], items[3], items[1]])
    assert_right(enrich_all(JOB, [echo]), RECORDS)
    assert len(echo.calls) == 1


def test_a_missing_answer_is_asked_alone_and_shifts_nothing() -> None:
    echo = Echo(mangle=lambda items: [i for i in items if i["i"] != 2])
    results = enrich_all(JOB, [echo])
    assert_right(results, RECORDS)
    assert [kinds(r) for r in results] == [["call"], ["call", "alone"], ["call"], ["call"]]
    alone = echo.calls[1]
    assert alone["kind"] == "alone" and not alone["pack"] and alone["max_tokens"] is None
    assert alone["messages"] == JOB.prompt.messages(RECORDS[1].fields)  # its own prompt


def test_a_bad_answer_is_reasked_alone_with_its_errors_and_its_neighbours_stay() -> None:
    def break_third(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**i, "rating": 9} if i["i"] == 3 else i for i in items]

    echo = Echo(mangle=break_third)
    results = enrich_all(JOB, [echo])
    assert_right(results, RECORDS)
    assert [kinds(r) for r in results] == [["call"], ["call"], ["call", "reask"], ["call"]]
    reask = echo.calls[1]["messages"]
    assert reask[: len(reask) - 2] == JOB.prompt.messages(RECORDS[2].fields)
    assert json.loads(reask[-2]["content"]) == {**expected(TEXTS[2]), "rating": 9}
    assert "$.rating: must be <= 5" in reask[-1]["content"]


def test_duplicated_out_of_range_and_unnumbered_answers_are_asked_alone() -> None:
    def scramble(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        first, second, third, fourth = items
        return [
            first,
            {**first, "rating": 1 + first["rating"] % 5},  # two answers for record 1
            {**second, "i": 7},  # no record 7: record 2 has none
            {k: v for k, v in third.items() if k != "i"},  # no number: record 3 has none
            fourth,
        ]

    echo = Echo(mangle=scramble)
    results = enrich_all(JOB, [echo])
    assert_right(results, RECORDS)
    assert [kinds(r) for r in results] == [
        ["call", "alone"],
        ["call", "alone"],
        ["call", "alone"],
        ["call"],
    ]


def test_a_pack_refused_for_what_it_asked_is_asked_record_by_record() -> None:
    refused = openai.BadRequestError(
        "max_tokens is too large",
        response=httpx.Response(400, request=httpx.Request("POST", "http://x")),
        body=None,
    )
    echo = Echo(fail=refused)
    results = enrich_all(JOB, [echo])
    assert_right(results, RECORDS)
    assert [c["pack"] for c in echo.calls] == [True, False, False, False, False]
    assert all(kinds(r) == ["call", "alone"] for r in results)
    assert all(r.attempts[0].error and r.attempts[0].shared_by == 4 for r in results)


def test_a_pack_that_fails_for_the_provider_falls_back_and_packs_again_there() -> None:
    down = openai.APIConnectionError(request=httpx.Request("POST", "http://x"))
    first, second = Echo("a", fail=down), Echo("b")
    results = enrich_all(JOB, [first, second])
    assert_right(results, RECORDS)
    assert len(first.calls) == 1 and len(second.calls) == 1 and second.calls[0]["pack"]
    assert all([a.provider for a in r.attempts] == ["a", "b"] for r in results)
    assert all(r.provider == "b" for r in results)  # type: ignore[union-attr]


def test_a_pack_refused_by_every_provider_for_a_systemic_reason_stops_the_run() -> None:
    denied = openai.AuthenticationError(
        "bad key",
        response=httpx.Response(401, request=httpx.Request("POST", "http://x")),
        body=None,
    )
    with pytest.raises(SystemicFault, match="authentication failed"):
        enrich_all(JOB, [Echo("a", fail=denied), Echo("b", fail=denied)])


def test_a_record_with_nobody_to_share_with_is_asked_exactly_as_without_packing() -> None:
    echo = Echo()
    results = enrich_all(JOB, [echo], records=RECORDS[:1])
    assert_right(results, RECORDS[:1])
    single = echo.calls[0]
    assert single == {
        "kind": "call",
        "messages": JOB.prompt.messages(RECORDS[0].fields),
        "max_tokens": None,
        "pack": False,
    }
    assert results[0].attempts[0].shared_by == 1


def test_without_packing_nothing_changes() -> None:
    echo = Echo()
    job = compile_job(TASK)
    results = enrich_all(job, [echo])
    assert_right(results, RECORDS)
    assert [c["pack"] for c in echo.calls] == [False] * 4
    assert {c["max_tokens"] for c in echo.calls} == {None}


def test_a_full_pack_goes_at_once_and_a_partial_one_after_the_linger() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        if seconds == TASK.prompt.pack_linger_s:
            await asyncio.Event().wait()  # a linger that never ends: only a full pack goes

    echo = Echo()
    assert_right(enrich_all(JOB, [echo], sleep=sleep), RECORDS)
    assert len(echo.calls) == 1 and slept == [TASK.prompt.pack_linger_s]

    echo = Echo()
    five = [*RECORDS, record(9, "Six words in this review text.")]
    assert_right(enrich_all(JOB, [echo], records=five), five)
    assert [c["pack"] for c in echo.calls] == [True, False]  # 4 at once; the fifth alone


def test_cached_records_never_go_into_a_pack() -> None:
    backend = Memory()

    async def go() -> tuple[list[Enriched | Failure], Echo]:
        name = TASK.chain[0].name  # stored under the key of a provider of the task
        cache = AnswerCache(JOB, backend)
        await Enricher(JOB, [Echo(name)], cache=cache).enrich(RECORDS[0])
        echo = Echo(name)
        enricher = Enricher(JOB, [echo], cache=AnswerCache(JOB, backend))
        return list(await asyncio.gather(*(enricher.enrich(r) for r in RECORDS))), echo

    results, echo = asyncio.run(go())
    assert_right(results, RECORDS)
    assert [r.cache for r in results] == ["hit", "miss", "miss", "miss"]  # type: ignore[union-attr]
    assert len(echo.calls) == 1
    assert len(_BLOCK.findall(echo.calls[0]["messages"][-1]["content"])) == 3
