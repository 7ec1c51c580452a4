"""The ledger matches the invoice: a drain run with re-asks, a flex lane that answers
"resource unavailable" and falls back, cached prefixes and a token-budget stop, against
two billing servers (``tests/billing_server.py``) that count, cache and bill on their own;
then all of it at once with a cascade whose strong step packs four records a call.
The summary's tokens equal the invoices' exactly and its cost equals theirs within the
micro-dollar rounding of its counter; the records' own ledgers (output headers, dead
letters) add up to the same.

Written to grow: a provider is a row of ``PROVIDERS`` (its server's prices are the task's
pricing, one source); a feature that changes how records meet calls (a cascade step,
``prompt.records_per_call``) adds its providers or task settings and keeps
``assert_reconciled``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from pipelines.summary import RunSummary
from pipelines.topics import topic_records
from schemas import load_schema
from tests.billing_server import BillingServer, Prices, resource_unavailable
from tests.conftest import SCHEMAS
from tests.fault_server import Action, Ok, Reply
from tests.integration.conftest import (
    MakeTask,
    committed_offsets,
    end_offsets,
    produce,
    run_job,
    sample_reviews,
    servers_on_demand,
)
from transforms.core.formats import framing
from transforms.core.job import Job
from transforms.core.ledger.record import RecordUsage
from transforms.core.limits import estimate_tokens

# ~1,400 tokens that every request repeats: over OpenAI's 1,024-token caching minimum
SYSTEM = "Classify the review. Answer with JSON only.\n" + "\n".join(
    f"Rule {i}: judge the sentiment from the words the customer chose, not the product."
    for i in range(70)
)
REASK_NOTE = "Answer again with only the corrected JSON object."
INVALID = Reply.ok(content=json.dumps({"sentiment": "positive", "rating": 9}))

PROVIDERS: dict[str, tuple[Prices, dict[str, Any]]] = {
    # a flex lane with a cache key: cheap, and sometimes "resource unavailable"
    "flexy": (
        Prices(prompt=2.0, cached_prompt=0.5, completion=8.0, flex_discount=0.5),
        {"service_tier": "flex", "prompt_cache_key": "ledger-it"},
    ),
    # the standard-tier fallback of another vendor, at its own prices
    "backup": (Prices(prompt=3.0, cached_prompt=0.3, completion=12.0), {}),
}


def priced_provider(name: str, server: BillingServer, **extra: Any) -> dict[str, Any]:
    """A task's provider entry whose pricing is what its billing server charges."""
    prices = server.prices
    return {
        "name": name,
        "base_url": server.base_url,
        "model": f"{name}-model",
        "timeout_s": 10,
        "max_concurrency": 8,
        "pricing": {
            "prompt_per_million": prices.prompt,
            "cached_prompt_per_million": prices.cached_prompt,
            "completion_per_million": prices.completion,
            "flex_discount": prices.flex_discount,
        },
        **extra,
    }


def marked(body: dict[str, Any], marker: str) -> bool:
    return any(marker in str(m.get("content")) for m in body.get("messages") or [])


def primary_faults(index: int, body: dict[str, Any]) -> Action | None:
    """[fallback]: no flex capacity; [reask]: invalid once; [budget]: invalid always."""
    reasked = REASK_NOTE in str((body.get("messages") or [{}])[-1].get("content"))
    if marked(body, "[fallback]"):
        return resource_unavailable()
    if marked(body, "[budget]") or (marked(body, "[reask]") and not reasked):
        return INVALID
    return None


@pytest.fixture
def billing_server() -> Iterator[Callable[..., BillingServer]]:
    """Start billing servers on demand; all are stopped at the end of the test."""
    yield from servers_on_demand(BillingServer)


def review_values(texts: Sequence[str]) -> list[bytes]:
    schema = load_schema(SCHEMAS / "examples.reviews.Review.avsc")
    rows = sample_reviews(len(texts))
    return [
        framing.encode({**row, "text": f"{row['text']} {text}"}, schema, "single-object")
        for row, text in zip(rows, texts, strict=True)
    ]


