"""A scriptable, OpenAI-compatible fault-injection HTTP server for tests and benchmarks.

It is a real HTTP/1.1 server on 127.0.0.1 (keep-alive, Content-Length; standard library
only): ``asyncio.start_server`` runs on its own event loop in a background thread, so a
synchronous test, an async test or another process can talk to it, and hundreds of delayed
requests are served concurrently rather than one after another.

Routes: ``POST /v1/chat/completions`` (also ``/chat/completions``), ``GET /health`` and
``GET /stats`` (the stats as JSON; ``POST /stats/reset`` zeroes them). Anything else is
a 404 in OpenAI's error shape.

Usage::

    with FaultServer(default=Reply.ok()) as server:        # or FaultServer(script=fn)
        client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
        ...
        server.set_default(Reply.status(429, headers={"retry-after": "1"}))
        server.set_script(every_nth(3, Reply.reset(), Reply.ok()))
        assert server.stats.requests == 2

    server = FaultServer(); base_url = server.start(); ...; server.stop()

``start()`` returns the base URL, ``http://127.0.0.1:PORT/v1`` (``port=0`` picks a free port).

Behaviour is chosen per chat request: ``script(index, body) -> Action`` when a script is set
(``index`` counts chat requests from 0, ``body`` is the parsed JSON request), else the default
action. Actions are frozen dataclasses built by ``Reply``; each takes ``delay_s``, a pause
before acting:

``Reply.ok(content=None, finish_reason="stop", prompt_tokens=None, completion_tokens=None)``
    A ``chat.completion``. With ``content=None`` the content is a valid answer synthesised
    from the request's ``response_format.json_schema.schema`` (see ``answer_for_schema``),
    or ``{}`` without one. A dict content is sent as its JSON text. Token counts default to
    about a quarter of the characters of the messages / of the content. Keywords:
    ``cached_tokens`` and ``reasoning_tokens`` (sent as ``usage.prompt_tokens_details`` /
    ``completion_tokens_details``), ``usage=False`` (no usage at all), ``service_tier``.
``Reply.status(code, body=None, headers=None)``
    An error in OpenAI's shape ``{"error": {"message", "type", "code"}}``. ``body`` may be
    the message (str) or the whole JSON body (dict). ``Reply.context_length_exceeded()`` is
    the 400 a too-long prompt gets.
``Reply.hang(seconds)``
    Reads the request, sends nothing for ``seconds`` (client timeouts fire), then closes.
``Reply.reset()``
    Closes the TCP connection abruptly (SO_LINGER 0, so the client sees a reset).
``Reply.tokens(pieces)``
    An answer written token by token with the log-probabilities OpenAI's ``logprobs``
    return (``choices[0].logprobs.content``: token, logprob, bytes, top_logprobs), sent
    when the request asks ``logprobs: true`` (``null`` otherwise, as OpenAI does). A piece
    is a string (probability 1, no alternative) or ``(text, p, {alternative: p})``.
``Reply.fenced(obj)``, ``Reply.trailing_comma(obj)``, ``Reply.truncated(obj)``, ``Reply.text(s)``
    Broken answers: the JSON in a markdown fence; with a trailing comma before the closing
    brace; cut in half with ``finish_reason="length"``; any content string.

Script helpers: ``every_nth(n, action, otherwise)`` (requests n, 2n, ... counting from 1 get
``action``) and ``fraction(p, action, otherwise, seed=0)`` (a deterministic pseudo-random
share ``p`` of the request indexes gets ``action``).

``server.stats`` is a snapshot: ``requests``, ``in_flight``, ``max_in_flight``, ``bodies``
(parsed request bodies, in arrival order), ``received_at`` and ``answered_at`` (wall-clock
times of each chat request's arrival and answer), ``statuses`` (a Counter of the status codes sent;
hangs and resets send none) and ``connections`` (TCP connections accepted on any route;
fewer than requests means keep-alive). The other fields count chat requests only.
``server.reset_stats()`` zeroes it (the script index too).

As a process, for benchmarks::

    python -m tests.fault_server --port 0 --latency 1.0

prints ``READY http://127.0.0.1:PORT/v1`` and serves OK answers after that latency until
SIGTERM or SIGINT; ``GET /stats`` on it shows ``max_in_flight``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import http
import json
import math
import random
import signal
import socket
import struct
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

__all__ = [
    "Action",
    "FaultServer",
    "Hang",
    "Ok",
    "Reply",
    "Reset",
    "Script",
    "Stats",
    "Status",
    "answer_for_schema",
    "every_nth",
    "fraction",
    "logprobs_content",
]

CHAT_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})
_MAX_HEADER_BYTES = 1 << 20


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class Ok:
    """A normal ``chat.completion``; ``content=None`` synthesises one from the schema."""

    content: str | None = None
    finish_reason: str = "stop"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    delay_s: float = 0.0
    cached_tokens: int | None = None  # usage.prompt_tokens_details.cached_tokens
    reasoning_tokens: int | None = None  # usage.completion_tokens_details.reasoning_tokens
    usage: bool = True  # False: the answer carries no usage (some gateways and servers)
    service_tier: str | None = None  # the tier the answer says it was served in
    # OpenAI's ``logprobs.content``, sent when the request asks for log-probabilities
    logprobs: tuple[dict[str, Any], ...] | None = None


@dataclass(frozen=True)
class Status:
    """An error response; ``body`` is the message (str) or the full JSON body (dict)."""

    code: int
    body: str | dict[str, Any] | None = None
    headers: tuple[tuple[str, str], ...] = ()
    delay_s: float = 0.0


@dataclass(frozen=True)
class Hang:
    """Send nothing for ``seconds``, then close the connection."""

    seconds: float
    delay_s: float = 0.0


@dataclass(frozen=True)
class Reset:
    """Close the TCP connection abruptly, without a response."""

    delay_s: float = 0.0


Action = Ok | Status | Hang | Reset
Script = Callable[[int, dict[str, Any]], Action]


class Reply:
    """Constructors for the actions."""

    @staticmethod
    def ok(
        content: str | dict[str, Any] | None = None,
        finish_reason: str = "stop",
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        *,
        delay_s: float = 0.0,
        cached_tokens: int | None = None,
        reasoning_tokens: int | None = None,
        usage: bool = True,
        service_tier: str | None = None,
    ) -> Ok:
        if isinstance(content, dict):
            content = json.dumps(content)
        return Ok(
            content,
            finish_reason,
            prompt_tokens,
            completion_tokens,
            delay_s,
            cached_tokens,
            reasoning_tokens,
            usage,
            service_tier,
        )

    @staticmethod
    def status(
        code: int,
        body: str | dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        *,
        delay_s: float = 0.0,
    ) -> Status:
        return Status(code, body, tuple((headers or {}).items()), delay_s)

    @staticmethod
    def context_length_exceeded(*, delay_s: float = 0.0) -> Status:
        message = (
            "This model's maximum context length is 4096 tokens. However, your messages "
            "resulted in 5012 tokens. Please reduce the length of the messages."
        )
        body = {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": "messages",
                "code": "context_length_exceeded",
            }
        }
        return Status(400, body, (), delay_s)

    @staticmethod
    def hang(seconds: float, *, delay_s: float = 0.0) -> Hang:
        return Hang(seconds, delay_s)

    @staticmethod
    def reset(*, delay_s: float = 0.0) -> Reset:
        return Reset(delay_s)

    @staticmethod
    def text(s: str, finish_reason: str = "stop", *, delay_s: float = 0.0) -> Ok:
        return Ok(s, finish_reason, delay_s=delay_s)

    @staticmethod
    def tokens(
        pieces: list[str | tuple[str, float, dict[str, float]]],
        *,
        prompt_tokens: int | None = None,
        delay_s: float = 0.0,
    ) -> Ok:
        content = logprobs_content(pieces)
        text = "".join(item["token"] for item in content)
        return Ok(text, "stop", prompt_tokens, len(content), delay_s, logprobs=tuple(content))

    @staticmethod
    def fenced(obj: dict[str, Any], *, delay_s: float = 0.0) -> Ok:
        return Ok(f"```json\n{json.dumps(obj, indent=2)}\n```", delay_s=delay_s)

    @staticmethod
    def trailing_comma(obj: dict[str, Any], *, delay_s: float = 0.0) -> Ok:
        text = json.dumps(obj)
        if not (text.endswith("}") and len(obj) > 0):
            raise ValueError("trailing_comma needs a non-empty dict")
        return Ok(text[:-1] + ",}", delay_s=delay_s)

    @staticmethod
    def truncated(obj: dict[str, Any], *, delay_s: float = 0.0) -> Ok:
        text = json.dumps(obj)
        return Ok(text[: len(text) // 2], "length", delay_s=delay_s)


def _token(text: str, p: float) -> dict[str, Any]:
    return {"token": text, "logprob": math.log(p), "bytes": list(text.encode())}


def logprobs_content(
    pieces: list[str | tuple[str, float, dict[str, float]]],
) -> list[dict[str, Any]]:
    """OpenAI's ``choices[0].logprobs.content`` for an answer written as ``pieces``."""
    content = []
    for piece in pieces:
        text, p, others = (piece, 1.0, {}) if isinstance(piece, str) else piece
        top = [_token(text, p)] + [_token(t, q) for t, q in others.items()]
        content.append({**_token(text, p), "top_logprobs": top})
    return content


