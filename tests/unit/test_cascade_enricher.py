"""The enricher over cascade steps, with scripted providers (pure: no network)."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import openai
import pytest

from tests.unit.test_enricher import GOOD, JOB, RECORD
from transforms.core.answers.confidence import TokenLogprob
from transforms.core.calls.cascade import Step, StepGate, through_cascade
from transforms.core.calls.enricher import Enricher
from transforms.core.calls.policy import systemic_reason
from transforms.core.calls.providers import CallFailed, Completion
from transforms.core.config.task import PricingSpec, ProviderSpec
from transforms.core.errors import Attempt, ProvidersExhausted
from transforms.core.records import Enriched, Failure

STRONG = ProviderSpec(
    name="strong",
    base_url="http://x/v1",
    model="big",
    pricing=PricingSpec(prompt_per_million=2.0, completion_per_million=8.0),
)


def tokens(sentiment_p: float, rating_p: float) -> tuple[TokenLogprob, ...]:
    """GOOD written so that sentiment has ``sentiment_p`` against "negative" and rating
    ``rating_p`` against 4."""
    head = json.dumps({k: GOOD[k] for k in ("topics", "summary")})[:-1]
    return (
        TokenLogprob(head + ', "sentiment": ', 0.0),
        TokenLogprob(
            '"positive"', math.log(sentiment_p), (('"negative"', math.log(1 - sentiment_p)),)
        ),
        TokenLogprob(', "rating": ', 0.0),
        TokenLogprob("5", math.log(rating_p), (("4", math.log(1 - rating_p)),)),
        TokenLogprob("}", 0.0),
    )


class Scripted:
    """Answers from a script: (text, logprobs) or an exception; records what it was asked."""

    def __init__(self, name: str, script: Sequence[Any]) -> None:
        self.spec = SimpleNamespace(name=name, model=f"{name}-model", mode="sync")
        self.script = list(script)
        self.asked: list[int | None] = []

    @staticmethod
    def systemic_reason(exc: BaseException) -> str | None:
        return systemic_reason(exc)

    async def complete(
        self, messages: Any, schema: Any, *, kind: str, top_logprobs: int | None = None
    ) -> Completion:
        self.asked.append(top_logprobs)
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            attempt = Attempt(self.spec.name, self.spec.model, kind, error=repr(step))
            raise CallFailed(step, (attempt,))
        text, logprobs = step
        attempt = Attempt(
            self.spec.name,
            self.spec.model,
            kind,
            status=200,
            prompt_tokens=1000,
            completion_tokens=100,
            cost_usd=0.0001,
        )
        return Completion(text, "stop", (attempt,), logprobs=logprobs if top_logprobs else None)


def answer(sentiment_p: float = 0.9, rating_p: float = 0.9) -> tuple[str, Any]:
    toks = tokens(sentiment_p, rating_p)
    return "".join(t.text for t in toks), toks


def steps(small: Scripted, large: Scripted, threshold: float = 0.8) -> list[Step]:
    gate = StepGate(JOB.shape.json_schema, threshold, 0.5, 20)
    return [Step("small", [small], gate, STRONG), Step("large", [large], None, STRONG)]  # type: ignore[list-item]


def run(small: Scripted, large: Scripted, threshold: float = 0.8) -> Enriched | Failure:
    providers = [small, large]
    enricher = Enricher(JOB, providers, steps=steps(small, large, threshold))  # type: ignore[arg-type]
    return asyncio.run(enricher.enrich(RECORD))


def test_a_confident_cheap_answer_is_taken_and_the_strong_step_never_asked() -> None:
    small, large = Scripted("small", [answer(0.9, 0.95)]), Scripted("large", [])
    result = run(small, large)
    assert isinstance(result, Enriched) and result.provider == "small"
    assert result.cascade is not None and result.cascade.step == "small"
    assert result.confidence is not None and result.confidence.record == pytest.approx(0.9)
    assert result.confidence.fields == {
        "sentiment": pytest.approx(0.9),
        "rating": pytest.approx(0.95),
    }
    assert small.asked == [20] and large.asked == []
    # what the strong step would have cost: 1000 prompt and 100 completion tokens at $2/$8
    assert result.cascade.all_strong_usd == pytest.approx((1000 * 2 + 100 * 8) / 1e6)


def test_a_doubtful_cheap_answer_escalates_and_the_strong_step_is_not_judged() -> None:
    small = Scripted("small", [answer(0.9, 0.6)])
    large = Scripted("large", [(json.dumps(GOOD), None)])
    result = run(small, large)
    assert isinstance(result, Enriched) and result.provider == "large"
    assert result.cascade is not None
    assert result.cascade.escalated == (("small", "low_confidence"),)
    assert result.cascade.confidence is None and large.asked == [None]
    assert [a.provider for a in result.attempts] == ["small", "large"]
    assert result.cascade.all_strong_usd == pytest.approx(0.0001)  # what it did cost
    header = json.loads(result.cascade.as_json())
    assert header["step"] == "large" and header["escalated"] == [["small", "low_confidence"]]


def test_a_reasked_cheap_answer_is_scaled_by_the_repair_factor() -> None:
    invalid = (json.dumps({**GOOD, "rating": 9}), None)
    small = Scripted("small", [invalid, answer(0.9, 0.9)])
    result = run(small, Scripted("large", []), threshold=0.4)
    assert isinstance(result, Enriched) and result.provider == "small"
    assert result.confidence is not None and result.confidence.record == pytest.approx(0.45)


def test_an_invalid_or_failed_cheap_step_escalates_with_its_reason() -> None:
    invalid = (json.dumps({**GOOD, "rating": 9}), None)
    result = run(
        Scripted("small", [invalid, invalid]), Scripted("large", [(json.dumps(GOOD), None)])
    )
    assert isinstance(result, Enriched) and result.cascade is not None
    assert result.cascade.escalated == (("small", "invalid"),)
    down = openai.APIConnectionError(request=None)  # type: ignore[arg-type]
    result = run(Scripted("small", [down]), Scripted("large", [(json.dumps(GOOD), None)]))
    assert isinstance(result, Enriched) and result.cascade is not None
    assert result.cascade.escalated == (("small", "failed"),)


def test_the_last_steps_failure_is_the_records_with_every_attempt() -> None:
    down = openai.APIConnectionError(request=None)  # type: ignore[arg-type]
    result = run(Scripted("small", [answer(0.5, 0.5)]), Scripted("large", [down]))
    assert isinstance(result, Failure) and result.stage == "llm"
    assert [a.provider for a in result.attempts] == ["small", "large"]


def test_without_logprobs_a_cheap_answer_is_not_confident() -> None:
    small = Scripted("small", [(json.dumps(GOOD), None)])
    result = run(small, Scripted("large", [(json.dumps(GOOD), None)]))
    assert isinstance(result, Enriched) and result.provider == "large"
    # threshold 0 accepts any valid answer
    small = Scripted("small", [(json.dumps(GOOD), None)])
    result = run(small, Scripted("large", []), threshold=0.0)
    assert isinstance(result, Enriched) and result.provider == "small"


def test_through_cascade_raises_the_last_failure() -> None:
    async def ask(step: Step) -> Enriched:
        raise ProvidersExhausted(f"{step.name} down")

    gate = StepGate(JOB.shape.json_schema, 0.5, 0.5, 20)
    two = [Step("a", [], gate, STRONG), Step("b", [], None, STRONG)]
    with pytest.raises(ProvidersExhausted, match="b down"):
        asyncio.run(through_cascade(two, ask, []))
