"""The one retry recipe (``calls.policy``): transient errors are tried again with the
injected sleep, anything else is raised at once; a call given as a lambda is awaited."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx2 as httpx
import openai
import pytest

from transforms.core.calls.policy import retried, transient_retrying


def _status(code: int) -> Exception:
    response = httpx.Response(code, request=httpx.Request("POST", "http://x/v1/chat"))
    return openai.APIStatusError("error", response=response, body=None)


def _flaky(errors: list[Exception]) -> tuple[list[int], Callable[[], Awaitable[str]]]:
    tries: list[int] = []

    async def call() -> str:
        tries.append(len(tries) + 1)
        if errors:
            raise errors.pop(0)
        return "done"

    return tries, call


def test_a_lambda_is_awaited_and_a_transient_error_tried_again() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    tries, call = _flaky([_status(503), _status(429)])
    retrying = transient_retrying(3, sleep, backoff_initial_s=0.5, backoff_max_s=10.0)
    assert asyncio.run(retried(retrying, lambda: call())) == "done"
    assert tries == [1, 2, 3]
    assert len(slept) == 2 and all(0 <= s <= 10.0 for s in slept)


def test_a_final_error_is_raised_at_once_and_the_last_transient_one_when_tries_run_out() -> None:
    async def sleep(seconds: float) -> None:
        return None

    tries, call = _flaky([_status(400)])
    with pytest.raises(openai.APIStatusError) as final:
        asyncio.run(
            retried(transient_retrying(3, sleep, backoff_initial_s=0, backoff_max_s=0), call)
        )
    assert final.value.status_code == 400 and tries == [1]
    tries, call = _flaky([_status(503), _status(502)])
    with pytest.raises(openai.APIStatusError) as last:
        asyncio.run(
            retried(transient_retrying(2, sleep, backoff_initial_s=0, backoff_max_s=0), call)
        )
    assert last.value.status_code == 502 and tries == [1, 2]
