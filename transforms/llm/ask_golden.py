"""The task's real per-record path (prompt, provider call, repair, validation, re-asks,
output rules) over golden records, outside a pipeline: what ``llm-enrich eval`` and its
calibration ask. An edge: it builds the providers' clients and the moderator itself."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence

from transforms.core.calls.cascade import Step
from transforms.core.calls.enricher import Enricher
from transforms.core.calls.providers import Provider
from transforms.core.config.task import ProviderSpec
from transforms.core.errors import EnrichError, SystemicFault
from transforms.core.eval.golden import GoldenCase
from transforms.core.eval.scorecard import outcome
from transforms.core.job import Job
from transforms.core.records import Enriched, Failure, KafkaRecord, Parsed
from transforms.llm.connect import connect
from transforms.llm.moderation import Moderator

__all__ = ["EvalSystemic", "ask_all"]


class EvalSystemic(EnrichError):
    """A provider failed for a reason that is not the records' (bad key, no such model),
    or answered none of them (unreachable): its scores would say nothing."""


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
