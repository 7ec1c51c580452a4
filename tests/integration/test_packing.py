"""Many records in one call, through a real drain (Kafka, Prism/Beam, HTTP): a scripted
OpenAI-compatible server answers packs in reversed order, leaves an answer out, breaks
one, answers one record twice and one out of range. Every output lands on its own record
(by input coordinates and by the text it answers), neighbours are unaffected, and the
records' apportioned tokens and cost add up to what the server billed. Then the local
model with four records a call."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from pipelines.topics import topic_records
from tests.fault_server import Action, FaultServer, Reply
from tests.integration.conftest import (
    MakeTask,
    committed_offsets,
    end_offsets,
    local_provider,
    produce,
    reviews,
    run_job,
    sample_reviews,
)
from transforms.core.config.task import PricingSpec
from transforms.core.ledger.prices import call_cost_usd
from transforms.core.ledger.usage import Usage

_BLOCK = re.compile(r'<record-(\w+) i="(\d+)">\n(.*?)\n</record-\1>', re.DOTALL)
_TEXT = re.compile(r"Review: <data-\w+>(.*?)</data-\w+>", re.DOTALL)
SYMBOLS = ["positive", "negative", "neutral", "mixed"]
PRICING = {"prompt_per_million": 0.15, "completion_per_million": 0.6}
RECORDS = 12


def expected(text: str) -> dict[str, Any]:
    """The scripted server's answer for a review text: its own, deterministic."""
    return {"sentiment": SYMBOLS[len(text) % 4], "rating": len(text) % 5 + 1}


