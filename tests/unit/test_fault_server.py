"""The fault-injection server, exercised with the real openai client over real sockets."""

from __future__ import annotations

import asyncio
import json
import select
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.conftest import EXAMPLE_TASK
from tests.fault_server import FaultServer, Reply, answer_for_schema, every_nth, fraction
from transforms.core.answers.validation import validate
from transforms.core.config.task import load_task
from transforms.core.job import compile_job

REPO = Path(__file__).resolve().parents[2]
MESSAGES = [{"role": "user", "content": "Tag this review: great kettle, boils fast."}]
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "sentiment": {"type": "string", "enum": ["positive", "negative"]},
        "rating": {"type": "integer", "minimum": 3, "maximum": 5},
        "topics": {"type": "array", "items": {"type": "string", "enum": ["speed", "price"]}},
        "summary": {"type": "string", "maxLength": 3},
        "score": {"type": "number"},
        "spam": {"type": "boolean"},
        "source": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/Source"}]},
    },
    "required": ["sentiment", "rating", "topics", "summary", "score", "spam", "source"],
    "additionalProperties": False,
    "$defs": {
        "Source": {
            "type": "object",
            "properties": {"site": {"type": "string"}, "count": {"type": "integer"}},
            "required": ["site", "count"],
            "additionalProperties": False,
        }
    },
}


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer(default=Reply.ok()) as running:
        yield running


def client(server: FaultServer, timeout: float = 5.0) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0, timeout=timeout)


def ask(server: FaultServer, schema: dict[str, Any] | None = None, timeout: float = 5.0) -> Any:
    extra: dict[str, Any] = {}
    if schema is not None:
        extra["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "answer", "strict": True, "schema": schema},
        }
    with client(server, timeout) as c:
        return c.chat.completions.create(model="tiny-model", messages=MESSAGES, **extra)


def test_ok_answer_is_synthesised_from_the_request_schema(server: FaultServer) -> None:
    response = ask(server, SCHEMA)
    choice = response.choices[0]
    assert json.loads(choice.message.content) == {
        "sentiment": "positive",
        "rating": 3,
        "topics": ["speed"],
        "summary": "tex",
        "score": 1.0,
        "spam": True,
        "source": {"site": "text", "count": 1},
    }
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert response.object == "chat.completion"
    assert response.model == "tiny-model"
    usage = response.usage
    assert usage.prompt_tokens == (len(MESSAGES[0]["content"]) + 3) // 4
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens > 0
    stats = server.stats
    assert stats.requests == 1
    assert stats.statuses == {200: 1}
    assert stats.bodies[0]["messages"] == MESSAGES
    assert stats.in_flight == 0


def test_ok_answer_is_valid_for_the_example_task() -> None:
    job = compile_job(load_task(EXAMPLE_TASK))
    with FaultServer() as server:
        content = ask(server, job.shape.json_schema).choices[0].message.content
    assert validate(json.loads(content), job.shape.avro) == []


def test_explicit_content_and_token_counts(server: FaultServer) -> None:
    server.set_default(Reply.ok({"a": 1}, prompt_tokens=7, completion_tokens=3))
    response = ask(server)
    assert response.choices[0].message.content == '{"a": 1}'
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (7, 3)


def test_rate_limit_keeps_the_retry_after_header(server: FaultServer) -> None:
    server.set_default(Reply.status(429, headers={"retry-after": "1"}))
    with pytest.raises(openai.RateLimitError) as caught:
        ask(server)
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "1"
    assert caught.value.code == "rate_limit_exceeded"
    server.set_default(Reply.status(429, headers={"retry-after-ms": "200"}))
    with pytest.raises(openai.RateLimitError) as caught:
        ask(server)
    assert caught.value.response.headers["retry-after-ms"] == "200"
    assert server.stats.statuses == {429: 2}


@pytest.mark.parametrize("code", [500, 503])
def test_server_errors(server: FaultServer, code: int) -> None:
    server.set_default(Reply.status(code, "overloaded, try later"))
    with pytest.raises(openai.InternalServerError) as caught:
        ask(server)
    assert caught.value.status_code == code
    assert caught.value.body == {
        "message": "overloaded, try later",
        "type": "server_error",
        "param": None,
        "code": None,
    }


def test_context_length_exceeded(server: FaultServer) -> None:
    server.set_default(Reply.context_length_exceeded())
    with pytest.raises(openai.BadRequestError) as caught:
        ask(server)
    assert caught.value.code == "context_length_exceeded"
    assert "maximum context length is 4096 tokens" in caught.value.message


def test_hang_makes_the_client_time_out(server: FaultServer) -> None:
    server.set_default(Reply.hang(2))
    started = time.perf_counter()
    with pytest.raises(openai.APITimeoutError):
        ask(server, timeout=0.5)
    assert time.perf_counter() - started < 1.5
    assert server.stats.statuses == {}


def test_reset_is_a_connection_error(server: FaultServer) -> None:
    server.set_default(Reply.reset())
    with pytest.raises(openai.APIConnectionError) as caught:
        ask(server)
    assert not isinstance(caught.value, openai.APITimeoutError)
    assert server.stats.requests == 1


