"""``llm-enrich eval``'s terminal output: a table per provider, the baseline comparison and
the gate."""

from __future__ import annotations

from transforms.core.eval.result import Change, EvalResult, Presence, ProviderCard

__all__ = ["result_lines"]


def _row(label: str, value: str, note: str = "") -> str:
    return f"  {label:<22}{value:>10}  {note}".rstrip()


def result_lines(result: EvalResult) -> list[str]:
    pack = result.records_per_call
    shared = f", up to {pack} records a call" if pack > 1 else ""
    lines = [
        f"== {result.task}: eval of {result.golden.records} golden records "
        f"(prompt {result.prompt_hash}{shared})"
    ]
    comparison = result.baseline or {}
    for name, card in result.providers.items():
        lines.append(f"-- provider {name} ({card.model})")
        deltas = comparison.get(name, {})
        changes = {} if isinstance(deltas, Presence) else deltas
        for field, scores in card.fields.items():
            extra = ", ".join(f"{k} {v:.3f}" for k, v in scores.extras.items())
            note = f"{scores.kind}" + (f"; {extra}" if extra else "")
            lines.append(_row(field, f"{scores.score:.3f}", note + _delta(changes.get(field))))
        lines.append(_row("overall", f"{card.overall:.3f}", _delta(changes.get("overall"))))
        failed = ", ".join(f"{k}={v}" for k, v in card.failed_by_stage.items()) or "none"
        per_record = card.per_record
        lines += [
            _row("schema-valid", f"{card.valid_share or 0.0:.1%}", f"failed by stage: {failed}"),
            _row("repaired", f"{card.repaired_share:.1%}"),
            _row("re-asked", f"{card.reask_share:.1%}"),
            *_pack_rows(pack, card),
            _row(
                "latency p50 / p95",
                f"{card.latency_ms.p50 / 1000:.2f} s",
                f"/ {card.latency_ms.p95 / 1000:.2f} s",
            ),
            _row(
                "tokens per record",
                f"{per_record.prompt_tokens:.0f}",
                f"prompt, {per_record.completion_tokens:.0f} completion",
            ),
            _row(
                "cache-hit share",
                f"{card.cache_hit_share:.1%}",
                f"{per_record.cached_prompt_tokens:.0f} cached prompt tokens per record",
            ),
            _row("cost per record", f"${per_record.cost_usd:.6f}"),
        ]
        missed = card.gate.missed
        lines.append(f"  gate: {'passed' if not missed else 'MISSED ' + '; '.join(missed)}")
    return lines


def _pack_rows(records_per_call: int, card: ProviderCard) -> list[str]:
    """Calls per record and records asked alone, when records shared calls."""
    if records_per_call == 1:
        return []
    return [
        _row(
            "calls per record",
            f"{card.per_record.calls:.2f}",
            "(a call k records shared counts 1/k)",
        ),
        _row("asked alone", f"{card.alone_share:.1%}", "(no usable answer in the pack)"),
    ]


def _delta(change: Change | Presence | None) -> str:
    if change is None:
        return ""
    if isinstance(change, Presence):
        return f"  [{change.status}]"
    return f"  [{change.verdict} {change.delta:+.3f} vs {change.before:.3f}]"
