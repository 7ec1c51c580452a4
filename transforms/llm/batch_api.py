"""The OpenAI-compatible Files + Batches API, through the ``openai`` SDK (batch traffic is a
few requests per batch, so the SDK's HTTP cost does not matter here).

    upload(lines)      POST /files (purpose "batch", a JSONL of /v1/chat/completions requests)
    create(file_id)    POST /batches (endpoint /v1/chat/completions, completion_window 24h)
    find(file_id)      GET /batches, newest first: the batch made from that file, if any
    outcome(batch_id)  GET /batches/{id}; once ended, GET /files/{id}/content of its output
                       file (answers) and error file (failed or expired requests)

Output lines: ``{"custom_id", "response": {"status_code", "body": <chat completion>},
"error"}``; a line whose status is not 200, or with an ``error`` (``batch_expired``), is a
failure of that request. The SDK's own retries are off: the queue decides.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import openai
import pydantic
from openai.types.chat import ChatCompletion

from transforms.core.calls.batching import BatchOutcome, ItemFailure

__all__ = ["OpenAIBatchApi"]

RUNNING = frozenset({"validating", "in_progress", "finalizing", "cancelling"})
FIND_LIMIT = 100  # batches looked at when resuming one whose id was not recorded


class OpenAIBatchApi:
    def __init__(
        self, base_url: str, api_key: str, timeout_s: float, completion_window: str, job: str
    ) -> None:
        self._client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key or "unused", timeout=timeout_s, max_retries=0
        )
        self._window = completion_window
        self._job = job

    async def upload(self, lines: Sequence[bytes]) -> str:
        content = b"\n".join(lines) + b"\n"
        name = f"{self._job}-batch.jsonl"
        uploaded = await self._client.files.create(
            file=(name, content, "application/jsonl"), purpose="batch"
        )
        return uploaded.id

    async def create(self, file_id: str) -> str:
        batch = await self._client.batches.create(
            input_file_id=file_id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            metadata={"llm_enrich_job": self._job},
        )
        return batch.id

    async def find(self, file_id: str) -> str | None:
        seen = 0
        async for batch in self._client.batches.list(limit=FIND_LIMIT):
            if batch.input_file_id == file_id:
                return batch.id
            seen += 1
            if seen >= FIND_LIMIT:
                break
        return None

    async def outcome(self, batch_id: str) -> BatchOutcome | None:
        batch = await self._client.batches.retrieve(batch_id)
        if batch.status in RUNNING:
            return None
        answers: dict[str, ChatCompletion] = {}
        failures: dict[str, ItemFailure] = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                content = await self._client.files.content(file_id)
                _read_lines(content.content, answers, failures)
        return BatchOutcome(batch.status, answers, failures)

    async def aclose(self) -> None:
        await self._client.close()


def _read_lines(
    content: bytes, answers: dict[str, ChatCompletion], failures: dict[str, ItemFailure]
) -> None:
    for raw in content.splitlines():
        if not raw.strip():
            continue
        try:
            line: Any = json.loads(raw)
            request_id = str(line["custom_id"])
        except (ValueError, KeyError, TypeError):
            continue  # not a result line: the request it was for fails as missing
        response, error = line.get("response") or {}, line.get("error")
        status = response.get("status_code")
        body = response.get("body")
        if error or status != 200 or not isinstance(body, dict):
            failures[request_id] = _failure(error, status, body)
            continue
        try:
            answers[request_id] = ChatCompletion.model_validate(body)
        except pydantic.ValidationError:
            failures[request_id] = ItemFailure("invalid_response", "not a chat completion", 200)


def _failure(error: Any, status: Any, body: Any) -> ItemFailure:
    detail = error if isinstance(error, dict) else {}
    if not detail and isinstance(body, dict) and isinstance(body.get("error"), dict):
        detail = body["error"]
    code = str(detail.get("code") or detail.get("type") or "request_failed")
    message = str(detail.get("message") or "the batch did not answer this request")[:500]
    return ItemFailure(code, message, status if isinstance(status, int) else None)