def every_nth(n: int, action: Action, otherwise: Action) -> Script:
    """A script giving ``action`` to requests n, 2n, 3n, ... (counting from 1)."""
    if n < 1:
        raise ValueError("n must be >= 1")
    return lambda index, body: action if (index + 1) % n == 0 else otherwise


def fraction(p: float, action: Action, otherwise: Action, seed: int = 0) -> Script:
    """A script giving ``action`` to a deterministic pseudo-random share ``p`` of requests."""

    def script(index: int, body: dict[str, Any]) -> Action:
        digest = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).digest()
        return action if int.from_bytes(digest, "big") / 2**64 < p else otherwise

    return script


# --------------------------------------------------------------------------- answers


def answer_for_schema(schema: dict[str, Any], root: dict[str, Any] | None = None) -> Any:
    """A simple value valid against a (strict-mode style) JSON Schema."""
    root = schema if root is None else root
    if "$ref" in schema:
        return answer_for_schema(_resolve_ref(schema["$ref"], root), root)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            branches = [_deref(b, root) for b in schema[key]]
            chosen = [b for b in branches if b.get("type") != "null"] or branches
            return answer_for_schema(chosen[0], root) if chosen else None
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            merged.update(_deref(part, root))
        return answer_for_schema(merged, root)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        props = schema.get("properties", {})
        return {name: answer_for_schema(sub, root) for name, sub in props.items()}
    if kind == "array":
        items = schema.get("items")
        count = max(1, schema.get("minItems", 1))
        if "maxItems" in schema:
            count = min(count, schema["maxItems"])
        return [answer_for_schema(items if isinstance(items, dict) else {}, root)] * count
    if kind == "string":
        return _string_for(schema)
    if kind == "integer":
        return _integer_for(schema)
    if kind == "number":
        return _number_for(schema)
    if kind == "boolean":
        return True
    return None


