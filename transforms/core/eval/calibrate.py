"""Choosing a cascade's thresholds on a golden set (``llm-enrich eval --calibrate``).

Every step is asked every golden record alone (as it would be asked in the cascade: same
prompt, its own chain, log-probabilities for every step but the last), which gives per
record and step a ``StepResult``: valid or not, the gate's confidence, the answer's
overall score, cost and latency. From those, any choice of thresholds can be played back
without asking again (``route``): a record goes through the steps in order; a step that is
not the last answers it when its answer is valid and its confidence is at least the step's
threshold (``None``: the step is skipped, never asked, costing nothing); the last step
answers whatever reaches it (no valid answer: the record fails and scores 0). The record
pays for every step it was asked.

``choose`` tries every combination of candidate thresholds: per step, skip, 0 (any valid
answer) and each confidence its valid answers had on the calibration part (a threshold
equal to the lowest confidence it accepts). It keeps the routes whose overall score is at
least the target, and of those the cheapest per record; on equal cost the best score;
then the highest thresholds, step by step (a skip counts above every threshold), as the
cautious choice. Skipping every step but the last always meets a target set below the last
step's own score, so there is always a choice.

The golden set is split in two by ``held_back``: a record is held back when the first 8
bytes of the SHA-256 of its input (canonical JSON: sorted keys, no spaces) read as a
fraction of 2^64 are below ``holdout``. The split depends on each record alone, not on its
line or the others: adding records to the set does not move the ones already there.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_COMBINATIONS",
    "Route",
    "StepResult",
    "alone",
    "candidates",
    "choose",
    "held_back",
    "route",
]

MAX_COMBINATIONS = 200_000
_EPSILON = 1e-9


@dataclass(frozen=True)
class StepResult:
    """What one step did with one golden record, asked alone."""

    valid: bool
    confidence: float | None  # the gate's figure; None for the last step (not judged)
    score: float  # the answer's overall score; 0 when invalid
    cost_usd: float
    latency_ms: float = 0.0


@dataclass(frozen=True)
class Route:
    """The figures of one choice of thresholds over a set of records."""

    thresholds: tuple[float | None, ...]  # per step but the last; None: skipped
    answered: tuple[int, ...]  # records answered, per step
    failed: int  # records no step answered
    records: int
    overall: float  # mean score per record
    cost_usd: float  # mean cost per record
    latency_ms: float  # mean latency per record (the steps asked, one after the other)

    def shares(self) -> tuple[float, ...]:
        return tuple(n / self.records if self.records else 0.0 for n in self.answered)


def held_back(record_input: Mapping[str, Any], holdout: float) -> bool:
    """Whether a golden record belongs to the held-back part (see the module's doc)."""
    text = json.dumps(
        record_input, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < holdout


def route(results: Sequence[Sequence[StepResult]], thresholds: Sequence[float | None]) -> Route:
    """Play back ``thresholds`` over ``results[record][step]``."""
    steps = len(results[0]) if results else len(thresholds) + 1
    if len(thresholds) != steps - 1:
        raise ValueError(f"{len(thresholds)} thresholds for {steps} steps")
    answered = [0] * steps
    failed = 0
    score = cost = latency = 0.0
    for record in results:
        for index, result in enumerate(record):
            last = index == steps - 1
            if not last and thresholds[index] is None:
                continue
            cost += result.cost_usd
            latency += result.latency_ms
            threshold = 0.0 if last else thresholds[index]
            assert threshold is not None
            if result.valid and (last or (result.confidence or 0.0) >= threshold):
                answered[index] += 1
                score += result.score
                break
            if last:
                failed += 1
    count = len(results)
    return Route(
        tuple(thresholds),
        tuple(answered),
        failed,
        count,
        score / count if count else 0.0,
        cost / count if count else 0.0,
        latency / count if count else 0.0,
    )


def alone(results: Sequence[Sequence[StepResult]], step: int) -> Route:
    """The figures of one step answering every record by itself (its valid answers)."""
    count = len(results)
    mine = [record[step] for record in results]
    valid = sum(r.valid for r in mine)
    steps = len(results[0]) if results else step + 1
    return Route(
        (),
        tuple(valid if i == step else 0 for i in range(steps)),
        count - valid,
        count,
        sum(r.score for r in mine if r.valid) / count if count else 0.0,
        sum(r.cost_usd for r in mine) / count if count else 0.0,
        sum(r.latency_ms for r in mine) / count if count else 0.0,
    )


def candidates(results: Sequence[Sequence[StepResult]], step: int) -> list[float | None]:
    """A step's candidate thresholds: skip, 0, and each confidence of its valid answers."""
    seen = sorted(
        {r[step].confidence or 0.0 for r in results if r[step].valid} | {0.0}, reverse=True
    )
    return [None, *seen]


def _thin(values: list[float | None], keep: int) -> list[float | None]:
    """At most ``keep`` candidates, evenly spread, skip and 0 kept."""
    if len(values) <= keep:
        return values
    inner = values[1:-1]
    picks = [inner[round(i * (len(inner) - 1) / max(1, keep - 3))] for i in range(keep - 2)]
    return [values[0], *dict.fromkeys(picks), values[-1]]


def _caution(thresholds: Sequence[float | None]) -> tuple[float, ...]:
    """Higher sorts later: a skip above every threshold."""
    return tuple(2.0 if t is None else t for t in thresholds)


def choose(results: Sequence[Sequence[StepResult]], target: float) -> Route:
    """The cheapest thresholds whose overall score meets ``target`` (see the module doc)."""
    if not results:
        raise ValueError("no golden records to calibrate on")
    steps = len(results[0])
    options = [candidates(results, s) for s in range(steps - 1)]
    total = math.prod(len(o) for o in options)
    if total > MAX_COMBINATIONS:
        keep = max(3, int(MAX_COMBINATIONS ** (1 / max(1, len(options)))))
        options = [_thin(o, keep) for o in options]
    best: Route | None = None
    for thresholds in itertools.product(*options):
        played = route(results, thresholds)
        if played.overall + _EPSILON < target:
            continue
        if best is None or _better(played, best):
            best = played
    if best is None:  # the target is above the last step's own score: take the best score
        best = max(
            (route(results, t) for t in itertools.product(*options)),
            key=lambda r: (r.overall, -r.cost_usd),
        )
    return best


def _better(candidate: Route, best: Route) -> bool:
    if not math.isclose(candidate.cost_usd, best.cost_usd, rel_tol=1e-9, abs_tol=1e-15):
        return candidate.cost_usd < best.cost_usd
    if abs(candidate.overall - best.overall) > _EPSILON:
        return candidate.overall > best.overall
    return _caution(candidate.thresholds) > _caution(best.thresholds)
