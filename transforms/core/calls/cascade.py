"""The cascade at run time: cheap steps first, a stronger one only when needed.

    for each step (cheap to strong), a chain of providers with its own fallback:
        the step's valid answer, judged by its gate:
            confidence >= min_confidence      -> the record's answer (marked with the step)
            below                             -> escalate ("low_confidence")
        invalid after its re-asks, or a rule  -> escalate ("invalid")
        every provider failed                 -> escalate ("failed")
    the last step: its valid answer is accepted; its failure is the record's

Every attempt of every step stays with the record (its dead letter, its usage and cost).
The confidence (``transforms.core.answers.confidence``) is the least confident closed-set
field of the answer, from the token log-probabilities the step's providers are asked for,
scaled by ``cascade.repair_factor`` when the answer was repaired field by field or
re-asked. A record answered early also carries what the strongest step would have cost
for it (its tokens at the strongest step's prices), for the summary's "saved" figure.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from transforms.core.answers.confidence import (
    field_choices,
    field_confidences,
    record_confidence,
)
from transforms.core.calls.providers import Completion, Provider
from transforms.core.config.task import ProviderSpec
from transforms.core.errors import (
    Attempt,
    EnrichError,
    OutputInvalid,
    OutputRuleViolated,
    ProvidersExhausted,
    SystemicFault,
)
from transforms.core.job import Job
from transforms.core.ledger.prices import call_cost_usd
from transforms.core.ledger.usage import Usage
from transforms.core.records import CascadeMark, Confidence, Enriched

__all__ = ["NotConfident", "Step", "StepGate", "cascade_steps", "through_cascade"]

# why a step passed a record on, as counted (``cascade.escalated.<step>.<reason>``)
LOW_CONFIDENCE, INVALID, FAILED = "low_confidence", "invalid", "failed"


class NotConfident(EnrichError):
    """A step's valid answer was not confident enough: escalate."""

    def __init__(self, confidence: Confidence) -> None:
        super().__init__(f"confidence {confidence.record:.3f}")
        self.confidence = confidence


class StepGate:
    """Judges the valid answers of a step that is not the last."""

    def __init__(
        self,
        json_schema: dict[str, Any],
        min_confidence: float,
        repair_factor: float,
        top_logprobs: int,
    ) -> None:
        self.choices = field_choices(json_schema)
        self.min_confidence = min_confidence
        self.repair_factor = repair_factor
        self.top_logprobs = top_logprobs

    def judge(
        self,
        completion: Completion,
        answer: dict[str, Any],
        repairs: Sequence[str],
        *,
        reasked: bool,
        defaulted: Sequence[str] = (),
    ) -> Confidence:
        fields = field_confidences(completion.logprobs or (), self.choices, answer)
        repaired = reasked or bool(defaulted) or any("@" in r for r in repairs)
        record = record_confidence(fields, repaired=repaired, repair_factor=self.repair_factor)
        return Confidence(round(record, 6), {k: _round(v) for k, v in fields.items()})

    def check(self, confidence: Confidence) -> None:
        """Raises NotConfident below the step's threshold."""
        if confidence.record < self.min_confidence:
            raise NotConfident(confidence)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


@dataclass(frozen=True)
class Step:
    name: str
    providers: list[Provider]
    gate: StepGate | None  # None: the last step, whose valid answer is accepted
    strongest: ProviderSpec  # the last step's first provider: its prices price "all strong"


def cascade_steps(job: Job, providers: Sequence[Provider]) -> list[Step] | None:
    """The task's active steps over ``providers`` (the chain's clients, by name), or None
    when the task has no cascade."""
    cascade = job.task.cascade
    if cascade is None:
        return None
    by_name = {p.spec.name: p for p in providers}
    active = cascade.active
    strongest = by_name[active[-1].providers[0]].spec
    steps = []
    for index, spec in enumerate(active):
        gate = None
        if index < len(active) - 1:
            assert spec.min_confidence is not None, "checked when the task was loaded"
            gate = StepGate(
                job.shape.json_schema,
                spec.min_confidence,
                cascade.repair_factor,
                cascade.top_logprobs,
            )
        steps.append(Step(spec.name, [by_name[n] for n in spec.providers], gate, strongest))
    return steps


def step_of(steps: Sequence[Step], provider: str) -> tuple[int, Step] | None:
    for index, step in enumerate(steps):
        if any(p.spec.name == provider for p in step.providers):
            return index, step
    return None


def price(spec: ProviderSpec, answered: Attempt, accepted: Attempt) -> float:
    """What ``spec`` would charge for a call with ``answered``'s prompt (its cached share
    too) and ``accepted``'s completion, in its own lane (``ledger.prices``)."""
    lane = "batch" if spec.mode == "batch" else "flex" if spec.service_tier == "flex" else "sync"
    usage = Usage(
        prompt_tokens=answered.prompt_tokens,
        cached_tokens=answered.cached_tokens,
        completion_tokens=accepted.completion_tokens,
        reasoning_tokens=accepted.reasoning_tokens,
    )
    return call_cost_usd(usage, spec.pricing, lane)


def all_strong_usd(step: Step, attempts: Sequence[Attempt], *, last: bool) -> float:
    """What the strongest step would have cost for this record: when it answered, what it
    did cost; else the answering step's tokens (its first answered call's prompt, its
    accepted answer's completion, the cached share as it was) at the strongest step's
    prices and lane (an estimate: another model's tokenizer counts a little differently)."""
    names = {p.spec.name for p in step.providers}
    mine = [a for a in attempts if a.provider in names]
    if last:
        return sum(a.cost_usd for a in mine)
    answered = [a for a in mine if a.error is None and a.status == 200]
    if not answered:
        return 0.0
    return price(step.strongest, answered[0], answered[-1])


Ask = Callable[[Step], Awaitable[Enriched]]


async def through_cascade(steps: Sequence[Step], ask: Ask, attempts: list[Attempt]) -> Enriched:
    """The record's answer from the first step that gives a valid, confident one. ``ask``
    runs one step's providers (raising ``NotConfident`` through its gate); ``attempts``
    is the record's list, which ``ask`` extends. The last step's failure is raised."""
    escalated: list[tuple[str, str]] = []
    for index, step in enumerate(steps):
        last = index == len(steps) - 1
        try:
            enriched = await ask(step)
        except NotConfident:
            escalated.append((step.name, LOW_CONFIDENCE))
            continue
        except (OutputInvalid, OutputRuleViolated):
            if last:
                raise
            escalated.append((step.name, INVALID))
            continue
        except (ProvidersExhausted, SystemicFault):
            if last:
                raise
            escalated.append((step.name, FAILED))
            continue
        mark = CascadeMark(
            step=step.name,
            index=index,
            confidence=enriched.confidence,
            escalated=tuple(escalated),
            all_strong_usd=all_strong_usd(step, attempts, last=last),
        )
        return replace(enriched, cascade=mark)
    raise AssertionError("unreachable: the last step returns or raises")


def mark_cached(steps: Sequence[Step], enriched: Enriched) -> Enriched:
    """A cached answer's step, from the provider that first gave it (no escalation now)."""
    found = step_of(steps, enriched.provider)
    if found is None:
        return enriched
    index, step = found
    return replace(
        enriched,
        cascade=CascadeMark(
            step=step.name, index=index, confidence=None, escalated=(), all_strong_usd=0.0
        ),
    )