def _resolve_ref(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    if not ref.startswith("#"):
        raise ValueError(f"only local $ref is supported, not {ref!r}")
    node: Any = root
    for part in ref.lstrip("#").strip("/").split("/"):
        if part:
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return dict(node)


def _deref(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    return _resolve_ref(schema["$ref"], root) if "$ref" in schema else schema


def _string_for(schema: dict[str, Any]) -> str:
    formats = {
        "date-time": "2024-01-01T00:00:00Z",
        "date": "2024-01-01",
        "time": "00:00:00",
        "email": "someone@example.com",
        "uri": "https://example.com/",
        "uuid": "00000000-0000-4000-8000-000000000000",
    }
    text = formats.get(schema.get("format", ""), "text")
    if len(text) < schema.get("minLength", 0):
        text = text + "x" * (schema["minLength"] - len(text))
    if "maxLength" in schema:
        text = text[: schema["maxLength"]]
    return text


def _integer_for(schema: dict[str, Any]) -> int:
    low = schema.get("minimum")
    if low is None and "exclusiveMinimum" in schema:
        low = math.floor(schema["exclusiveMinimum"]) + 1
    high = schema.get("maximum")
    if high is None and "exclusiveMaximum" in schema:
        high = math.ceil(schema["exclusiveMaximum"]) - 1
    value = math.ceil(low) if low is not None else 1
    return min(value, math.floor(high)) if high is not None else value


def _number_for(schema: dict[str, Any]) -> float:
    low = schema.get("minimum")
    if low is None and "exclusiveMinimum" in schema:
        low = schema["exclusiveMinimum"] + 1.0
    value = float(low) if low is not None else 1.0
    if "maximum" in schema:
        value = min(value, float(schema["maximum"]))
    if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
        floor = schema.get("minimum", schema.get("exclusiveMinimum", value - 2.0))
        value = (float(floor) + schema["exclusiveMaximum"]) / 2
    return value


def _count_tokens(text: str) -> int:
    return (len(text) + 3) // 4


def _message_chars(body: dict[str, Any]) -> int:
    total = 0
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            total += sum(len(str(p.get("text", ""))) for p in content if isinstance(p, dict))
    return total


def synthesised_content(body: dict[str, Any]) -> str:
    """The answer ``Reply.ok()`` sends without a content: valid against the request's
    response schema, or ``{}``."""
    response_format = body.get("response_format") or {}
    schema = (response_format.get("json_schema") or {}).get("schema")
    if not isinstance(schema, dict):
        return "{}"
    return json.dumps(answer_for_schema(schema))


def _completion(action: Ok, index: int, body: dict[str, Any]) -> dict[str, Any]:
    content = action.content if action.content is not None else synthesised_content(body)
    prompt_tokens = action.prompt_tokens
    if prompt_tokens is None:
        prompt_tokens = (_message_chars(body) + 3) // 4
    completion_tokens = action.completion_tokens
    if completion_tokens is None:
        completion_tokens = _count_tokens(content)
    answer: dict[str, Any] = {
        "id": f"chatcmpl-fault-{index}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(body.get("model") or "fault-server"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": {"content": list(action.logprobs), "refusal": None}
                if action.logprobs is not None and body.get("logprobs")
                else None,
                "finish_reason": action.finish_reason,
            }
        ],
    }
    if action.service_tier is not None:
        answer["service_tier"] = action.service_tier
    if action.usage:
        usage: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        if action.cached_tokens is not None:
            usage["prompt_tokens_details"] = {"cached_tokens": action.cached_tokens}
        if action.reasoning_tokens is not None:
            usage["completion_tokens_details"] = {"reasoning_tokens": action.reasoning_tokens}
        answer["usage"] = usage
    return answer


