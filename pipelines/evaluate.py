"""``llm-enrich eval``: each provider's scorecard and gate over a golden set, asked the
task's real per-record path (``transforms.llm.ask_golden``), once per provider, on one
asyncio loop. No Kafka, no Beam, no response cache (every answer is asked for)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from transforms.core.config.task import ProviderSpec
from transforms.core.errors import TaskConfigError
from transforms.core.eval.golden import GoldenCase
from transforms.core.eval.kinds import field_kinds
from transforms.core.eval.result import EvalResult, Gate, Golden, ProviderCard, Thresholds
from transforms.core.eval.scorecard import Outcome, gate, outcome, scorecard
from transforms.core.job import Job
from transforms.llm.ask_golden import ask_all

__all__ = ["chosen_providers", "evaluate"]


def chosen_providers(job: Job, names: Sequence[str]) -> list[ProviderSpec]:
    """The providers to evaluate: those named, else every synchronous one. Raises
    TaskConfigError (one line) for an unknown name or a batch provider."""
    known = {p.name: p for p in job.task.providers}
    for name in names:
        if name not in known:
            raise TaskConfigError(
                f"no provider {name!r} in the task (providers: {', '.join(known)})"
            )
        if known[name].mode == "batch":
            raise TaskConfigError(f"provider {name!r} is mode: batch; eval asks providers directly")
    if names:
        return [known[n] for n in dict.fromkeys(names)]
    return [p for p in job.task.providers if p.mode == "sync"]


async def _ask(job: Job, spec: ProviderSpec, cases: Sequence[GoldenCase]) -> list[Outcome]:
    results = await ask_all(job, [spec], cases, f"provider {spec.name!r}")
    return [outcome(r) for r in results]


def evaluate(
    job: Job, cases: Sequence[GoldenCase], providers: Sequence[ProviderSpec], golden: str
) -> EvalResult:
    """A scorecard and its gate per provider."""
    kinds = field_kinds(job.shape.avro)
    spec = job.task.eval
    cards: dict[str, ProviderCard] = {}
    for provider in providers:
        outcomes = asyncio.run(_ask(job, provider, cases))
        card = scorecard(cases, outcomes, kinds, spec.tolerance)
        missed = gate(card, spec.min_scores)
        cards[provider.name] = ProviderCard(
            **dict(card), model=provider.model, gate=Gate(passed=not missed, missed=missed)
        )
    return EvalResult(
        task=job.name,
        prompt_hash=job.prompt.hash,
        records_per_call=job.task.prompt.records_per_call,
        output_schema=job.output_schema.identity,
        golden=Golden(path=golden, records=len(cases)),
        thresholds=Thresholds(min_scores=dict(spec.min_scores), tolerance=dict(spec.tolerance)),
        providers=cards,
        passed=all(c.gate.passed for c in cards.values()),
    )
