"""Benchmark: what a provider's prefix cache saves on the example job, with and without
``prompt_cache_key``, against the billing server (``tests/billing_server.py``: OpenAI's
documented rules: caching from 1,024 tokens in 128-token blocks, routing by the first 256
tokens and the key, overflow past ~15 requests a minute per (prefix, key)).

    .venv/bin/python -m tests.bench.prompt_cache --records 40

The example job's records go through the stage's own enrich loop (``Enricher``, the real
``ProviderClient`` over HTTP; no Kafka), priced like gpt-4o-mini ($0.15 input, $0.075
cached input, $0.60 output per 1M tokens). Variants:

    as shipped       the example task (its prompt is ~600 tokens)
    long prefix      the same task with 12 few shots (its first 12 golden cases added to
                     the 3 it has): over 1,024 tokens
    two jobs         the long-prefix task run as two jobs at once, 12 requests a minute
                     each (a virtual clock paces the server: 24 a minute on one prefix)

each without a key, then with one (the two jobs: one key each). Printed per variant: the
cache-hit share (cached / prompt tokens) from the ledger and from the server's invoice,
prompt tokens and cost per record (micro-dollars) from the ledger, and the invoice's cost
per record (the two must agree: the run stops if they do not), and what the same tokens
would cost had the cache served none.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tests.billing_server import BillingServer, Prices
from tests.conftest import EXAMPLE_TASK, REPO
from transforms.core.calls.enricher import Enricher
from transforms.core.config.task import (
    ExampleSpec,
    PricingSpec,
    ProviderSpec,
    TaskSpec,
    load_task,
)
from transforms.core.job import Job, compile_job
from transforms.core.ledger.record import RecordUsage
from transforms.core.records import Enriched, Failure, KafkaRecord, Parsed
from transforms.llm.connect import connect

PRICES = Prices(prompt=0.15, cached_prompt=0.075, completion=0.60)
EXAMPLES = REPO / "pipelines/examples/reviews"


@dataclass(frozen=True)
class Figures:
    variant: str
    key: str
    records: int
    ledger: RecordUsage
    invoice_usd: float
    invoice_share: float

    @property
    def uncached_usd(self) -> float:
        """The same tokens had the cache served none."""
        ledger = self.ledger
        return (
            ledger.prompt_tokens * PRICES.prompt + ledger.completion_tokens * PRICES.completion
        ) / 1e6

    def row(self) -> str:
        per = self.ledger.prompt_tokens / self.records
        return (
            f"{self.variant:<12} {self.key:<9} {self.ledger.cache_hit_share:>7.1%} "
            f"{self.invoice_share:>8.1%} {per:>8.0f} "
            f"{self.ledger.cost_usd / self.records * 1e6:>9.2f} "
            f"{self.invoice_usd / self.records * 1e6:>9.2f} "
            f"{self.uncached_usd / self.records * 1e6:>9.2f}"
        )


def _task(long_prefix: bool, base_url: str, key: str | None) -> TaskSpec:
    task = load_task(EXAMPLE_TASK)
    pricing = PricingSpec(
        prompt_per_million=PRICES.prompt,
        cached_prompt_per_million=PRICES.cached_prompt,
        completion_per_million=PRICES.completion,
    )
    provider = ProviderSpec(
        name="openai-like",
        base_url=base_url,
        model="gpt-4o-mini",
        pricing=pricing,
        prompt_cache_key=key,
        max_concurrency=4,
    )
    prompt = task.prompt
    if long_prefix:
        golden = [json.loads(line) for line in (EXAMPLES / "golden.jsonl").open()][:12]
        extra = [ExampleSpec(input=g["input"], output=g["expected"]) for g in golden]
        prompt = prompt.model_copy(update={"examples": [*prompt.examples, *extra]})
    return task.model_copy(update={"providers": [provider], "prompt": prompt})


def _records(job: Job, count: int) -> list[Parsed]:
    rows = [json.loads(line) for line in (EXAMPLES / "reviews.jsonl").open()][-count:]
    return [
        Parsed(KafkaRecord("reviews", 0, i, 0, None, b""), row, job.input_schema.identity)
        for i, row in enumerate(rows)
    ]


async def _enrich(job: Job, records: Sequence[Parsed]) -> list[Enriched | Failure]:
    provider = job.task.providers[0]
    client = connect(provider, job.task.generation, job.task.policy)
    try:
        return await Enricher(job, [client]).enrich_all(records)  # type: ignore[return-value]
    finally:
        await client.aclose()


def measure(
    variant: str, long_prefix: bool, jobs: int, keyed: bool, records: int, machines: int
) -> Figures:
    step = 60.0 / (12 * jobs)  # 12 requests a minute per job, on a virtual clock
    ticks = itertools.count()
    server = BillingServer(PRICES, machines=machines, clock=lambda: next(ticks) * step)
    with server:
        compiled = [
            compile_job(_task(long_prefix, server.base_url, f"job-{n}" if keyed else None))
            for n in range(jobs)
        ]

        async def run_all() -> list[list[Enriched | Failure]]:
            return list(await asyncio.gather(*(_enrich(j, _records(j, records)) for j in compiled)))

        results = [r for batch in asyncio.run(run_all()) for r in batch]
        invoice: dict[str, Any] = server.invoice()
    ledger = RecordUsage.of(a for result in results for a in result.attempts)
    if (
        ledger.prompt_tokens != invoice["prompt_tokens"]
        or abs(ledger.cost_usd - invoice["usd"]) > 1e-9
    ):
        raise SystemExit(f"{variant}: the ledger does not match the invoice: {ledger} {invoice}")
    key = ("one each" if jobs > 1 else "one") if keyed else "none"
    count = len(results)
    return Figures(variant, key, count, ledger, invoice["usd"], invoice["cache_hit_share"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.prompt_cache")
    parser.add_argument("--records", type=int, default=40, help="records per job")
    parser.add_argument("--machines", type=int, default=16, help="the server's cache machines")
    args = parser.parse_args(argv)
    print(
        f"{'variant':<12} {'key':<9} {'hit share':>7} {'(server)':>8} {'prompt/r':>8} "
        f"{'µ$/record':>9} {'(invoice)':>9} {'no cache':>9}"
    )
    for variant, long_prefix, jobs in (
        ("as shipped", False, 1),
        ("long prefix", True, 1),
        ("two jobs", True, 2),
    ):
        for keyed in (False, True):
            figures = measure(variant, long_prefix, jobs, keyed, args.records, args.machines)
            print(figures.row(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