class PackServer:
    """Answers single calls and packs from the review texts it is shown. For packs: the
    answers in reversed order, and the records whose texts are in ``missing``, ``bad``,
    ``twice`` and ``elsewhere`` answered not at all, with rating 9, twice (differently) and
    under a number outside the pack. Every reply's usage is chosen here and kept (billed)."""

    def __init__(self, missing: str, bad: str, twice: str, elsewhere: str) -> None:
        self.missing, self.bad, self.twice, self.elsewhere = missing, bad, twice, elsewhere
        self.billed: list[tuple[int, int]] = []
        self.packs: list[int] = []  # records per pack call
        self._lock = threading.Lock()

    def __call__(self, index: int, body: dict[str, Any]) -> Action:
        schema = body["response_format"]["json_schema"]["schema"]
        messages = body["messages"]
        if "answers" in schema["properties"]:
            blocks = _BLOCK.findall(messages[-1]["content"])
            answers = self._pack([(int(n), _TEXT.findall(b)[0]) for _, n, b in blocks])
            content = json.dumps({"answers": answers})
            with self._lock:
                self.packs.append(len(blocks))
        else:  # alone or a re-ask: the record is the last user turn showing a review
            shown = [m["content"] for m in messages if "Review: <data-" in m["content"]]
            content = json.dumps(expected(_TEXT.findall(shown[-1])[0]))
        usage = (1000 + 13 * index + len(messages), 7 + len(content) // 5)
        with self._lock:
            self.billed.append(usage)
        return Reply.ok(content, prompt_tokens=usage[0], completion_tokens=usage[1])

    def _pack(self, records: list[tuple[int, str]]) -> list[dict[str, Any]]:
        answers: list[dict[str, Any]] = []
        for number, text in reversed(records):
            answer = {"i": number, **expected(text)}
            if text == self.missing:
                continue
            if text == self.bad:
                answer["rating"] = 9
            if text == self.elsewhere:
                answer["i"] = len(records) + 3
            answers.append(answer)
            if text == self.twice:
                answers.append({**answer, "rating": 1 + answer["rating"] % 5})
        return answers


@pytest.fixture
def pack_server() -> Iterator[tuple[FaultServer, PackServer]]:
    texts = [r["text"] for r in sample_reviews(RECORDS)]
    assert len(set(texts)) == RECORDS
    script = PackServer(missing=texts[1], bad=texts[2], twice=texts[5], elsewhere=texts[7])
    with FaultServer(script=script) as server:
        yield server, script


def test_packed_answers_land_on_their_own_records_and_the_tokens_add_up(
    make_task: MakeTask, pack_server: tuple[FaultServer, PackServer]
) -> None:
    server, script = pack_server
    provider = {"name": "scripted", "base_url": server.base_url, "model": "m"}
    job = make_task(
        [{**provider, "pricing": PRICING}],
        # 0.5 s: groups fill under CI load too (the default 0.05 s gave 4, 3, 4 here)
        prompt={"records_per_call": 4, "pack_linger_s": 0.5},
    )
    inputs = sample_reviews(RECORDS)
    produce(job, reviews(RECORDS))  # record i: partition i % 3, offset i // 3

    summary = run_job(job.task)

    assert list(topic_records(job, dead_letters=True)) == []
    outputs = list(topic_records(job, dead_letters=False))
    assert len(outputs) == RECORDS == summary.get("written.output")
    by_source = {
        (
            int(o["headers"]["llm_enrich.source.partition"]),
            int(o["headers"]["llm_enrich.source.offset"]),
        ): o
        for o in outputs
    }
    special = {
        1: ["call", "alone"],
        2: ["call", "reask"],
        5: ["call", "alone"],
        7: ["call", "alone"],
    }
    shared = 0
    for index, record in enumerate(inputs):
        output = by_source[(index % 3, index // 3)]
        assert output["value"] == {"review_id": record["review_id"], **expected(record["text"])}
        attempts = json.loads(output["headers"]["llm_enrich.attempts"])
        if "shared" not in attempts[0]:
            continue  # alone in its group: an ordinary call
        shared += 1
        assert [a["kind"] for a in attempts] == special.get(index, ["call"]), index
        assert attempts[0]["shared"][1] >= 2
    assert script.packs and shared >= 8, (script.packs, shared)
    assert summary.get("pack_calls") == len(script.packs)
    assert summary.get("llm_calls") == len(script.billed) == server.stats.requests

    # The records' shares add up to what the server billed, call by call
    usages = [json.loads(o["headers"]["llm_enrich.usage"]) for o in outputs]
    prompt = sum(p for p, _ in script.billed)
    completion = sum(c for _, c in script.billed)
    assert sum(u["prompt_tokens"] for u in usages) == prompt == summary.get("prompt_tokens")
    assert sum(u["completion_tokens"] for u in usages) == completion
    assert summary.get("completion_tokens") == completion
    pricing = PricingSpec(**PRICING)
    billed_usd = sum(call_cost_usd(Usage(p, 0, c), pricing) for p, c in script.billed)
    assert sum(u["cost_usd"] for u in usages) == pytest.approx(billed_usd, abs=1e-7)
    assert committed_offsets(job) == end_offsets(job)


def test_four_records_a_call_on_the_local_model(make_task: MakeTask, llm_server: None) -> None:
    job = make_task(
        [local_provider(timeout_s=240)],
        prompt={"records_per_call": 4, "pack_linger_s": 0.5},
        policy={"max_dead_letter_ratio": None},
    )
    inputs = sample_reviews(8)
    produce(job, reviews(8))

    summary = run_job(job.task)

    outputs = list(topic_records(job, dead_letters=False))
    dead = list(topic_records(job, dead_letters=True))
    assert len(outputs) + len(dead) == 8 == summary.get("read")
    assert summary.get("pack_calls") >= 1
    for output in outputs:
        index = next(
            i
            for i in range(8)
            if (i % 3, i // 3)
            == (
                int(output["headers"]["llm_enrich.source.partition"]),
                int(output["headers"]["llm_enrich.source.offset"]),
            )
        )
        assert output["value"]["review_id"] == inputs[index]["review_id"]
        assert output["value"]["sentiment"] in SYMBOLS and 1 <= output["value"]["rating"] <= 5
    for letter in dead:
        assert letter["value"]["stage"] in ("validate", "guard")
    assert committed_offsets(job) == end_offsets(job)
