"""The feedback result as a self-contained HTML page (the eval report's page, tables and
inline SVG charts): drift, agreement per field per group, acceptance and events over time,
outcome metrics, bad feedback by reason, and the golden-set comparison."""

from __future__ import annotations

from html import escape

from transforms.core.feedback.compare import EvalComparison
from transforms.core.feedback.result import FeedbackResult, Figures, iso
from transforms.core.report.page import page, section, table
from transforms.core.report.svg import columns, grouped, legend

__all__ = ["feedback_report_html", "result_lines"]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _drift(result: FeedbackResult) -> str:
    alerts = result.alerts
    if not alerts:
        return '<p><span class="good">no window below its thresholds</span></p>'
    return f'<p><span class="bad">{len(alerts)} window(s) below a threshold</span></p>' + table(
        ["provider", "model", "prompt", "window start", "window end", "missed"],
        [
            [
                a.group.provider,
                a.group.model,
                a.group.prompt_hash,
                iso(a.start_ms),
                iso(a.end_ms),
                "; ".join(a.missed),
            ]
            for a in alerts
        ],
    )


def _figures_row(found: Figures) -> list[object]:
    return [
        found.events,
        found.accepted,
        found.rejected,
        found.corrected,
        _pct(found.acceptance),
        _num(found.overall),
    ]


def _eval_section(comparison: EvalComparison) -> str:
    rows = comparison.rows
    labels = [f"{r.provider}: {r.score}" for r in rows]
    chart = grouped(
        labels,
        {
            "golden set (eval)": [r.golden for r in rows],
            "production (feedback)": [r.production or 0.0 for r in rows],
        },
        "golden-set score and production agreement",
        top=1.0,
        fmt=lambda v: f"{v:.2f}",
    )
    note = (
        f"<p>eval of prompt {escape(comparison.prompt_hash)} on "
        f"{comparison.golden_records} golden records ({escape(comparison.golden_path)})"
    )
    if comparison.other_prompts:
        note += f"; not scored by that eval: {escape(', '.join(comparison.other_prompts))}"
    note += "</p>"
    verdicts = table(
        ["provider", "model", "score", "golden", "production", "judged", "gap", "verdict"],
        [
            [
                r.provider,
                r.model,
                r.score,
                r.golden,
                _num(r.production),
                r.judged,
                _num(r.gap),
                r.verdict,
            ]
            for r in rows
        ],
    )
    return note + legend(["golden set (eval)", "production (feedback)"]) + chart + verdicts