def test_broken_answers(server: FaultServer) -> None:
    obj = {"sentiment": "positive", "rating": 4}
    server.set_default(Reply.fenced(obj))
    content = ask(server).choices[0].message.content
    assert content.startswith("```json\n") and content.endswith("\n```")
    assert json.loads(content.removeprefix("```json\n").removesuffix("\n```")) == obj

    server.set_default(Reply.trailing_comma(obj))
    choice = ask(server).choices[0]
    assert choice.message.content == '{"sentiment": "positive", "rating": 4,}'
    assert choice.finish_reason == "stop"

    server.set_default(Reply.truncated(obj))
    choice = ask(server).choices[0]
    full = json.dumps(obj)
    assert choice.message.content == full[: len(full) // 2]
    assert choice.finish_reason == "length"

    server.set_default(Reply.text("I cannot help with that."))
    assert ask(server).choices[0].message.content == "I cannot help with that."


def test_scripts_choose_per_request_index(server: FaultServer) -> None:
    server.set_script(every_nth(3, Reply.status(500), Reply.ok()))
    statuses = []
    with client(server) as c:
        for _ in range(6):
            try:
                c.chat.completions.create(model="m", messages=MESSAGES)
                statuses.append(200)
            except openai.APIStatusError as exc:
                statuses.append(exc.status_code)
    assert statuses == [200, 200, 500, 200, 200, 500]
    stats = server.stats
    assert stats.statuses == {200: 4, 500: 2}
    assert stats.connections == 1  # keep-alive: the client reused one connection

    server.reset_stats()
    seen: list[int] = []

    def script(index: int, body: dict[str, Any]) -> Any:
        seen.append(index)
        return Reply.text(body["model"])

    server.set_script(script)
    assert ask(server).choices[0].message.content == "tiny-model"
    assert seen == [0]

    pick = fraction(0.3, Reply.reset(), Reply.ok(), seed=7)
    chosen = [pick(i, {}) == Reply.reset() for i in range(1000)]
    assert chosen == [
        fraction(0.3, Reply.reset(), Reply.ok(), seed=7)(i, {}) == Reply.reset()
        for i in range(1000)
    ]
    assert 250 < sum(chosen) < 350


def test_schema_answers_honour_constraints() -> None:
    assert answer_for_schema({"type": "integer", "maximum": 0}) == 0
    assert answer_for_schema({"type": "integer", "exclusiveMinimum": 4}) == 5
    assert answer_for_schema({"type": "string", "minLength": 6}) == "textxx"
    assert answer_for_schema({"type": "array", "items": {"type": "null"}, "maxItems": 0}) == []
    assert answer_for_schema({"type": ["null", "number"], "minimum": 2}) == 2.0
    assert answer_for_schema({"type": "object", "additionalProperties": {"type": "string"}}) == {}


def test_health_and_unknown_routes(server: FaultServer) -> None:
    root = server.base_url.removesuffix("/v1")
    with urllib.request.urlopen(f"{root}/health", timeout=5) as response:
        assert json.load(response) == {"status": "ok"}
    with pytest.raises(openai.NotFoundError), client(server) as c:
        c.models.list()
    assert server.stats.requests == 0


DELAY_S = 3.0


def test_hundreds_of_delayed_requests_run_concurrently(server: FaultServer) -> None:
    """Held at once, not one after another: 300 requests of 3 s each are all in flight
    together (sending them takes the client about 0.6 s of CPU, several seconds on a busy
    machine: the delay keeps the first in flight until the last arrive) and end in a
    fraction of the 900 s they would take in turn."""
    server.set_default(Reply.ok(delay_s=DELAY_S))

    async def fan_out() -> list[Any]:
        async with openai.AsyncOpenAI(
            base_url=server.base_url, api_key="x", max_retries=0, timeout=10
        ) as c:
            calls = [c.chat.completions.create(model="m", messages=MESSAGES) for _ in range(300)]
            return await asyncio.gather(*calls)

    started = time.perf_counter()
    responses = asyncio.run(fan_out())
    elapsed = time.perf_counter() - started
    stats = server.stats
    print(f"300 requests x {DELAY_S} s: {elapsed:.2f} s, max_in_flight={stats.max_in_flight}")
    assert len(responses) == 300
    assert stats.statuses == {200: 300}
    assert stats.max_in_flight >= 250
    assert elapsed < 300 * DELAY_S / 30


def test_cli_serves_until_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fault_server", "--port", "0", "--latency", "0.05"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 10)
        assert ready, "the server did not print READY in time"
        line = process.stdout.readline().strip()
        assert line.startswith("READY http://127.0.0.1:") and line.endswith("/v1")
        base_url = line.removeprefix("READY ")
        with openai.OpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=5) as c:
            response = c.chat.completions.create(model="m", messages=MESSAGES)
        assert response.choices[0].finish_reason == "stop"
        with urllib.request.urlopen(f"{base_url.removesuffix('/v1')}/stats", timeout=5) as r:
            stats = json.load(r)
        assert stats["requests"] == 1
        assert stats["max_in_flight"] == 1
        assert stats["statuses"] == {"200": 1}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
