"""A run's HTML report (``run --report`` / ``replay --report``): the summary counters plus
the facts read back from the records this run wrote (``run_facts``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

from transforms.core import counters
from transforms.core.ledger.record import cache_hit_share
from transforms.core.report.bins import latency_labels
from transforms.core.report.page import page, section, table
from transforms.core.report.run_facts import RunFacts
from transforms.core.report.svg import bars, columns, empty, grouped, legend

__all__ = ["RunInfo", "run_report_html"]


@dataclass(frozen=True)
class RunInfo:
    """The run's own account (``RunSummary``), as plain data."""

    job: str
    mode: str  # "run" or "replay"
    prompt_hash: str
    counters: Mapping[str, int]
    wall_time_s: float
    stop_reasons: Sequence[str]
    summary_lines: Sequence[str]
    # provider -> lane ("batch", "flex") -> pricing.batch_discount / flex_discount
    discounts: Mapping[str, Mapping[str, float]]


def _grouped(counts: Mapping[str, int], prefix: str) -> list[tuple[str, float]]:
    return list(counters.grouped(counts, prefix).items())


def _count(value: float) -> str:
    return f"{value:.0f}"


def _usd(value: float) -> str:
    return f"${value:.6f}"


def _outcomes(info: RunInfo) -> list[tuple[str, float]]:
    get = info.counters.get
    rows: list[tuple[str, float]] = [("enriched", get(counters.WRITTEN_OUTPUT, 0))]
    rows += [(f"dead letter: {k}", v) for k, v in _grouped(info.counters, counters.DEAD_LETTER)]
    rows += [(f"skipped: {k}", v) for k, v in _grouped(info.counters, counters.REPLAY_SKIPPED)]
    if get(counters.ABANDONED, 0):
        rows.append(("abandoned on stop", get(counters.ABANDONED, 0)))
    return rows


def _settled(info: RunInfo) -> int:
    get = info.counters.get
    return get(counters.WRITTEN_OUTPUT, 0) + get(counters.WRITTEN_DEAD_LETTER, 0)


def _over_time(facts: RunFacts) -> str:
    labels = [f"+{i * facts.bin_ms / 1000:.0f}s" for i in range(len(facts.output_bins))]
    series = {"enriched": facts.output_bins, "dead-lettered": facts.dead_bins}
    return legend(list(series)) + columns(labels, series, "records written over time", fmt=_count)


def _latency(facts: RunFacts) -> list[str]:
    if not facts.latency:
        return [empty("latency", "no provider call in the records read back")]
    return [
        f"<h3>{escape(provider)}</h3>"
        + columns(latency_labels(), {"calls": counts}, f"latency of {provider}", fmt=_count)
        for provider, counts in sorted(facts.latency.items())
    ]


def _saved(info: RunInfo, facts: RunFacts, lane: str) -> float:
    """What a lane's discount saved against the same tokens at the sync price."""
    saved = 0.0
    for (provider, used), usd in facts.cost_by_lane.items():
        d = info.discounts.get(provider, {}).get(lane, 0.0)
        if used == lane and d < 1:
            saved += usd * d / (1 - d)
    return saved


