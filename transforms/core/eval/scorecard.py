"""A provider's scorecard over a golden set: per-field scores, validity, repairs, re-asks,
latency, tokens and cost, and the gate (``eval.min_scores``).

A record whose answer never validated (dead-letter material) scores 0 on every field: a
provider that answers half the records well does not get a perfect score.
Latency is the sum of the record's attempt latencies (calls and re-asks), so it does not
depend on how many records were asked at once.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from transforms.core.config.eval import OVERALL
from transforms.core.eval.golden import GoldenCase
from transforms.core.eval.kinds import Kind
from transforms.core.eval.measures import measure
from transforms.core.eval.result import FieldScore, Latency, PerRecord, RecordScore, Scorecard
from transforms.core.ledger.record import RecordUsage, cache_hit_share
from transforms.core.records import Enriched, Failure

__all__ = ["Outcome", "gate", "outcome", "percentile", "scorecard"]


@dataclass(frozen=True)
class Outcome:
    """What one provider did with one golden record."""

    answer: dict[str, Any] | None  # None: no valid answer
    stage: str | None = None  # the failure's stage, when there is no answer
    error: str | None = None
    repairs: tuple[str, ...] = ()
    reasked: bool = False
    latency_ms: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    calls: float = 0.0  # calls made for it; a call k records shared counts 1/k
    alone: bool = False  # asked alone: its shared call held no usable answer for it


def outcome(result: Enriched | Failure) -> Outcome:
    attempts = result.attempts
    ledger = RecordUsage.of(attempts)
    usage = Outcome(
        None,
        reasked=any(a.kind == "reask" for a in attempts),
        latency_ms=sum(a.latency_ms for a in attempts),
        prompt_tokens=ledger.prompt_tokens,
        completion_tokens=ledger.completion_tokens,
        cost_usd=ledger.cost_usd,
        cached_tokens=ledger.cached_tokens,
        reasoning_tokens=ledger.reasoning_tokens,
        calls=sum(1 / a.shared_by for a in attempts),
        alone=any(a.kind == "alone" for a in attempts),
    )
    if isinstance(result, Enriched):
        return replace(usage, answer=result.output, repairs=result.repairs)
    return replace(usage, stage=result.stage, error=f"{result.error_class}: {result.message}"[:300])


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _r(value: float) -> float:
    return round(value, 4)


def scorecard(
    cases: Sequence[GoldenCase],
    outcomes: Sequence[Outcome],
    kinds: Mapping[str, Kind],
    tolerance: Mapping[str, float],
) -> Scorecard:
    """The provider's scorecard (its ``--json`` keys: the README's Evaluate section)."""
    count = len(cases)
    per_field: dict[str, list[float]] = {name: [] for name in kinds}
    extras: dict[str, dict[str, list[float]]] = {name: {} for name in kinds}
    records = []
    for case, done in zip(cases, outcomes, strict=True):
        scores = {}
        for name, kind in kinds.items():
            if done.answer is None:
                score = 0.0
            else:
                got = measure(
                    kind, done.answer.get(name), case.expected[name], tolerance.get(name, 0)
                )
                score = got.score
                for key, value in got.extra.items():
                    extras[name].setdefault(key, []).append(value)
            per_field[name].append(score)
            scores[name] = _r(score)
        records.append(
            RecordScore(
                line=case.line,
                valid=done.answer is not None,
                stage=done.stage,
                error=done.error,
                repairs=list(done.repairs),
                reasked=done.reasked,
                latency_ms=round(done.latency_ms, 1),
                scores=scores,
                answer={k: done.answer.get(k) for k in kinds} if done.answer else None,
            )
        )
    fields = {
        name: FieldScore(
            kind=kinds[name],
            score=_r(_mean(per_field[name])),
            **{key: _r(_mean(values)) for key, values in sorted(extras[name].items())},
        )
        for name in kinds
    }
    latencies = [o.latency_ms for o in outcomes]
    stages = Counter(o.stage for o in outcomes if o.stage)
    return Scorecard(
        records=count,
        overall=_r(_mean([f.score for f in fields.values()])),
        fields=fields,
        valid_share=_r(sum(o.answer is not None for o in outcomes) / count),
        repaired_share=_r(sum(bool(o.repairs) for o in outcomes) / count),
        reask_share=_r(sum(o.reasked for o in outcomes) / count),
        alone_share=_r(sum(o.alone for o in outcomes) / count),
        failed_by_stage=dict(sorted(stages.items())),
        latency_ms=Latency(
            p50=round(percentile(latencies, 50), 1),
            p95=round(percentile(latencies, 95), 1),
            all=[round(v, 1) for v in latencies],
        ),
        per_record=PerRecord(
            prompt_tokens=_r(_mean([o.prompt_tokens for o in outcomes])),
            completion_tokens=_r(_mean([o.completion_tokens for o in outcomes])),
            cost_usd=round(_mean([o.cost_usd for o in outcomes]), 8),
            cached_prompt_tokens=_r(_mean([o.cached_tokens for o in outcomes])),
            reasoning_tokens=_r(_mean([o.reasoning_tokens for o in outcomes])),
            calls=_r(_mean([o.calls for o in outcomes])),
        ),
        cache_hit_share=_r(
            cache_hit_share(
                sum(o.cached_tokens for o in outcomes), sum(o.prompt_tokens for o in outcomes)
            )
        ),
        cost_usd=round(sum(o.cost_usd for o in outcomes), 8),
        results=records,
    )


def gate(card: Scorecard, min_scores: Mapping[str, float]) -> list[str]:
    """The thresholds a scorecard misses, one line each (empty: it passes)."""
    missed = []
    for name, minimum in min_scores.items():
        score = card.overall if name == OVERALL else card.fields[name].score
        if score < minimum:
            missed.append(f"{name} {score:.3f} < {minimum:.3f}")
    return missed