def assert_reconciled(summary: RunSummary, job: Job, servers: Sequence[BillingServer]) -> None:
    """Summary, records and invoices agree: tokens exactly, cost within rounding."""
    bills = [bill for server in servers for bill in server.billing]
    invoice_usd = sum(b.usd for b in bills)
    assert summary.get("prompt_tokens") == sum(b.prompt_tokens for b in bills)
    assert summary.get("cached_prompt_tokens") == sum(b.cached_tokens for b in bills)
    assert summary.get("completion_tokens") == sum(b.completion_tokens for b in bills)
    assert summary.get("reasoning_tokens") == sum(b.reasoning_tokens for b in bills)
    assert summary.get("usage_estimated_calls") == 0
    calls = summary.get("llm_calls")  # every attempt is rounded to a micro-dollar once
    assert abs(summary.get("cost_micro_usd") / 1e6 - invoice_usd) <= 0.5e-6 * calls
    per_record = RecordUsage()
    for output in topic_records(job, dead_letters=False):
        per_record += RecordUsage.from_json(json.loads(output["headers"]["llm_enrich.usage"]))
    for letter in topic_records(job, dead_letters=True):
        attempts = letter["value"]["attempts"]
        per_record += RecordUsage(
            len(attempts),
            sum(a["prompt_tokens"] for a in attempts),
            sum(a["cached_tokens"] for a in attempts),
            sum(a["completion_tokens"] for a in attempts),
            sum(a["reasoning_tokens"] for a in attempts),
            sum(a["cost_usd"] for a in attempts),
        )
    # a call shared by K records is one call, and one attempt of each of them
    shared = summary.get("pack_shares") - summary.get("pack_calls")
    assert per_record.calls == calls + shared, (per_record, calls, summary.counters)
    assert per_record.prompt_tokens == summary.get("prompt_tokens")
    assert per_record.cached_tokens == summary.get("cached_prompt_tokens")
    assert per_record.cost_usd == pytest.approx(invoice_usd, abs=1e-9)


def test_the_summary_cost_is_what_the_providers_billed(
    make_task: MakeTask, billing_server: Callable[..., BillingServer]
) -> None:
    servers = {
        name: billing_server(prices=prices, faults=primary_faults if name == "flexy" else None)
        for name, (prices, _) in PROVIDERS.items()
    }
    providers = [priced_provider(n, servers[n], **PROVIDERS[n][1]) for n in PROVIDERS]
    policy = {
        "attempts_per_provider": 2,
        "max_reasks": 1,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
        "max_dead_letter_ratio": None,
    }
    job = make_task(providers, prompt={"system": SYSTEM}, policy=policy)
    # the budget: a call and a re-ask fit, a third call (the fallback) does not
    one_call = estimate_tokens(job.prompt.messages(sample_reviews(1)[0]))
    budget = int(2.5 * (one_call + job.task.generation.max_tokens))
    task = job.task.model_copy(
        update={"policy": job.task.policy.model_copy(update={"max_tokens_per_record": budget})}
    )
    texts = ["", "", "[reask]", "", "[fallback]", "", "[budget]", "", "[reask]", "[fallback]"]
    produce(job, review_values(texts))

    summary = run_job(task)

    assert_reconciled(summary, job, list(servers.values()))
    outputs = list(topic_records(job, dead_letters=False))
    dead = [d["value"] for d in topic_records(job, dead_letters=True)]
    assert (len(outputs), len(dead)) == (9, 1)
    assert (dead[0]["stage"], dead[0]["error_class"]) == ("budget", "OverBudget")
    assert [a["kind"] for a in dead[0]["attempts"]] == ["call", "reask"]  # not the fallback
    by_provider = {o["headers"]["llm_enrich.provider"] for o in outputs}
    assert by_provider == {"flexy", "backup"}
    reasked = [o for o in outputs if '"reask"' in o["headers"]["llm_enrich.attempts"]]
    assert len(reasked) == 2
    flex_bills = servers["flexy"].billing
    assert flex_bills and all(b.service_tier == "flex" for b in flex_bills)
    assert {b.prompt_cache_key for b in flex_bills} == {"ledger-it"}
    assert summary.get("cached_prompt_tokens") > summary.get("prompt_tokens") / 2
    assert len(servers["backup"].billing) == 2  # the two [fallback] records
    assert summary.dead_by_stage == {"budget": 1}
    assert committed_offsets(job) == end_offsets(job)


