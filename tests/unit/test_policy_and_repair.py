from __future__ import annotations

import httpx2 as httpx
import openai
import pytest

from transforms.core.answers.repair import parse_answer
from transforms.core.calls.policy import (
    ContentFiltered,
    ContextTooLong,
    classify,
    redact,
    retry_after_seconds,
)

REQUEST = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")


def _status(code: int, body: str = "error", headers: dict[str, str] | None = None) -> Exception:
    response = httpx.Response(code, request=REQUEST, headers=headers or {}, text=body)
    return openai.APIStatusError(body, response=response, body=None)


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (408, "transient"),
        (409, "transient"),
        (429, "transient"),
        (500, "transient"),
        (502, "transient"),
        (503, "transient"),
        (504, "transient"),
        (400, "final"),
        (401, "final"),
        (403, "final"),
        (404, "final"),
        (422, "final"),
    ],
)
def test_status_classification(code: int, kind: str) -> None:
    assert classify(_status(code)) == kind


def test_connection_errors_and_timeouts_are_transient() -> None:
    assert classify(openai.APIConnectionError(request=REQUEST)) == "transient"
    assert classify(openai.APITimeoutError(request=REQUEST)) == "transient"
    assert classify(TimeoutError()) == "transient"


def test_context_length_and_content_filter_fall_back() -> None:
    too_long = _status(400, "This model's maximum context length is 4096 tokens")
    assert classify(too_long) == "fallback"
    assert classify(ContextTooLong()) == "fallback"
    assert classify(ContentFiltered()) == "fallback"
    assert classify(ValueError("bug")) == "final"


def test_retry_after_headers() -> None:
    assert retry_after_seconds(_status(429, headers={"retry-after": "3"})) == 3.0
    assert retry_after_seconds(_status(429, headers={"retry-after-ms": "250"})) == 0.25
    assert retry_after_seconds(_status(429, headers={"retry-after": "Wed, 21 Oct"})) is None
    assert retry_after_seconds(_status(500)) is None


def test_redact_hides_secrets_and_their_prefixes() -> None:
    secret = "sk-live-0123456789abcdef"
    message = f"Incorrect API key provided: {secret[:8]}****cdef; full {secret}"
    cleaned = redact(message, [secret])
    assert secret not in cleaned and secret[:8] not in cleaned


@pytest.mark.parametrize(
    ("raw", "repairs"),
    [
        ('{"a": 1}', []),
        ('```json\n{"a": 1}\n```', ["strip_code_fence"]),
        ('Sure! Here it is: {"a": 1} Hope that helps.', ["strip_surrounding_text"]),
        ('{"a": 1,}', ["json_repair"]),
        ('{"a": 1', ["json_repair"]),
    ],
)
def test_parse_answer_repairs_deterministically(raw: str, repairs: list[str]) -> None:
    datum, applied, errors = parse_answer(raw)
    assert datum == {"a": 1} and applied == repairs and errors == []


def test_unparseable_answer_is_an_error_at_the_root() -> None:
    datum, _, errors = parse_answer("I cannot help with that.")
    assert datum is None and str(errors[0]) == "$: the answer is not a JSON object"
