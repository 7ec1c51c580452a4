"""The lean HTTP path keeps the SDK's semantics: for every kind of answer a real HTTP server
gives, ``ChatEndpoint`` returns or raises what ``AsyncOpenAI`` does, and the policy reads
both the same way (class, status, Retry-After, transient/fallback/final, systemic)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletion

from tests.fault_server import FaultServer, Reply
from transforms.core.calls.policy import (
    NotChatCompletions,
    classify,
    retry_after_seconds,
    systemic_reason,
)
from transforms.llm.chat_http import ChatEndpoint

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}

REPLIES = {
    "ok": Reply.ok({"rating": 3}),
    "400 context": Reply.context_length_exceeded(),
    "400": Reply.status(400, "bad request"),
    "401": Reply.status(401, "Incorrect API key provided"),
    "403 moderation": Reply.status(403, "flagged by moderation"),
    "404": Reply.status(404, "model not found"),
    "408": Reply.status(408),
    "409": Reply.status(409),
    "422": Reply.status(422),
    "429 retry-after": Reply.status(429, headers={"retry-after": "7"}),
    "429 retry-after-ms": Reply.status(429, headers={"retry-after-ms": "250"}),
    "500": Reply.status(500),
    "503 date": Reply.status(503, headers={"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}),
    "hang": Reply.hang(2.0),
    "reset": Reply.reset(),
}


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer() as running:
        yield running


def _outcome(result: Any) -> tuple[Any, ...]:
    if isinstance(result, ChatCompletion):
        choice = result.choices[0]
        return ("answer", choice.message.content, choice.finish_reason, result.usage)
    assert isinstance(result, BaseException)
    status = getattr(result, "status_code", None)
    return (
        type(result),
        status,
        retry_after_seconds(result),
        classify(result),
        systemic_reason(result),
    )


async def _both(base_url: str) -> tuple[Any, Any]:
    sdk = openai.AsyncOpenAI(base_url=base_url, api_key="k", max_retries=0, timeout=0.5)
    lean = ChatEndpoint(base_url, "k", timeout_s=0.5, max_connections=4)
    results = []
    for call in (
        lambda: sdk.post("/chat/completions", cast_to=ChatCompletion, body=BODY),
        lambda: lean.create(json.dumps(BODY).encode()),
    ):
        try:
            results.append(await call())
        except Exception as exc:
            results.append(exc)
    await sdk.close()
    await lean.aclose()
    return results[0], results[1]


@pytest.mark.parametrize("name", list(REPLIES))
def test_same_outcome_as_the_sdk(server: FaultServer, name: str) -> None:
    server.set_default(REPLIES[name])
    sdk, lean = asyncio.run(_both(server.base_url))
    assert _outcome(lean) == _outcome(sdk)
    if isinstance(sdk, openai.APIStatusError):
        assert isinstance(lean, openai.APIStatusError) and str(lean) == str(sdk)


def test_a_minimal_server_answer_is_read_leniently_like_the_sdk(server: FaultServer) -> None:
    """No id, created, model or object: the SDK accepts it, so does the lean path."""
    minimal = {"choices": [{"message": {"role": "assistant", "content": '{"rating": 1}'}}]}
    server.set_default(Reply.status(200, body=minimal))

    async def go() -> ChatCompletion:
        lean = ChatEndpoint(server.base_url, "", timeout_s=2, max_connections=1)
        try:
            return await lean.create(b"{}")
        finally:
            await lean.aclose()

    assert asyncio.run(go()).choices[0].message.content == '{"rating": 1}'


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply.status(200, body={"data": []}), "JSON without 'choices'"),
        (Reply.status(200, body="<html>proxy login</html>"), "JSON without 'choices'"),
    ],
)
def test_an_answer_that_is_not_a_chat_completion_says_so(
    server: FaultServer, reply: Any, expected: str
) -> None:
    server.set_default(reply)

    async def go() -> None:
        lean = ChatEndpoint(server.base_url, "", timeout_s=2, max_connections=1)
        try:
            await lean.create(b"{}")
        finally:
            await lean.aclose()

    with pytest.raises(NotChatCompletions, match=expected):
        asyncio.run(go())
