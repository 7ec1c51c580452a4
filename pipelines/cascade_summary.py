"""The run summary's cascade lines, from the ``cascade.*`` counters
(``transforms.beam.metrics.CascadeCounts``)."""

from __future__ import annotations

from typing import Any

from transforms.core.counters import (
    CASCADE_ALL_STRONG_MICRO_USD,
    CASCADE_ANSWERED,
    CASCADE_COST_MICRO_USD,
    CASCADE_ESCALATED,
)

__all__ = ["cascade_lines", "cascade_shares"]


def cascade_shares(counters: dict[str, int]) -> list[tuple[str, int]]:
    """(step, records answered) in the cascade's order."""
    found = []
    for key, value in counters.items():
        if key.startswith(CASCADE_ANSWERED):
            index, step = key.removeprefix(CASCADE_ANSWERED).split(".", 1)
            found.append((int(index), step, value))
    return [(step, value) for _, step, value in sorted(found)]


def _escalations(counters: dict[str, int]) -> list[str]:
    """``small: low_confidence=8, invalid=2`` per step that passed records on, in order."""
    found: dict[tuple[int, str], list[str]] = {}
    for key, value in sorted(counters.items()):
        if key.startswith(CASCADE_ESCALATED) and value:
            index, rest = key.removeprefix(CASCADE_ESCALATED).split(".", 1)
            step, reason = rest.rsplit(".", 1)
            found.setdefault((int(index), step), []).append(f"{reason}={value}")
    return [f"{step}: {', '.join(reasons)}" for (_, step), reasons in sorted(found.items())]


def cascade_lines(summary: Any) -> list[str]:
    """Share answered per step, why records escalated, cost against the strongest step."""
    shares = cascade_shares(summary.counters)
    total = sum(count for _, count in shares)
    if not total:
        return []
    answered = ", ".join(f"{step} {count} ({count / total:.1%})" for step, count in shares)
    cost = summary.get(CASCADE_COST_MICRO_USD) / 1_000_000
    strong = summary.get(CASCADE_ALL_STRONG_MICRO_USD) / 1_000_000
    saved = strong - cost
    share = f", {saved / strong:.1%}" if strong else ""
    lines = [f"cascade             answered by step: {answered}"]
    escalated = _escalations(summary.counters)
    if escalated:
        lines.append(f"  escalated         {'; '.join(escalated)}")
    lines.append(
        f"  cost              ${cost:.6f} for these {total} outputs, against ${strong:.6f} had the "
        f"last step answered them all (saved ${saved:.6f}{share})"
    )
    return lines