def test_a_provider_without_usage_is_counted_by_an_estimate_that_says_so(
    make_task: MakeTask, billing_server: Callable[..., BillingServer]
) -> None:
    server = billing_server(prices=Prices(2.0, 2.0, 8.0), usage=False)
    job = make_task([priced_provider("silent", server)])
    produce(job, review_values(["", "", ""]))

    summary = run_job(job.task)

    assert summary.get("written.output") == 3
    assert summary.get("usage_estimated_calls") == summary.get("llm_calls") == 3
    assert any("ESTIMATES" in line for line in summary.lines())
    # an estimate, not the invoice: in the right range, and never reported as exact
    billed = sum(b.prompt_tokens for b in server.billing)
    assert 0.5 * billed < summary.get("prompt_tokens") < 1.5 * billed
    for output in topic_records(job, dead_letters=False):
        assert json.loads(output["headers"]["llm_enrich.usage"])["estimated_calls"] == 1


# ---- a cascade (a small model that says how sure it is, then the flex lane and its
# fallback, packing four records a call) with re-asks, cached prefixes and a budget stop

SURE, UNSURE = 0.99, 0.6
MIN_CONFIDENCE = 0.9
_BLOCK = re.compile(r'<record-(\w+) i="(\d+)">\n(.*?)\n</record-\1>', re.DOTALL)


def small_answers(index: int, body: dict[str, Any]) -> Action:
    """The cheap step: sure of plain records, unsure of marked ones; never valid for
    [budget] (its call and re-ask both fail, then the budget stops the escalation)."""
    if marked(body, "[budget]"):
        return INVALID
    p = UNSURE if any(marked(body, m) for m in ("[unsure]", "[reask]", "[fallback]")) else SURE
    return Reply.tokens(
        [
            '{"sentiment": ',
            ('"positive"', p, {'"negative"': 1 - p}),
            ', "rating": ',
            ("4", p, {"5": 1 - p}),
            "}",
        ]
    )


def strong_answers(flex: bool) -> Callable[[int, dict[str, Any]], Action | None]:
    """The strong step's providers. Packs: one answer per record, [reask]'s invalid; the
    flex lane has no capacity for a pack holding a [fallback] record. Alone: [reask] is
    invalid until re-asked; the flex lane has no capacity for [fallback]."""

    def answer(index: int, body: dict[str, Any]) -> Action | None:
        schema = body["response_format"]["json_schema"]["schema"]
        if "answers" in schema["properties"]:
            blocks = [
                (int(n), text) for _, n, text in _BLOCK.findall(body["messages"][-1]["content"])
            ]
            if flex and any("[fallback]" in text for _, text in blocks):
                return resource_unavailable()
            answers = [
                {"i": n, "sentiment": "positive", "rating": 9 if "[reask]" in text else 4}
                for n, text in blocks
            ]
            return Ok(json.dumps({"answers": answers}))
        if flex and marked(body, "[fallback]"):
            return resource_unavailable()
        reasked = REASK_NOTE in str(body["messages"][-1].get("content"))
        return INVALID if marked(body, "[reask]") and not reasked else None

    return answer


