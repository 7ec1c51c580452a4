"""The batch edges: the local Files + Batches server speaks the shapes of the ``openai``
SDK's types (``FileObject``, ``Batch``, result lines holding a ``ChatCompletion``); the SDK
client reads answers, failures and expiries from it; the pending map survives a reopen."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path

import openai
from openai.types import Batch, FileObject
from openai.types.chat import ChatCompletion

from tests.batch_server import BatchServer, Item
from transforms.core.calls.batch_provider import batch_line, custom_id
from transforms.llm.batch_api import OpenAIBatchApi
from transforms.llm.batch_state import SqlitePending

BODY = json.dumps(
    {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "a",
                "schema": {"type": "object", "properties": {"n": {"type": "integer"}}},
            },
        },
    },
    separators=(",", ":"),
).encode()


def test_the_server_speaks_the_sdk_types_and_the_client_reads_every_outcome() -> None:
    ids = [custom_id(BODY + str(i).encode()) for i in range(4)]
    plan = {ids[0]: Item.ok(), ids[1]: Item.fail(400, "bad"), ids[2]: Item.expire()}
    # the batch ends 1 s after it is created: long enough on a loaded machine to see it running
    with BatchServer(delay_s=1.0, script=lambda cid, body: plan.get(cid, Item.ok("x"))) as server:
        sdk = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        lines = [batch_line(cid, BODY) for cid in ids]
        uploaded = sdk.files.create(file=("in.jsonl", b"\n".join(lines)), purpose="batch")
        FileObject.model_validate(uploaded.model_dump(), strict=False)
        created = sdk.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        assert created.status == "in_progress" and created.request_counts is not None
        with urllib.request.urlopen(f"{server.base_url}/batches/{created.id}") as raw:
            Batch.model_validate(json.loads(raw.read()))  # the wire shape, not the SDK's lenience

        api = OpenAIBatchApi(server.base_url, "k", 5, "24h", "job")

        async def read() -> object:
            assert await api.find(uploaded.id) == created.id
            assert await api.outcome(created.id) is None  # still running
            await asyncio.sleep(1.2)
            try:
                return await api.outcome(created.id)
            finally:
                await api.aclose()

        outcome = asyncio.run(read())
        ended = sdk.batches.retrieve(created.id)
        assert ended.status == "expired" and ended.output_file_id and ended.error_file_id
        for raw_line in sdk.files.content(ended.output_file_id).content.splitlines():
            ChatCompletion.model_validate(json.loads(raw_line)["response"]["body"])
        sdk.close()
    assert outcome.status == "expired"  # type: ignore[attr-defined]
    assert set(outcome.answers) == {ids[0], ids[3]}  # type: ignore[attr-defined]
    failures = outcome.failures  # type: ignore[attr-defined]
    assert failures[ids[1]].status == 400 and failures[ids[2]].code == "batch_expired"
    assert server.stats.batches_created == 1 and server.stats.requests == 4


def test_the_server_refuses_a_wrong_key_and_duplicate_custom_ids() -> None:
    with BatchServer(api_key="right") as server:
        wrong = openai.OpenAI(base_url=server.base_url, api_key="wrong", max_retries=0)
        try:
            wrong.batches.list()
            raise AssertionError("accepted a wrong key")
        except openai.AuthenticationError:
            pass
        sdk = openai.OpenAI(base_url=server.base_url, api_key="right", max_retries=0)
        line = batch_line("same", BODY)
        uploaded = sdk.files.create(file=("in.jsonl", line + b"\n" + line), purpose="batch")
        try:
            sdk.batches.create(
                input_file_id=uploaded.id,
                endpoint="/v1/chat/completions",
                completion_window="24h",
            )
            raise AssertionError("accepted duplicate custom_ids")
        except openai.BadRequestError as exc:
            assert "duplicate custom_id" in str(exc)
        assert server.stats.batches_created == 0


def test_the_pending_map_survives_a_reopen_and_is_scoped_per_provider(tmp_path: Path) -> None:
    path = tmp_path / "pending.sqlite"
    store = SqlitePending(path, "cheap http://x/v1")

    async def fill() -> None:
        await store.add("file-1", ["a", "b"])
        await store.set_batch("file-1", "batch-1")
        await store.remove(["a"])

    asyncio.run(fill())
    store.close()
    again = SqlitePending(path, "cheap http://x/v1")
    other = SqlitePending(path, "other http://y/v1")
    assert asyncio.run(again.lookup("b")) == ("file-1", "batch-1")
    assert asyncio.run(again.lookup("a")) is None and asyncio.run(other.lookup("b")) is None
    again.close()
    other.close()
    old = SqlitePending(path, "cheap http://x/v1", max_age_s=0.0)  # pruned on open
    assert old.count() == 0
    old.close()