_ERROR_DEFAULTS: dict[int, tuple[str, str, str | None]] = {
    400: ("Bad request (injected fault).", "invalid_request_error", None),
    401: (
        "Incorrect API key provided (injected fault).",
        "invalid_request_error",
        "invalid_api_key",
    ),
    403: ("Permission denied (injected fault).", "invalid_request_error", None),
    404: ("Not found (injected fault).", "invalid_request_error", None),
    429: ("Rate limit reached (injected fault).", "requests", "rate_limit_exceeded"),
    500: ("The server had an error (injected fault).", "server_error", None),
    502: ("Bad gateway (injected fault).", "server_error", None),
    503: ("The engine is currently overloaded (injected fault).", "server_error", None),
    504: ("Gateway timeout (injected fault).", "server_error", None),
}


def _error_body(code: int, body: str | dict[str, Any] | None) -> dict[str, Any]:
    if isinstance(body, dict):
        return body
    default_type = "server_error" if code >= 500 else "invalid_request_error"
    message, kind, error_code = _ERROR_DEFAULTS.get(code, (f"HTTP {code}", default_type, None))
    return {
        "error": {
            "message": body if body is not None else message,
            "type": kind,
            "param": None,
            "code": error_code,
        }
    }


# --------------------------------------------------------------------------- stats


@dataclass(frozen=True)
class Stats:
    """A snapshot of what the server has seen (chat requests only)."""

    requests: int = 0
    connections: int = 0  # TCP connections accepted (any route)
    in_flight: int = 0
    max_in_flight: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    answered_at: list[float] = field(default_factory=list)  # wall clock, in order
    received_at: list[float] = field(default_factory=list)  # wall clock, in arrival order

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "connections": self.connections,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "answered_at": self.answered_at,
            "received_at": self.received_at,
            "statuses": {str(code): n for code, n in sorted(self.statuses.items())},
        }


class _Request:
    def __init__(self, method: str, path: str, version: str, headers: dict[str, str]) -> None:
        self.method = method
        self.path = path
        self.version = version
        self.headers = headers
        self.body = b""

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection


class _BadRequest(Exception):
    pass


# --------------------------------------------------------------------------- server


class FaultServer:
    """The server. Use as a context manager, or ``start()`` / ``stop()``."""

    def __init__(
        self,
        default: Action | None = None,
        *,
        script: Script | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        routes: dict[str, Callable[[], dict[str, Any]]] | None = None,
    ) -> None:
        self._default: Action = default if default is not None else Ok()
        self._script = script
        self._routes = dict(routes or {})  # GET path -> JSON, for servers built on this one
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._requests = 0
        self._connections_seen = 0
        self._in_flight = 0
        self._max_in_flight = 0
        self._bodies: list[dict[str, Any]] = []
        self._statuses: Counter[int] = Counter()
        self._answered_at: list[float] = []
        self._received_at: list[float] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()

    # ---- public API

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the server is not running")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}/v1"

    def set_default(self, action: Action) -> None:
        self._default = action

    def set_script(self, script: Script | None) -> None:
        self._script = script

    @property
    def stats(self) -> Stats:
        with self._lock:
            return Stats(
                requests=self._requests,
                connections=self._connections_seen,
                in_flight=self._in_flight,
                max_in_flight=self._max_in_flight,
                bodies=list(self._bodies),
                statuses=Counter(self._statuses),
                answered_at=list(self._answered_at),
                received_at=list(self._received_at),
            )

    def reset_stats(self) -> None:
        with self._lock:
            self._requests = 0
            self._connections_seen = 0
            self._max_in_flight = self._in_flight
            self._bodies = []
            self._statuses = Counter()
            self._answered_at = []
            self._received_at = []

    def start(self) -> str:
        if self._thread is not None:
            raise RuntimeError("the server is already running")
        started = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(
                        self._serve_connection,
                        self._host,
                        self._port,
                        backlog=2048,
                        limit=_MAX_HEADER_BYTES,
                    )
                )
            except BaseException as exc:
                failure.append(exc)
                started.set()
                loop.close()
                return
            self._port = self._server.sockets[0].getsockname()[1]
            started.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="fault-server", daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            self._thread.join()
            self._thread = self._loop = None
            raise failure[0]
        return self.base_url

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._loop = self._thread = None
        self._server = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- event-loop side

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        with self._lock:
            self._connections_seen += 1
        try:
            while True:
                try:
                    request = await _read_request(reader, writer)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                except (_BadRequest, asyncio.LimitOverrunError, ValueError) as exc:
                    body = _error_body(400, f"malformed HTTP request: {exc}")
                    await _send_json(writer, 400, body, keep_alive=False)
                    return
                if request is None:
                    return
                if not await self._dispatch(request, writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:  # stop(): end quietly (3.11 streams log a cancelled task)
            return
        finally:
            self._connections.discard(task)
            if not writer.transport.is_closing():
                writer.close()

    async def _dispatch(self, request: _Request, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection must not be reused."""
        path = request.path.split("?", 1)[0]
        keep_alive = request.keep_alive
        if path in CHAT_PATHS:
            if request.method != "POST":
                return await _send_json(writer, 405, _error_body(405, "use POST"), keep_alive)
            return await self._chat(request, writer)
        if path in ("/health", "/v1/health") and request.method == "GET":
            return await _send_json(writer, 200, {"status": "ok"}, keep_alive)
        if path == "/stats" and request.method == "GET":
            return await _send_json(writer, 200, self.stats.as_json(), keep_alive)
        if path == "/stats/reset" and request.method == "POST":
            self.reset_stats()
            return await _send_json(writer, 200, self.stats.as_json(), keep_alive)
        if path in self._routes and request.method == "GET":
            return await _send_json(writer, 200, self._routes[path](), keep_alive)
        body = _error_body(404, f"no route for {request.method} {path}")
        return await _send_json(writer, 404, body, keep_alive)

    async def _chat(self, request: _Request, writer: asyncio.StreamWriter) -> bool:
        try:
            body = json.loads(request.body or b"null")
        except ValueError:
            body = None
        valid = isinstance(body, dict)
        if not valid:
            body = {}
        with self._lock:
            index = self._requests
            self._requests += 1
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            self._bodies.append(body)
            self._received_at.append(time.time())
        finished = False

        def finish(code: int | None) -> None:
            # Counted before the bytes go out, so a client that has its answer sees the stats.
            nonlocal finished
            with self._lock:
                if not finished:
                    self._in_flight -= 1
                    self._answered_at.append(time.time())
                    if code is not None:
                        self._statuses[code] += 1
            finished = True

        try:
            action = self._choose(index, body) if valid else Status(400, "body is not JSON")
            if action.delay_s > 0:
                await asyncio.sleep(action.delay_s)
            if isinstance(action, Ok):
                try:
                    code, response = 200, _completion(action, index, body)
                except Exception as exc:
                    code, response = 500, _error_body(500, f"cannot synthesise an answer: {exc}")
                finish(code)
                return await _send_json(writer, code, response, request.keep_alive)
            if isinstance(action, Status):
                finish(action.code)
                error = _error_body(action.code, action.body)
                return await _send_json(
                    writer, action.code, error, request.keep_alive, action.headers
                )
            if isinstance(action, Hang):
                await asyncio.sleep(action.seconds)
                finish(None)
                return False
            finish(None)
            _abort(writer)
            return False
        finally:
            finish(None)

    def _choose(self, index: int, body: dict[str, Any]) -> Action:
        script = self._script
        if script is None:
            return self._default
        try:
            return script(index, body)
        except Exception as exc:
            return Status(500, f"fault script raised {type(exc).__name__}: {exc}")


async def _read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> _Request | None:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    while lines and not lines[0]:  # tolerate stray CRLFs between requests
        lines.pop(0)
    if not lines:
        return None
    parts = lines[0].split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _BadRequest(f"bad request line {lines[0]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise _BadRequest(f"bad header line {line!r}")
        headers[name.strip().lower()] = value.strip()
    request = _Request(parts[0].upper(), parts[1], parts[2], headers)
    if headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        request.body = await _read_chunked(reader)
    elif "content-length" in headers:
        length = int(headers["content-length"])
        request.body = await reader.readexactly(length) if length > 0 else b""
    return request


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)


async def _send_json(
    writer: asyncio.StreamWriter,
    code: int,
    payload: dict[str, Any],
    keep_alive: bool,
    headers: tuple[tuple[str, str], ...] = (),
) -> bool:
    data = json.dumps(payload).encode()
    try:
        reason = http.HTTPStatus(code).phrase
    except ValueError:
        reason = "Unknown"
    lines = [
        f"HTTP/1.1 {code} {reason}",
        "Content-Type: application/json",
        f"Content-Length: {len(data)}",
        f"Connection: {'keep-alive' if keep_alive else 'close'}",
        *(f"{name}: {value}" for name, value in headers),
    ]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data)
    await writer.drain()
    return keep_alive


def _abort(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


# --------------------------------------------------------------------------- CLI


def lognormal_latency(median_s: float, p99_s: float, seed: int = 0) -> Script:
    """OK answers after a log-normal delay with that median and 99th percentile (heavy
    tailed, as LLM APIs are), drawn deterministically per request index."""
    sigma = math.log(p99_s / median_s) / 2.3263  # z of the 99th percentile

    def script(index: int, body: dict[str, Any]) -> Action:
        z = random.Random(seed * 1_000_003 + index).gauss(0.0, 1.0)
        return Reply.ok(delay_s=median_s * math.exp(sigma * z))

    return script


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fault_server",
        description="Serve OK chat completions after a fixed latency, for benchmarks.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument(
        "--tail-p99",
        type=float,
        default=None,
        help="log-normal latencies: --latency is the median, this the 99th percentile",
    )
    args = parser.parse_args(argv)
    server = FaultServer(default=Reply.ok(delay_s=args.latency), host=args.host, port=args.port)
    if args.tail_p99:
        server.set_script(lognormal_latency(args.latency, args.tail_p99))
    serve_until_signal(server, lambda: server.stats.as_json())
    return 0


def serve_until_signal(server: FaultServer, report: Callable[[], dict[str, Any]]) -> None:
    """Start ``server``, print ``READY <base url>``, serve until SIGTERM or SIGINT, stop,
    and print ``STOPPED <report as JSON>`` on stderr."""
    stopping = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"READY {server.start()}", flush=True)
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        server.stop()
    print(f"STOPPED {json.dumps(report())}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