def test_a_cascade_with_packing_reconciles_with_every_invoice(
    make_task: MakeTask, billing_server: Callable[..., BillingServer]
) -> None:
    small = billing_server(
        prices=Prices(prompt=0.2, cached_prompt=0.05, completion=0.8), faults=small_answers
    )
    flexy_prices, flexy_extra = PROVIDERS["flexy"]
    backup_prices, _ = PROVIDERS["backup"]
    flexy = billing_server(prices=flexy_prices, faults=strong_answers(flex=True))
    backup = billing_server(prices=backup_prices, faults=strong_answers(flex=False))
    providers = [
        priced_provider("small", small),
        priced_provider("flexy", flexy, **flexy_extra),
        priced_provider("backup", backup),
    ]
    cascade = {
        "steps": [
            {"name": "cheap", "providers": ["small"], "min_confidence": MIN_CONFIDENCE},
            {"name": "strong", "providers": ["flexy", "backup"]},
        ]
    }
    policy = {
        "attempts_per_provider": 2,
        "max_reasks": 1,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
        "max_dead_letter_ratio": None,
    }
    texts = ["", "[unsure]", "[reask]", "", "[fallback]", "[unsure]", "", "[budget]"]
    texts += ["[unsure]", "", "[reask]", "[fallback]", "", "[unsure]", "", ""]
    texts += ["[unsure]", "[unsure]", "[unsure]", "[unsure]"]  # three packs or more: one free
    padding = " It arrived." * 500  # [budget]'s calls are twice anyone else's
    texts = [t + padding if t == "[budget]" else t for t in texts]
    job = make_task(
        providers,
        cascade=cascade,
        prompt={"system": SYSTEM, "records_per_call": 4, "pack_linger_s": 0.5},
        policy=policy,
    )
    # the budget: [budget]'s call and re-ask at the cheap step fit, its strong call does not;
    # anyone else's three calls (cheap, strong, a re-ask) fit with room to spare
    row = {**sample_reviews(8)[7], "text": f"{sample_reviews(8)[7]['text']} {texts[7]}"}
    one_call = estimate_tokens(job.prompt.messages(row)) + job.task.generation.max_tokens
    budget = 2 * one_call + 500
    task = job.task.model_copy(
        update={"policy": job.task.policy.model_copy(update={"max_tokens_per_record": budget})}
    )
    produce(job, review_values(texts))

    summary = run_job(task)

    invoices = [small, flexy, backup]
    print(
        f"\ncascade+packing: {summary.get('llm_calls')} calls ({summary.get('pack_calls')} "
        f"shared by {summary.get('pack_shares')} records), "
        f"cost ${summary.get('cost_micro_usd') / 1e6:.6f} "
        f"vs invoices ${sum(s.billed_usd for s in invoices):.6f}, cached "
        f"{summary.get('cached_prompt_tokens')}/{summary.get('prompt_tokens')} prompt tokens"
    )
    assert_reconciled(summary, job, invoices)
    outputs = list(topic_records(job, dead_letters=False))
    dead = [d["value"] for d in topic_records(job, dead_letters=True)]
    assert (len(outputs), len(dead)) == (19, 1)
    assert (dead[0]["stage"], dead[0]["error_class"]) == ("budget", "OverBudget")
    assert [a["kind"] for a in dead[0]["attempts"]] == ["call", "reask"]  # the cheap step's
    steps = sorted(o["headers"]["llm_enrich.step"] for o in outputs)
    assert steps == ["cheap"] * 7 + ["strong"] * 12
    reasked = [o for o in outputs if '"reask"' in o["headers"]["llm_enrich.attempts"]]
    assert len(reasked) == 2  # the two [reask] records, at whichever strong provider
    assert summary.get("pack_calls") >= 1
    # the flex lane answered the packs without a [fallback] record, the backup the others
    assert flexy.billing and backup.billing
    assert all(b.service_tier == "flex" for b in flexy.billing)
    assert summary.get("cached_prompt_tokens") > summary.get("prompt_tokens") / 3
    assert summary.get("cascade.answered.0.cheap") == 7
    assert summary.get("cascade.answered.1.strong") == 12
    assert committed_offsets(job) == end_offsets(job)
