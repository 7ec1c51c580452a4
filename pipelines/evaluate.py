"""``llm-enrich eval``: the task's real per-record path (prompt, provider call, repair,
validation, re-asks, output rules) over a golden set, once per provider, on one asyncio
loop. No Kafka, no Beam, no response cache (every answer is asked for)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from typing import Any

from transforms.core.calls.cascade import Step
from transforms.core.calls.enricher import Enricher
from transforms.core.calls.providers import Provider
from transforms.core.config.task import ProviderSpec
from transforms.core.errors import EnrichError, SystemicFault, TaskConfigError
from transforms.core.eval.golden import GoldenCase
from transforms.core.eval.kinds import field_kinds
from transforms.core.eval.scorecard import Outcome, gate, outcome, scorecard
from transforms.core.job import Job
from transforms.core.records import Enriched, Failure, KafkaRecord, Parsed
from transforms.llm.connect import connect
from transforms.llm.moderation import Moderator

__all__ = ["EvalSystemic", "ask_all", "chosen_providers", "evaluate"]

FORMAT = "llm-enrich.eval/1"


class EvalSystemic(EnrichError):
    """A provider failed for a reason that is not the records' (bad key, no such model),
    or answered none of them (unreachable): its scores would say nothing."""


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


def _parsed(job: Job, case: GoldenCase) -> Parsed:
    value = json.dumps(case.input, default=str).encode()
    source = KafkaRecord("golden", 0, case.line, None, None, value)
    return Parsed(source, case.input, job.input_schema.identity)


async def ask_all(
    job: Job,
    specs: Sequence[ProviderSpec],
    cases: Sequence[GoldenCase],
    label: str,
    gate: Callable[[list[Provider]], list[Step]] | None = None,
) -> list[Enriched | Failure]:
    """Every golden record through the chain of ``specs`` (``label`` names it in errors);
    ``gate`` turns the clients into the one cascade step to ask them as."""
    task = job.task
    clients = [connect(spec, task.generation, task.policy, job=task.name) for spec in specs]
    moderation = task.safety.moderation
    moderator = Moderator(moderation) if moderation else None
    steps = gate(clients) if gate else None
    enricher = Enricher(job, clients, moderator=moderator, steps=steps)
    # records in flight: enough to fill max_concurrency calls of up to records_per_call each
    pack = task.prompt.records_per_call
    window = asyncio.Semaphore(min(specs[0].max_concurrency * pack, task.policy.max_in_flight))

    async def one(case: GoldenCase) -> Enriched | Failure:
        async with window:
            try:
                return await enricher.enrich(_parsed(job, case))
            except SystemicFault as fault:
                raise EvalSystemic(f"{label}: {fault.reason}") from None

    try:
        results = list(await asyncio.gather(*(one(c) for c in cases)))
    finally:
        for client in clients:
            await client.aclose()
        if moderator is not None:
            await moderator.aclose()
    if all(isinstance(r, Failure) and r.stage == "llm" for r in results):  # not the records
        first = outcome(results[0])
        raise EvalSystemic(f"{label} answered none of the {len(results)} records: {first.error}")
    return results


async def _ask(job: Job, spec: ProviderSpec, cases: Sequence[GoldenCase]) -> list[Outcome]:
    results = await ask_all(job, [spec], cases, f"provider {spec.name!r}")
    return [outcome(r) for r in results]


def evaluate(
    job: Job, cases: Sequence[GoldenCase], providers: Sequence[ProviderSpec], golden: str
) -> dict[str, Any]:
    """The eval result (JSON-ready, stable keys): a scorecard and its gate per provider."""
    kinds = field_kinds(job.shape.avro)
    spec = job.task.eval
    cards: dict[str, Any] = {}
    for provider in providers:
        outcomes = asyncio.run(_ask(job, provider, cases))
        card = scorecard(cases, outcomes, kinds, spec.tolerance)
        missed = gate(card, spec.min_scores)
        cards[provider.name] = {
            "model": provider.model,
            **card,
            "gate": {"passed": not missed, "missed": missed},
        }
    return {
        "format": FORMAT,
        "task": job.name,
        "prompt_hash": job.prompt.hash,
        "records_per_call": job.task.prompt.records_per_call,
        "output_schema": job.output_schema.identity,
        "golden": {"path": golden, "records": len(cases)},
        "thresholds": {"min_scores": dict(spec.min_scores), "tolerance": dict(spec.tolerance)},
        "providers": cards,
        "passed": all(c["gate"]["passed"] for c in cards.values()),
    }