def feedback_report_html(result: FeedbackResult) -> str:
    groups = result.groups
    fields = list(result.total.fields)
    labels = [g.group.label for g in groups]
    rows = [*fields, "overall", "acceptance"]
    scores = {
        g.group.label: [
            *((g.total.fields[f].agreement or 0.0) for f in fields),
            g.total.overall or 0.0,
            g.total.acceptance or 0.0,
        ]
        for g in groups
    }
    starts = sorted({w.start_ms for g in groups for w in g.windows})
    by_start: dict[int, list[Figures]] = {s: [] for s in starts}
    for g in groups:
        for w in g.windows:
            by_start[w.start_ms].append(w.figures)
    over_time = {
        "accepted": [sum(f.accepted for f in by_start[s]) for s in starts],
        "rejected": [sum(f.rejected for f in by_start[s]) for s in starts],
        "no verdict": [
            sum(f.events - f.accepted - f.rejected for f in by_start[s]) for s in starts
        ],
    }
    window_rows = [
        [
            iso(w.start_ms),
            g.group.label,
            *_figures_row(w.figures),
            *(_num(w.figures.fields[f].agreement) for f in fields),
            "; ".join(w.missed) or "ok",
        ]
        for g in groups
        for w in g.windows
    ]
    outcome_rows = [
        [g.group.label, name, round(mean, 4), count]
        for g in groups
        for name, (mean, count) in sorted(g.total.outcomes.items())
    ]
    thresholds = result.thresholds
    sections = [
        section(
            "Drift",
            _drift(result),
            table(
                ["threshold", "min score"],
                sorted(thresholds.min_scores.items()) or [["(none)", ""]],
            ),
            f"<p>thresholds from {escape(thresholds.source)}; a window with fewer than "
            f"{thresholds.min_events} event(s) is not gated</p>",
        ),
        section(
            "Agreement per field (0-1)",
            legend(labels),
            grouped(
                rows, scores, "agreement per field per group", top=1.0, fmt=lambda v: f"{v:.2f}"
            ),
        ),
        section(
            "Groups (provider, model, prompt)",
            table(
                [
                    "group",
                    "events",
                    "accepted",
                    "rejected",
                    "corrected",
                    "acceptance",
                    "overall",
                    *fields,
                ],
                [
                    [
                        g.group.label,
                        *_figures_row(g.total),
                        *(_num(g.total.fields[f].agreement) for f in fields),
                    ]
                    for g in groups
                ],
            ),
        ),
        section(
            f"Over time (windows of {result.window_s:g} s, by event time)",
            legend(list(over_time)),
            columns([iso(s)[5:16] for s in starts], over_time, "feedback events per window"),
            table(
                [
                    "window start",
                    "group",
                    "events",
                    "accepted",
                    "rejected",
                    "corrected",
                    "acceptance",
                    "overall",
                    *fields,
                    "gate",
                ],
                window_rows,
            ),
        ),
        section(
            "Outcome metrics (mean per event carrying it)",
            table(["group", "metric", "mean", "events"], outcome_rows)
            if outcome_rows
            else "<p>none</p>",
        ),
        section(
            "Bad feedback (counted, not scored)",
            table(["reason", "events"], sorted(result.bad.items()))
            if result.bad
            else "<p>none</p>",
        ),
    ]
    if result.eval_comparison is not None:
        sections.append(section("Against the golden set", _eval_section(result.eval_comparison)))
    bad = sum(result.bad.values())
    subtitle = (
        f"{result.read} feedback events read from {result.topic}, {result.joined} joined with "
        f"their outputs, {bad} bad; output {result.output_schema}; "
        f"{'DRIFT: a window is below its thresholds' if result.alerts else 'no drift'}"
    )
    return page(f"llm-enrich feedback: {result.task}", subtitle, sections)


def _row(label: str, value: str, note: str = "") -> str:
    return f"  {label:<22}{value:>10}  {note}".rstrip()


def result_lines(result: FeedbackResult) -> list[str]:
    """The terminal summary: per group, the figures in total and the windows' gate."""
    bad = ", ".join(f"{k}={v}" for k, v in sorted(result.bad.items())) or "none"
    lines = [
        f"== {result.task}: feedback from {result.topic} "
        f"({result.read} events read, {result.joined} joined; bad: {bad})"
    ]
    comparison = result.eval_comparison
    golden = {(r.provider, r.score): r for r in comparison.rows} if comparison else {}
    for g in result.groups:
        group, total = g.group, g.total
        lines.append(
            f"-- {group.provider} / {group.model}, prompt {group.prompt_hash} "
            f"({total.events} events, {len(g.windows)} window(s))"
        )
        for name, figure in total.fields.items():
            note = f"{figure.kind}; judged {figure.judged}"
            row = golden.get((group.provider, name))
            if row is not None:
                note += f"; golden {row.golden:.3f} ({row.verdict})"
            lines.append(_row(name, _num(figure.agreement), note))
        row = golden.get((group.provider, "overall"))
        lines.append(
            _row(
                "overall",
                _num(total.overall),
                f"golden {row.golden:.3f} ({row.verdict})" if row else "",
            )
        )
        lines.append(
            _row(
                "acceptance",
                _pct(total.acceptance),
                f"{total.accepted} accepted, {total.rejected} rejected, "
                f"{total.corrected} corrected",
            )
        )
        for name, (mean, count) in sorted(total.outcomes.items()):
            lines.append(_row(f"outcome {name}", f"{mean:.3f}", f"mean of {count}"))
        missed = [w for w in g.windows if w.missed]
        lines.append(
            f"  windows: {len(g.windows) - len(missed)} ok, {len(missed)} below a threshold"
        )
    if not result.groups:
        lines.append("  (no feedback joined with an output)")
    return lines