def _money(info: RunInfo, facts: RunFacts) -> list[str]:
    get = info.counters.get
    prompt, cached = get(counters.PROMPT_TOKENS, 0), get(counters.CACHED_PROMPT_TOKENS, 0)
    rows: list[list[object]] = [
        ["prompt tokens", prompt],
        ["  of which cached (provider prefix cache)", cached],
        ["cache-hit share (cached / prompt tokens)", f"{cache_hit_share(cached, prompt):.1%}"],
        ["completion tokens", get(counters.COMPLETION_TOKENS, 0)],
        ["  of which reasoning", get(counters.REASONING_TOKENS, 0)],
        [
            "calls whose usage is an ESTIMATE (no usage reported)",
            get(counters.USAGE_ESTIMATED_CALLS, 0),
        ],
        ["cost", _usd(get(counters.COST_MICRO_USD, 0) / 1e6)],
        [
            "cost per record (written or dead-lettered)",
            _usd(get(counters.COST_MICRO_USD, 0) / 1e6 / max(1, _settled(info))),
        ],
        [
            "response cache: hits / misses",
            f"{get(counters.CACHE_HITS, 0)} / {get(counters.CACHE_MISSES, 0)}",
        ],
        ["saved by the cache", _usd(get(counters.CACHE_SAVED_MICRO_USD, 0) / 1e6)],
        [
            "  calls / tokens not spent",
            f"{get(counters.CACHE_SAVED_CALLS, 0)} / {get(counters.CACHE_SAVED_TOKENS, 0)}",
        ],
        ["batch answers", get(counters.BATCH_ANSWERS, 0)],
        ["saved by batch mode (vs the sync price)", _usd(_saved(info, facts, "batch"))],
        ["saved by the flex lane (vs the sync price)", _usd(_saved(info, facts, "flex"))],
    ]
    providers = sorted(set(facts.tokens) | set(facts.cost_usd))
    shares = [
        (p, cache_hit_share(facts.cached_tokens[p], facts.prompt_tokens[p])) for p in providers
    ]
    return [
        table(["", "value"], rows),
        grouped(
            providers,
            {"tokens": [facts.tokens[p] for p in providers]},
            "tokens by provider",
            fmt=_count,
        )
        if providers
        else "",
        bars(shares, "cache-hit share by provider", fmt=lambda v: f"{v:.0%}")
        if any(facts.cached_tokens.values())
        else "",
        bars([(p, facts.cost_usd.get(p, 0.0)) for p in providers], "cost by provider", fmt=_usd)
        if any(facts.cost_usd.values())
        else "<p>No cost recorded (no pricing in the task).</p>",
    ]


def _cascade(facts: RunFacts) -> list[str]:
    """Outputs per cascade step (their share), why records escalated, the cost saved."""
    total = sum(facts.by_step.values())
    steps = sorted(facts.by_step.items())
    saved = facts.all_strong_usd - facts.cascade_cost_usd
    share = f" ({saved / facts.all_strong_usd:.1%})" if facts.all_strong_usd else ""
    rows: list[list[object]] = [
        [f"answered by {step}", f"{count} ({count / total:.1%})"] for (_, step), count in steps
    ]
    rows += [
        [f"escalated by {step}: {reason}", count]
        for (_, step, reason), count in sorted(facts.escalated.items())
    ]
    rows += [
        ["cost of these outputs (every step's attempts)", _usd(facts.cascade_cost_usd)],
        ["had the last step answered them all", _usd(facts.all_strong_usd)],
        ["saved", _usd(saved) + share],
    ]
    return [
        bars([(step, count) for (_, step), count in steps], "outputs by step", fmt=_count),
        table(["", "value"], rows),
    ]


def run_report_html(info: RunInfo, facts: RunFacts) -> str:
    providers = sorted({p for p, _ in facts.calls})
    calls = {
        "ok": [facts.calls[(p, "ok")] for p in providers],
        "failed": [facts.calls[(p, "failed")] for p in providers],
    }
    repairs = _grouped(info.counters, "repair.")
    stops = info.stop_reasons
    sections = [
        section("Summary", f"<pre>{escape(chr(10).join(info.summary_lines))}</pre>"),
        section("Records over time", _over_time(facts)),
        section("Outcomes", bars(_outcomes(info), "outcomes by stage", fmt=_count)),
        section("Latency per provider (each call and re-ask)", *_latency(facts)),
        section(
            "Calls per provider",
            legend(list(calls)) + grouped(providers, calls, "calls per provider", fmt=_count)
            if providers
            else empty("calls per provider", "no call"),
        ),
        section(
            "Repairs by kind",
            bars(repairs, "repairs by kind", fmt=_count)
            if repairs
            else "<p>No answer needed a repair.</p>",
        ),
        section("Tokens and cost", *_money(info, facts)),
        *([section("Cascade", *_cascade(facts))] if facts.by_step else []),
        section(
            "Dead letters by error",
            bars(sorted(facts.dead_by_class.items()), "dead letters by error", fmt=_count)
            if facts.dead_by_class
            else "<p>No dead letter.</p>",
        ),
        section(
            "Early stop",
            "".join(f'<p class="bad">{escape(r)}</p>' for r in stops)
            or "<p>None: the run ended normally.</p>",
        ),
    ]
    read_back = f"{facts.outputs} outputs and {facts.dead_letters} dead letters read back"
    if facts.unreadable:
        read_back += f" ({facts.unreadable} with unreadable headers)"
    subtitle = f"{info.mode}, prompt {info.prompt_hash}, {info.wall_time_s:.1f} s; {read_back}"
    return page(f"llm-enrich {info.mode}: {info.job}", subtitle, sections)
