"""OpenAI-compatible chat completions over one aiohttp session: the lean HTTP path.

The ``openai`` SDK spends about 2 ms of CPU per call in its HTTP stack (1.2 ms with its
aiohttp transport); a plain aiohttp POST costs about 0.2 ms. This module sends the request
body as ready-made JSON bytes over a keep-alive aiohttp session and keeps the SDK's types
and semantics at both ends:

    200 with a chat completion     -> ``openai.types.chat.ChatCompletion`` (pydantic, from JSON)
    200 with anything else         -> ``NotChatCompletions`` (the text, or the JSON's shape)
    4xx / 5xx                      -> the exception the SDK raises for that response, built by
                                      the SDK itself (``RateLimitError``, ``NotFoundError``...,
                                      with the response's headers, so ``Retry-After`` reads
                                      the same)
    timeout                        -> ``openai.APITimeoutError``
    connection refused/reset/lost  -> ``openai.APIConnectionError``

The session is created on first use, inside the event loop that uses it, and closed by
``aclose``. Never pickled: built on the worker.

``prefix_cache="exact"`` (llama-server only) reuses the KV cache of the prompt's fixed part
without changing any answer; see ``ExactPrefix``.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import httpx2
import openai
import pydantic
from openai.types.chat import ChatCompletion

from transforms.core.calls.policy import NotChatCompletions

__all__ = ["ChatEndpoint", "ExactPrefix", "fixed_prefix_body"]


class ChatEndpoint:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        timeout_s: float,
        max_connections: int,
        prefix_cache: str = "off",
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        # Only used to turn an error response into the exception the SDK would raise.
        self._sdk = openai.AsyncOpenAI(base_url=base_url, api_key=api_key or "unused")
        self._prefix = ExactPrefix(self.url, self._post) if prefix_cache == "exact" else None

    async def create(self, body: bytes) -> ChatCompletion:
        """POST one chat completion request (``body``: its JSON) and return the answer."""
        if self._prefix is not None:
            return _completion(await self._prefix.create(body))
        return _completion(await self._post(body))

    async def _post(self, body: bytes) -> bytes:
        """POST ``body``; the answer's bytes, or the SDK's exception for an error."""
        session = self._session or self._open()
        try:
            async with session.post(
                self.url, data=body, headers=self._headers, timeout=self._timeout
            ) as response:
                payload = await response.read()
                status, headers = response.status, response.headers
        except TimeoutError:
            raise openai.APITimeoutError(request=self._request()) from None
        except aiohttp.ClientError as exc:
            raise openai.APIConnectionError(
                message=f"Connection error: {type(exc).__name__}", request=self._request()
            ) from exc
        if status >= 400:
            raise self._sdk._make_status_error_from_response(
                httpx2.Response(
                    status, headers=list(headers.items()), content=payload, request=self._request()
                )
            )
        return payload

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self._sdk.close()

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0)
        self._session = aiohttp.ClientSession(
            connector=connector, json_serialize=json.dumps, raise_for_status=False
        )
        return self._session

    def _request(self) -> httpx2.Request:
        return httpx2.Request("POST", self.url)


def _completion(payload: bytes) -> ChatCompletion:
    """Validated from JSON when the server sends every field (fast); else read leniently,
    as the SDK reads answers, so servers that omit ``id`` or ``created`` still work."""
    try:
        return ChatCompletion.model_validate_json(payload)
    except pydantic.ValidationError:
        pass
    try:
        data: Any = json.loads(payload)
    except ValueError:
        text = payload[:80].decode(errors="replace")
        raise NotChatCompletions(f"the answer was text, not JSON: {text!r}") from None
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
        raise NotChatCompletions("the answer was JSON without 'choices'")
    return ChatCompletion.construct(**data)


def fixed_prefix_body(request: dict[str, Any], *, cache_prompt: bool) -> bytes | None:
    """The request that evaluates only the prompt's fixed part: the same model and
    messages, the last (the record's user turn) with empty content, one token, no response
    format. Its tokens are the fixed prefix P' (system, few shots, the opening of the last
    user turn) followed by the template's end of turn, which no record's text starts with,
    so its common prefix with any record's prompt is exactly P'. None when the request does
    not end with a user turn (nothing to split off)."""
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages or messages[-1].get("role") != "user":
        return None
    head = {key: request[key] for key in ("model", "temperature", "seed") if key in request}
    return json.dumps(
        {
            **head,
            "messages": [*messages[:-1], {**messages[-1], "content": ""}],
            "max_tokens": 1,
            "cache_prompt": cache_prompt,
        },
        separators=(",", ":"),
    ).encode()


@dataclass
class _Slot:
    """What this process knows about one server's single slot: whose fixed prefix it holds
    as evaluated from scratch (``warm``: the warm-up's body), and that prefix's length in
    tokens once a record has reported it."""

    warm: bytes | None = None
    prefix_tokens: int | None = None
    locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = field(
        default_factory=weakref.WeakKeyDictionary
    )

    def lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self.locks.get(loop)
        if lock is None:
            lock = self.locks[loop] = asyncio.Lock()
        return lock


_SLOTS: dict[str, _Slot] = {}  # per server URL, shared by every endpoint of the process


class ExactPrefix:
    """Reuse the KV cache of the prompt's fixed part on llama-server (``-np 1``) so that
    every answer is the same whatever came before it.

    llama.cpp's numerics depend on how a prompt is split into batches. With plain
    ``cache_prompt`` the server reuses the longest common prefix with whatever its slot
    holds (the previous record's prompt and answer), so where evaluation starts depends on
    the previous record. Here, for each record, under one lock per server:

        warm-up (once per fixed prefix): the fixed-prefix request, cache_prompt false,
            so P' is evaluated from scratch, the same way every time
        reset: the same request, cache_prompt true: the slot is cut back to P' (+ the end
            of turn); P' is not evaluated again
        the record, cache_prompt true: reuses exactly P' (the warm-up's KV) and evaluates
            the record's tokens in one batch from |P'|

    llama-server reports ``timings.cache_n`` (tokens reused): a record must reuse exactly
    |P'| (learned from the first record after a warm-up). Anything else means some other
    client used the slot in between; the prefix is then warmed up again and the record
    asked again, once. The warm-up and the reset are not the record's attempts.
    """

    def __init__(self, url: str, post: Callable[[bytes], Awaitable[bytes]]) -> None:
        self._slot = _SLOTS.setdefault(url, _Slot())
        self._post = post

    async def create(self, body: bytes) -> bytes:
        request = json.loads(body)
        warm = fixed_prefix_body(request, cache_prompt=False)
        reset = fixed_prefix_body(request, cache_prompt=True)
        if warm is None or reset is None:
            return await self._post(body)
        record = json.dumps({**request, "cache_prompt": True}, separators=(",", ":")).encode()
        slot = self._slot
        async with slot.lock():
            for _ in range(2):
                try:
                    if slot.warm != warm:
                        await self._post(warm)
                        slot.warm, slot.prefix_tokens = warm, None
                    await self._post(reset)
                    payload = await self._post(record)
                except BaseException:
                    slot.warm = None  # the slot's state is unknown: warm up again
                    raise
                reused = _reused_tokens(payload)
                if slot.prefix_tokens is None:
                    slot.prefix_tokens = reused
                if reused is None or reused == slot.prefix_tokens:
                    return payload
                slot.warm = None  # someone else used the slot: warm up and ask again
            return payload


def _reused_tokens(payload: bytes) -> int | None:
    """llama-server's ``timings.cache_n``: prompt tokens reused from the slot."""
    try:
        cached = json.loads(payload).get("timings", {}).get("cache_n")
    except (ValueError, AttributeError):
        return None
    return cached if isinstance(cached, int) else None
