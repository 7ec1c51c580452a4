"""The eval result as a self-contained HTML page: scores per field per provider, the
providers' figures, latency distribution, cost, and the baseline comparison."""

from __future__ import annotations

from html import escape

from transforms.core.eval.result import Comparison, EvalResult, Presence
from transforms.core.report.bins import latency_counts, latency_labels
from transforms.core.report.page import page, section, table
from transforms.core.report.svg import bars, columns, grouped, legend

__all__ = ["eval_report_html"]


def _verdict(passed: bool) -> str:
    return '<span class="good">passed</span>' if passed else '<span class="bad">MISSED</span>'


def eval_report_html(result: EvalResult) -> str:
    cards = result.providers
    names = list(cards)
    fields = list(next(iter(cards.values())).fields) if cards else []
    rows = [*fields, "overall"]
    scores = {
        name: [*(card.fields[f].score for f in fields), card.overall]
        for name, card in cards.items()
    }
    thresholds = result.thresholds.min_scores
    figures = table(
        [
            "provider",
            "model",
            "overall",
            "valid",
            "repaired",
            "re-asked",
            "p50 s",
            "p95 s",
            "tokens/record",
            "cache-hit share",
            "cost/record $",
            "gate",
        ],
        [
            [
                name,
                card.model,
                card.overall,
                f"{card.valid_share or 0.0:.0%}",
                f"{card.repaired_share:.0%}",
                f"{card.reask_share:.0%}",
                round(card.latency_ms.p50 / 1000, 2),
                round(card.latency_ms.p95 / 1000, 2),
                round(card.per_record.prompt_tokens + card.per_record.completion_tokens),
                f"{card.cache_hit_share:.0%}",
                card.per_record.cost_usd,
                "passed" if card.gate.passed else "missed: " + "; ".join(card.gate.missed),
            ]
            for name, card in cards.items()
        ],
    )
    gate = "".join(
        f"<p>{escape(name)}: {_verdict(card.gate.passed)} {escape('; '.join(card.gate.missed))}</p>"
        for name, card in cards.items()
    )
    sections = [
        section("Gate", gate, table(["threshold", "min score"], sorted(thresholds.items()))),
        section(
            "Scores per field (0-1)",
            legend(names),
            grouped(
                rows, scores, "scores per field per provider", top=1.0, fmt=lambda v: f"{v:.2f}"
            ),
        ),
        section("Providers", figures),
        section(
            "Latency distribution (per record, calls and re-asks)",
            legend(names),
            columns(
                latency_labels(),
                {n: latency_counts(c.latency_ms.all) for n, c in cards.items()},
                "records per latency bin",
                fmt=lambda v: f"{v:.0f}",
            ),
        ),
        section(
            "Cost and tokens per record",
            bars(
                [(n, c.per_record.cost_usd) for n, c in cards.items()],
                "cost per record",
                fmt=lambda v: f"${v:.6f}",
            ),
            bars(
                [
                    (n, c.per_record.prompt_tokens + c.per_record.completion_tokens)
                    for n, c in cards.items()
                ],
                "tokens per record",
                fmt=lambda v: f"{v:.0f}",
            ),
        ),
    ]
    if result.baseline is not None:
        sections.append(section("Against the baseline", _baseline_table(result.baseline)))
    subtitle = (
        f"{result.golden.records} golden records from {result.golden.path}; "
        f"prompt {result.prompt_hash}; output {result.output_schema}; "
        f"{'all gates passed' if result.passed else 'a gate was missed'}"
    )
    return page(f"llm-enrich eval: {result.task}", subtitle, sections)


def _baseline_table(comparison: Comparison) -> str:
    rows: list[list[object]] = []
    for provider, changes in comparison.items():
        if isinstance(changes, Presence):
            rows.append([provider, "(all)", "", "", "", changes.status])
            continue
        for name, change in changes.items():
            if isinstance(change, Presence):
                rows.append([provider, name, "", "", "", change.status])
            else:
                delta = f"{change.delta:+.3f}"
                rows.append([provider, name, change.before, change.after, delta, change.verdict])
    return table(["provider", "score", "before", "after", "delta", "verdict"], rows)
