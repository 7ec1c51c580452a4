"""The enrichment ladder with scripted providers (pure: no network, no sleeping)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import httpx2 as httpx
import openai
import pytest

from tests.conftest import EXAMPLE_TASK
from transforms.core.calls.enricher import ABANDONED, Enricher
from transforms.core.calls.policy import ProviderUnavailable, systemic_reason
from transforms.core.calls.providers import CallFailed, Completion
from transforms.core.config.task import load_task
from transforms.core.errors import Attempt, SystemicFault
from transforms.core.job import Job, compile_job
from transforms.core.records import Enriched, Failure, KafkaRecord, Parsed, Skipped
from transforms.core.run.control import RunControl

JOB = compile_job(load_task(EXAMPLE_TASK))
RECORD = Parsed(
    KafkaRecord("reviews", 0, 3, 0, None, b"v"),
    {"review_id": "r1", "product": "Lamp", "text": "Nice.", "submitted_at": 0},
    "examples.reviews.Review@x",
)
GOOD = {"sentiment": "positive", "topics": ["light"], "summary": "Nice lamp.", "rating": 5}


class Scripted:
    """A provider that answers from a script: a string is an answer, an exception fails."""

    def __init__(self, name: str, script: Sequence[Any]) -> None:
        self.spec = SimpleNamespace(name=name, model=f"{name}-model")
        self.script = list(script)
        self.conversations: list[list[dict[str, str]]] = []

    @staticmethod
    def systemic_reason(exc: BaseException) -> str | None:
        return systemic_reason(exc)

    async def complete(self, messages: Any, schema: Any, *, kind: str) -> Completion:
        self.conversations.append(list(messages))
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            attempt = Attempt(self.spec.name, self.spec.model, kind, error=repr(step))
            raise CallFailed(step, (attempt,))
        finish = "length" if step.endswith("...") else "stop"
        attempt = Attempt(self.spec.name, self.spec.model, kind, status=200, finish_reason=finish)
        return Completion(step.removesuffix("..."), finish, (attempt,))


def _run(*providers: Scripted) -> Enriched | Failure:
    return asyncio.run(Enricher(JOB, providers).enrich(RECORD))  # type: ignore[arg-type]


def test_valid_answer_is_merged_with_copied_fields() -> None:
    result = _run(Scripted("a", [json.dumps(GOOD)]))
    assert isinstance(result, Enriched)
    assert result.output == {"review_id": "r1", "product": "Lamp", **GOOD}
    assert result.provider == "a" and len(result.attempts) == 1


def test_failed_provider_falls_back_to_the_next() -> None:
    down = openai.APIConnectionError(request=None)  # type: ignore[arg-type]
    result = _run(Scripted("a", [down]), Scripted("b", [json.dumps(GOOD)]))
    assert isinstance(result, Enriched) and result.provider == "b"
    assert [a.provider for a in result.attempts] == ["a", "b"]


def test_invalid_answer_is_reasked_with_the_errors() -> None:
    provider = Scripted("a", [json.dumps({**GOOD, "rating": 9}), json.dumps(GOOD)])
    result = _run(provider)
    assert isinstance(result, Enriched)
    assert [a.kind for a in result.attempts] == ["call", "reask"]
    reask = provider.conversations[1][-1]["content"]
    assert "$.rating: must be <= 5" in reask


def test_answer_that_stays_invalid_is_a_validate_dead_letter_after_max_reasks() -> None:
    bad = json.dumps({**GOOD, "sentiment": "great"})
    result = _run(Scripted("a", [bad] * 2), Scripted("b", [bad] * 2))
    assert isinstance(result, Failure)
    assert result.stage == "validate" and result.error_class == "OutputInvalid"
    assert [a.kind for a in result.attempts] == ["call", "reask", "call", "reask"]
    assert result.raw_output == bad
    assert result.field_errors[0].path == "$.sentiment"


def test_truncated_answer_is_never_accepted_silently() -> None:
    provider = Scripted("a", [json.dumps(GOOD) + "...", json.dumps(GOOD)])
    result = _run(provider)
    assert isinstance(result, Enriched) and len(result.attempts) == 2
    assert "cut off" in provider.conversations[1][-1]["content"]


def test_all_providers_down_is_an_llm_dead_letter_with_every_attempt() -> None:
    down = openai.APIConnectionError(request=None)  # type: ignore[arg-type]
    result = _run(Scripted("a", [down]), Scripted("b", [down]))
    assert isinstance(result, Failure) and result.stage == "llm"
    assert result.error_class == "ProvidersExhausted"
    assert [a.provider for a in result.attempts] == ["a", "b"]


def test_unrenderable_record_is_a_prompt_dead_letter() -> None:
    record = Parsed(RECORD.source, {"product": "Lamp"}, RECORD.input_schema)
    result = asyncio.run(Enricher(JOB, [Scripted("a", [])]).enrich(record))  # type: ignore[list-item]
    assert isinstance(result, Failure) and result.stage == "prompt"


def test_broken_json_and_wrong_case_are_repaired_without_a_reask() -> None:
    answer = '{"sentiment": "Positive", "topics": "light", "summary": "ok", "rating": "5",}'
    broken = f"```json\n{answer}\n```"
    result = _run(Scripted("a", [broken]))
    assert isinstance(result, Enriched) and len(result.attempts) == 1
    assert result.output["sentiment"] == "positive" and result.output["topics"] == ["light"]
    assert result.output["rating"] == 5
    assert set(result.repairs) >= {
        "strip_code_fence",
        "json_repair",
        "enum_case@$.sentiment",
        "wrap_in_array@$.topics",
        "numeric_string@$.rating",
    }


class Slow(Scripted):
    async def complete(self, messages: Any, schema: Any, *, kind: str) -> Completion:
        await asyncio.sleep(5)
        raise AssertionError("the deadline should have fired")


def test_per_record_deadline_covers_all_attempts() -> None:
    policy = JOB.task.policy.model_copy(update={"record_deadline_s": 0.05})
    job = compile_job(JOB.task.model_copy(update={"policy": policy}))
    result = asyncio.run(Enricher(job, [Slow("slow", [])]).enrich(RECORD))  # type: ignore[list-item]
    assert isinstance(result, Failure) and result.stage == "llm"
    assert "policy.record_deadline_s" in result.message


class Broken(Scripted):
    async def complete(self, messages: Any, schema: Any, *, kind: str) -> Completion:
        raise RuntimeError("a bug, not an HTTP error")


def test_an_unexpected_error_dead_letters_the_record_instead_of_crashing_the_run() -> None:
    result = asyncio.run(Enricher(JOB, [Broken("b", [])]).enrich(RECORD))  # type: ignore[list-item]
    assert isinstance(result, Failure) and result.stage == "llm"
    assert "unexpected RuntimeError" in result.message


def _status_error(status: int) -> openai.APIStatusError:
    request = httpx.Request("POST", "http://provider/v1/chat/completions")
    response = httpx.Response(status, request=request)
    return openai.APIStatusError(f"HTTP {status}", response=response, body=None)


def _with_policy(**update: Any) -> Job:
    policy = JOB.task.policy.model_copy(update=update)
    return compile_job(JOB.task.model_copy(update={"policy": policy}))


@pytest.mark.parametrize("status", [401, 403, 404, 405])
def test_every_provider_refusing_us_is_a_systemic_fault_not_a_dead_letter(status: int) -> None:
    providers = [Scripted("a", [_status_error(status)]), Scripted("b", [_status_error(401)])]
    with pytest.raises(SystemicFault) as raised:
        asyncio.run(Enricher(JOB, providers).enrich(RECORD))  # type: ignore[arg-type]
    assert not raised.value.outage and raised.value.label == "systemic"
    assert f"a: {systemic_reason(_status_error(status))}" in raised.value.reason


def test_a_systemic_fault_halts_the_run_and_skips_every_record() -> None:
    providers = [Scripted("a", [_status_error(401)] * 3)]
    enricher = Enricher(JOB, providers)  # type: ignore[arg-type]
    results = asyncio.run(enricher.enrich_all([RECORD] * 3))
    control = enricher.control
    assert all(isinstance(r, Skipped) for r in results)
    assert control.halted() is not None and control.halted().startswith("systemic: ")  # type: ignore[union-attr]
    assert control.stop_requested()
    assert len(providers[0].conversations) == 1  # the others were never attempted


def test_one_provider_refusing_us_falls_back_as_before() -> None:
    result = _run(Scripted("a", [_status_error(401)]), Scripted("b", [json.dumps(GOOD)]))
    assert isinstance(result, Enriched) and result.provider == "b"


def test_a_400_for_this_record_is_still_a_dead_letter() -> None:
    result = _run(Scripted("a", [_status_error(400)]))
    assert isinstance(result, Failure) and result.stage == "llm"


def test_policy_can_keep_dead_lettering_systemic_faults() -> None:
    job = _with_policy(on_systemic_fault="dead_letter")
    enricher = Enricher(job, [Scripted("a", [_status_error(401)])])  # type: ignore[list-item]
    result = asyncio.run(enricher.enrich(RECORD))
    assert isinstance(result, Failure) and result.error_class == "ProvidersExhausted"
    assert "authentication failed" in result.message


def test_every_circuit_open_stops_a_drain_run() -> None:
    closed = ProviderUnavailable("circuit open; provider skipped")
    results = asyncio.run(
        Enricher(JOB, [Scripted("a", [closed])]).enrich_all([RECORD])  # type: ignore[list-item]
    )
    assert isinstance(results[0], Skipped) and results[0].reason.startswith("outage: ")


def test_a_follow_run_waits_out_an_outage_and_probes_until_a_provider_is_back() -> None:
    closed = ProviderUnavailable("circuit open; provider skipped")
    provider = Scripted("a", [closed, closed, json.dumps(GOOD)])
    slept: list[float] = []
    paused_while_waiting: list[bool] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        paused_while_waiting.append(control.paused())

    control = RunControl()
    enricher = Enricher(JOB, [provider], follow=True, sleep=sleep, control=control)  # type: ignore[list-item]
    results = asyncio.run(enricher.enrich_all([RECORD]))
    assert isinstance(results[0], Enriched)
    assert sum(slept) == 2 * JOB.task.policy.circuit_cooldown_s and all(paused_while_waiting)
    assert not control.paused() and control.halted() is None


def test_a_stop_while_waiting_out_an_outage_abandons_the_record_at_once() -> None:
    closed = ProviderUnavailable("circuit open; provider skipped")
    provider = Scripted("a", [closed] * 100)

    async def sleep(seconds: float) -> None:
        control.request_stop()  # SIGTERM arrives during the wait

    control = RunControl()
    enricher = Enricher(JOB, [provider], follow=True, sleep=sleep, control=control)  # type: ignore[list-item]
    results = asyncio.run(enricher.enrich_all([RECORD]))
    assert isinstance(results[0], Skipped) and results[0].reason == ABANDONED
    assert len(provider.conversations) == 1  # no probe after the stop


def test_a_403_for_flagged_content_is_about_the_record() -> None:
    request = httpx.Request("POST", "http://gateway/v1/chat/completions")
    flagged = openai.APIStatusError(
        "Input flagged by moderation", response=httpx.Response(403, request=request), body=None
    )
    assert systemic_reason(flagged) is None
    assert systemic_reason(_status_error(403)) == "permission denied (403)"
