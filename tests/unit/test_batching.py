"""Batch mode, pure: grouping by count and age, polling, joining by custom_id, resuming
from the durable map, stopping, the deadline; the batch provider's cost and failures; the
enricher re-asking an invalid batch answer on the next synchronous provider. An in-memory
Files/Batches API and store, an injected clock and sleep: nothing waits for real."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletion

from tests.unit.test_enricher import GOOD, JOB, RECORD, Scripted
from transforms.core.calls.batch_provider import BatchProviderClient, batch_line, custom_id
from transforms.core.calls.batching import (
    BatchAbandoned,
    BatchItemFailed,
    BatchOutcome,
    BatchQueue,
    BatchWaitExceeded,
    ItemFailure,
)
from transforms.core.calls.enricher import ABANDONED_BATCH, Enricher
from transforms.core.calls.providers import CallFailed
from transforms.core.config.task import (
    BatchSpec,
    GenerationSpec,
    PricingSpec,
    ProviderSpec,
)
from transforms.core.records import Enriched, Skipped


def completion(content: str) -> ChatCompletion:
    return ChatCompletion.model_validate(
        {
            "id": "c",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100},
        }
    )


class FakeApi:
    """Batches end ``runs_for`` polls after creation; ``answer(cid)`` decides each item."""

    def __init__(self, runs_for: int = 1, answer: Any = None) -> None:
        self.uploads: list[list[bytes]] = []
        self.created: list[str] = []
        self.polls = 0
        self.runs_for = runs_for
        self.answer = answer or (lambda cid: completion(json.dumps(GOOD)))
        self.fail_poll: list[BaseException] = []
        self.fail_upload: BaseException | None = None
        self.existing: dict[str, str] = {}  # file id -> batch id (made by an earlier run)
        self._left: dict[str, int] = {}
        self._files: dict[str, list[str]] = {}

    async def upload(self, lines: Sequence[bytes]) -> str:
        if self.fail_upload is not None:
            raise self.fail_upload
        self.uploads.append(list(lines))
        file_id = f"file-{len(self.uploads)}"
        self._files[file_id] = [json.loads(line)["custom_id"] for line in lines]
        return file_id

    async def create(self, file_id: str) -> str:
        batch_id = f"batch-{file_id}"
        self.created.append(batch_id)
        self._left[batch_id] = self.runs_for
        return batch_id

    async def find(self, file_id: str) -> str | None:
        return self.existing.get(file_id)

    async def outcome(self, batch_id: str) -> BatchOutcome | None:
        self.polls += 1
        if self.fail_poll:
            raise self.fail_poll.pop(0)
        left = self._left.get(batch_id, 0)
        if left > 0:
            self._left[batch_id] = left - 1
            return None
        ids = self._files.get(batch_id.removeprefix("batch-"), [])
        results = {cid: self.answer(cid) for cid in ids}
        answers = {c: r for c, r in results.items() if isinstance(r, ChatCompletion)}
        failures = {c: r for c, r in results.items() if isinstance(r, ItemFailure)}
        return BatchOutcome("completed", answers, failures)


class MemoryStore:
    def __init__(self) -> None:
        self.rows: dict[str, tuple[str, str | None]] = {}

    async def lookup(self, custom_id: str) -> tuple[str, str | None] | None:
        return self.rows.get(custom_id)

    async def add(self, file_id: str, custom_ids: Sequence[str]) -> None:
        self.rows.update({cid: (file_id, None) for cid in custom_ids})

    async def set_batch(self, file_id: str, batch_id: str) -> None:
        for cid, (fid, _) in list(self.rows.items()):
            if fid == file_id:
                self.rows[cid] = (fid, batch_id)

    async def remove(self, custom_ids: Sequence[str]) -> None:
        for cid in custom_ids:
            self.rows.pop(cid, None)


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def queue(
    api: FakeApi, store: MemoryStore, time: FakeTime, stop: list[bool] | None = None, **spec: Any
) -> BatchQueue:
    settings = {"max_records": 3, "max_wait_s": 5.0, "poll_interval_s": 10.0, **spec}
    flag = stop if stop is not None else [False]
    return BatchQueue(
        BatchSpec(**settings),
        api,
        store,
        stopping=lambda: flag[0],
        clock=time.clock,
        sleep=time.sleep,
    )


def line(cid: str) -> bytes:
    return batch_line(cid, b'{"model":"m"}')


async def ask_all(q: BatchQueue, ids: Sequence[str]) -> list[Any]:
    return list(
        await asyncio.gather(*(q.ask(cid, line(cid)) for cid in ids), return_exceptions=True)
    )


def test_a_full_group_is_submitted_at_once_and_answers_join_by_custom_id() -> None:
    api, store, time = FakeApi(runs_for=2), MemoryStore(), FakeTime()
    answers = {c: completion(f'"{c}"') for c in ("a", "b", "c")}
    api.answer = answers.__getitem__
    results = asyncio.run(ask_all(queue(api, store, time), ["a", "b", "c"]))
    assert [r.choices[0].message.content for r in results] == ['"a"', '"b"', '"c"']
    assert len(api.uploads) == 1 and len(api.uploads[0]) == 3 and len(api.created) == 1
    assert api.polls == 3  # two "still running", then the outcome
    assert time.now >= 20  # polled every poll_interval_s
    assert store.rows == {}  # settled: removed


def test_a_small_group_waits_for_max_wait_s_then_goes() -> None:
    api, store, time = FakeApi(runs_for=0), MemoryStore(), FakeTime()
    submitted_at: list[float] = []
    upload = api.upload

    async def timed(lines: Sequence[bytes]) -> str:
        submitted_at.append(time.now)
        return await upload(lines)

    api.upload = timed  # type: ignore[method-assign]
    results = asyncio.run(ask_all(queue(api, store, time, max_records=10), ["a", "b"]))
    assert all(isinstance(r, ChatCompletion) for r in results)
    assert len(api.uploads[0]) == 2 and 5 <= submitted_at[0] <= 6


def test_duplicate_requests_share_one_line_and_one_answer() -> None:
    api, store, time = FakeApi(runs_for=0), MemoryStore(), FakeTime()
    results = asyncio.run(ask_all(queue(api, store, time), ["a", "a", "b"]))
    assert all(isinstance(r, ChatCompletion) for r in results)
    assert [json.loads(x)["custom_id"] for x in api.uploads[0]] == ["a", "b"]


def test_failed_and_missing_items_fail_their_records_only() -> None:
    api, store, time = FakeApi(runs_for=0), MemoryStore(), FakeTime()
    failure = ItemFailure("server_error", "boom", 500)
    outcomes: dict[str, Any] = {"a": completion("{}"), "b": failure}
    api.answer = outcomes.__getitem__

    async def expired(batch_id: str) -> BatchOutcome:
        return BatchOutcome("expired", {"a": outcomes["a"]}, {"b": failure})

    api.outcome = expired  # type: ignore[method-assign]
    a, b, c = asyncio.run(ask_all(queue(api, store, time), ["a", "b", "c"]))
    assert isinstance(a, ChatCompletion)
    assert isinstance(b, BatchItemFailed) and b.failure.status == 500
    assert isinstance(c, BatchItemFailed) and c.failure.code == "batch_expired"


def test_a_request_in_the_store_attaches_to_its_batch_instead_of_resubmitting() -> None:
    api, store, time = FakeApi(runs_for=1), MemoryStore(), FakeTime()
    store.rows = {"a": ("file-old", "batch-file-old"), "b": ("file-old", "batch-file-old")}
    api._files["file-old"] = ["a", "b"]
    q = queue(api, store, time)
    results = asyncio.run(ask_all(q, ["a", "b"]))
    assert all(isinstance(r, ChatCompletion) for r in results)
    assert api.uploads == [] and api.created == [] and q.resumed == 1 and q.submitted == 0
    assert store.rows == {}


def test_a_file_uploaded_before_a_crash_is_resumed_through_its_batch() -> None:
    api, store, time = FakeApi(runs_for=0), MemoryStore(), FakeTime()
    store.rows = {"a": ("file-old", None)}  # crashed between upload and create ...
    api._files["file-old"] = ["a"]
    api.existing = {"file-old": "batch-file-old"}  # ... or after create, before recording
    results = asyncio.run(ask_all(queue(api, store, time), ["a"]))
    assert isinstance(results[0], ChatCompletion) and api.created == []
    api2, store2, time2 = FakeApi(runs_for=0), MemoryStore(), FakeTime()
    store2.rows = {"a": ("file-old", None)}
    api2._files["file-old"] = ["a"]  # never created: created now, from the same file
    results = asyncio.run(ask_all(queue(api2, store2, time2), ["a"]))
    assert isinstance(results[0], ChatCompletion)
    assert api2.created == ["batch-file-old"] and api2.uploads == []


def test_a_stop_abandons_waiters_and_keeps_pending_batches_in_the_store() -> None:
    api, store, time = FakeApi(runs_for=10**6), MemoryStore(), FakeTime()
    stop = [False]
    q = queue(api, store, time, stop)

    async def scenario() -> list[Any]:
        asks = asyncio.gather(*(q.ask(c, line(c)) for c in "abcd"), return_exceptions=True)
        while not api.created:
            await asyncio.sleep(0)
        stop[0] = True
        return list(await asks)

    results = asyncio.run(scenario())
    assert all(isinstance(r, BatchAbandoned) for r in results)
    assert len(api.uploads) == 1 and len(api.uploads[0]) == 3  # "d" was never sent
    assert set(store.rows) == {"a", "b", "c"} and store.rows["a"][1] == "batch-file-1"


def test_a_record_gives_up_after_the_batch_deadline() -> None:
    api, store, time = FakeApi(runs_for=10**9), MemoryStore(), FakeTime()
    results = asyncio.run(ask_all(queue(api, store, time, deadline_s=30.0), ["a", "b", "c"]))
    assert all(isinstance(r, BatchWaitExceeded) for r in results)
    assert set(store.rows) == {"a", "b", "c"}  # kept: a rerun finds the batch


def test_transient_poll_errors_keep_polling_and_a_failed_upload_fails_the_group() -> None:
    api, store, time = FakeApi(runs_for=0), MemoryStore(), FakeTime()
    api.fail_poll = [openai.APIConnectionError(request=None)]  # type: ignore[arg-type]
    results = asyncio.run(ask_all(queue(api, store, time), ["a", "b", "c"]))
    assert all(isinstance(r, ChatCompletion) for r in results) and api.polls == 2
    api2 = FakeApi()
    api2.fail_upload = RuntimeError("refused")
    results = asyncio.run(ask_all(queue(api2, MemoryStore(), FakeTime()), ["a", "b", "c"]))
    assert all(isinstance(r, RuntimeError) for r in results)


# ------------------------------------------------------------------ the provider


def batch_client(api: FakeApi, store: MemoryStore, time: FakeTime) -> BatchProviderClient:
    spec = ProviderSpec(
        name="cheap",
        base_url="http://x/v1",
        model="m",
        mode="batch",
        batch=BatchSpec(max_records=1, max_wait_s=1, poll_interval_s=1),
        pricing=PricingSpec(prompt_per_million=1.0, completion_per_million=2.0),
    )
    assert spec.batch is not None
    return BatchProviderClient(spec, GenerationSpec(), queue(api, store, time, max_records=1))


def test_the_batch_provider_prices_at_the_discount_and_turns_failures_into_call_failures() -> None:
    api, store, time = FakeApi(runs_for=0), MemoryStore(), FakeTime()
    client = batch_client(api, store, time)
    messages = [{"role": "user", "content": "hi"}]
    done = asyncio.run(client.complete(messages, {"type": "object"}, kind="call"))
    assert done.attempts[0].cost_usd == pytest.approx((1000 * 1.0 + 100 * 2.0) / 1e6 * 0.5)
    sent = json.loads(api.uploads[0][0])
    assert sent["custom_id"] == custom_id(json.dumps(sent["body"], separators=(",", ":")).encode())
    assert sent["url"] == "/v1/chat/completions" and sent["body"]["messages"] == messages
    api.answer = lambda cid: ItemFailure("batch_expired", "too late")
    with pytest.raises(CallFailed) as failed:
        asyncio.run(batch_client(api, MemoryStore(), time).complete(messages, {}, kind="call"))
    assert "batch_expired" in str(failed.value) and failed.value.attempts[0].provider == "cheap"


def test_the_task_rejects_a_batch_larger_than_the_window_and_batch_keys_on_sync() -> None:
    from pydantic import ValidationError

    from transforms.core.config.task import TaskSpec

    raw = JOB.task.model_dump(by_alias=True, exclude={"source_path"})
    provider = {
        "name": "b",
        "base_url": "http://x/v1",
        "model": "m",
        "mode": "batch",
        "batch": {"max_records": 500},
    }
    with pytest.raises(ValidationError, match="larger than policy.max_in_flight"):
        TaskSpec.model_validate({**raw, "providers": [provider]})
    with pytest.raises(ValidationError, match="applies only to a provider with mode: batch"):
        TaskSpec.model_validate({**raw, "providers": [{**provider, "mode": "sync"}]})
    task = TaskSpec.model_validate(
        {**raw, "providers": [provider], "policy": {"max_in_flight": 500}}
    )
    assert task.record_deadline_s == task.policy.record_deadline_s + 25 * 3600


# ------------------------------------------------------------------ the enricher


class ScriptedBatch(Scripted):
    def __init__(self, name: str, script: Sequence[Any]) -> None:
        super().__init__(name, script)
        self.spec = SimpleNamespace(name=name, model=f"{name}-model", mode="batch")


def test_an_invalid_batch_answer_is_reasked_on_the_next_sync_provider() -> None:
    cheap = ScriptedBatch("cheap", [json.dumps({**GOOD, "rating": 9})])
    sync = Scripted("sync", [json.dumps(GOOD)])
    result = asyncio.run(Enricher(JOB, [cheap, sync]).enrich(RECORD))  # type: ignore[list-item]
    assert isinstance(result, Enriched) and result.provider == "sync"
    assert [(a.provider, a.kind) for a in result.attempts] == [("cheap", "call"), ("sync", "reask")]
    assert "rating" in sync.conversations[0][-1]["content"]  # the errors were quoted


def test_a_stop_while_waiting_for_a_batch_skips_the_record() -> None:
    cheap = ScriptedBatch("cheap", [BatchAbandoned("stopping")])

    async def abandoned(*args: Any, **kwargs: Any) -> Any:
        raise BatchAbandoned("stopping")

    cheap.complete = abandoned  # type: ignore[method-assign]
    result = asyncio.run(Enricher(JOB, [cheap]).enrich_one(RECORD))  # type: ignore[list-item]
    assert isinstance(result, Skipped) and result.reason == ABANDONED_BATCH
