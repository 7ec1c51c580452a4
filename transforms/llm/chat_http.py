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
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import httpx2
import openai
import pydantic
from openai.types.chat import ChatCompletion

from transforms.core.calls.policy import NotChatCompletions

__all__ = ["ChatEndpoint"]


class ChatEndpoint:
    def __init__(self, base_url: str, api_key: str, timeout_s: float, max_connections: int) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        # Only used to turn an error response into the exception the SDK would raise.
        self._sdk = openai.AsyncOpenAI(base_url=base_url, api_key=api_key or "unused")

    async def create(self, body: bytes) -> ChatCompletion:
        """POST one chat completion request (``body``: its JSON) and return the answer."""
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
        return _completion(payload)

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
