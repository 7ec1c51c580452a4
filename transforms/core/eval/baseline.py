"""Compare an eval result with an earlier one (``--baseline old.json``), per provider and
field: before, after, delta and a verdict (better / worse / same, within ``EPSILON``).
Providers or fields only one side has are listed as ``new`` or ``gone``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["EPSILON", "compare"]

EPSILON = 0.001  # score deltas smaller than this are "same"
# Compared besides the fields: (key, higher is better)
_HEADLINE = (("overall", True), ("valid_share", True))


def _verdict(before: float, after: float, higher_is_better: bool = True) -> dict[str, Any]:
    delta = after - before
    if abs(delta) < EPSILON:
        verdict = "same"
    else:
        verdict = "better" if (delta > 0) == higher_is_better else "worse"
    return {"before": before, "after": after, "delta": round(delta, 4), "verdict": verdict}


def _scores(card: Mapping[str, Any]) -> dict[str, float]:
    scores = {name: float(card[name]) for name, _ in _HEADLINE if name in card}
    scores.update({name: float(f["score"]) for name, f in card.get("fields", {}).items()})
    return scores


def compare(current: Mapping[str, Any], baseline: Mapping[str, Any]) -> dict[str, Any]:
    """Per provider: ``{name: {verdict...}}``; raises ValueError when ``baseline`` is not an
    eval result."""
    before_providers = baseline.get("providers")
    if not isinstance(before_providers, dict):
        raise ValueError("not an llm-enrich eval result (no 'providers' object)")
    out: dict[str, Any] = {}
    for provider in sorted(set(current["providers"]) | set(before_providers)):
        if provider not in before_providers:
            out[provider] = {"status": "new"}
            continue
        if provider not in current["providers"]:
            out[provider] = {"status": "gone"}
            continue
        after = _scores(current["providers"][provider])
        before = _scores(before_providers[provider])
        out[provider] = {
            name: _verdict(before[name], after[name])
            if name in before and name in after
            else {"status": "new" if name in after else "gone"}
            for name in sorted(set(after) | set(before))
        }
    return out
