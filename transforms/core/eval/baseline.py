"""Compare an eval result with an earlier one (``--baseline old.json``), per provider and
field: before, after, delta and a verdict (better / worse / same, within ``EPSILON``).
Providers or fields only one side has are listed as ``new`` or ``gone``."""

from __future__ import annotations

from transforms.core.eval.result import Change, Comparison, EvalResult, Presence

__all__ = ["EPSILON", "compare"]

EPSILON = 0.001  # score deltas smaller than this are "same"


def _verdict(before: float, after: float) -> Change:
    """Every compared score is better higher."""
    delta = after - before
    verdict = "same" if abs(delta) < EPSILON else ("better" if delta > 0 else "worse")
    return Change(before=before, after=after, delta=round(delta, 4), verdict=verdict)


def compare(current: EvalResult, baseline: EvalResult) -> Comparison:
    """Per provider: its Presence (new / gone), or per score a Change or a Presence."""
    out: Comparison = {}
    for provider in sorted(set(current.providers) | set(baseline.providers)):
        if provider not in baseline.providers:
            out[provider] = Presence(status="new")
            continue
        if provider not in current.providers:
            out[provider] = Presence(status="gone")
            continue
        after = current.providers[provider].scores()
        before = baseline.providers[provider].scores()
        out[provider] = {
            name: _verdict(before[name], after[name])
            if name in before and name in after
            else Presence(status="new" if name in after else "gone")
            for name in sorted(set(after) | set(before))
        }
    return out
