"""``llm-enrich eval --calibrate``: ask each cascade step every golden record alone, choose
the thresholds on one part of the set (``transforms.core.eval.calibrate``), report the
choice on the other, and write the thresholds file the task reads."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from transforms.core.calls.cascade import Step, StepGate
from transforms.core.calls.providers import Provider
from transforms.core.config.cascade import THRESHOLDS_FORMAT, CascadeStepSpec
from transforms.core.config.task import ProviderSpec
from transforms.core.errors import TaskConfigError
from transforms.core.eval.calibrate import Route, StepResult, alone, choose, held_back, route
from transforms.core.eval.golden import GoldenCase
from transforms.core.eval.kinds import field_kinds
from transforms.core.eval.result import Scorecard
from transforms.core.eval.scorecard import outcome, scorecard
from transforms.core.job import Job
from transforms.core.records import Enriched, Failure
from transforms.llm.ask_golden import ask_all

__all__ = ["calibrate", "thresholds_path"]

FORMAT = "llm-enrich.calibration/1"
SPLIT_RULE = (
    "held back when the first 8 bytes of SHA-256 of the record's input (canonical JSON: "
    "sorted keys, no spaces), as a fraction of 2^64, are below the holdout"
)

_STEP_CARD_KEYS = {"overall", "valid_share", "fields", "per_record"}  # in step_scorecards


def thresholds_path(job: Job, out: str | None) -> Path:
    """Where the thresholds go: ``--thresholds-out``, else the task's cascade.thresholds."""
    cascade = job.task.cascade
    if cascade is None:
        raise TaskConfigError("the task has no cascade section: nothing to calibrate")
    if out:
        return Path(out)
    if cascade.thresholds is None:
        raise TaskConfigError(
            "say where the thresholds go: --thresholds-out FILE, or cascade.thresholds in the task"
        )
    return cascade.thresholds


def _step_gate(job: Job, spec: CascadeStepSpec, *, last: bool) -> Any:
    """The step as a one-step cascade: a gate that accepts every valid answer (threshold 0)
    and records its confidence; none for the last step, as in a run."""
    cascade = job.task.cascade
    assert cascade is not None

    def steps(clients: list[Provider]) -> list[Step]:
        gate = None
        if not last:
            gate = StepGate(job.shape.json_schema, 0.0, cascade.repair_factor, cascade.top_logprobs)
        return [Step(spec.name, clients, gate, clients[0].spec)]

    return steps


def _results(
    job: Job, cases: Sequence[GoldenCase]
) -> tuple[list[list[StepResult]], dict[str, Scorecard]]:
    """Per record, per step: what the step did asked alone; and each step's scorecard."""
    cascade = job.task.cascade
    assert cascade is not None
    specs = {p.name: p for p in job.task.chain}
    kinds, tolerance = field_kinds(job.shape.avro), job.task.eval.tolerance
    per_step: list[list[StepResult]] = []
    cards: dict[str, Scorecard] = {}
    last = len(cascade.steps) - 1
    asked = asyncio.run(  # the steps at once: they usually ask different servers
        _ask_steps(job, cases, [[specs[n] for n in step.providers] for step in cascade.steps])
    )
    for index, (step, results) in enumerate(zip(cascade.steps, asked, strict=True)):
        outcomes = [outcome(r) for r in results]
        card = scorecard(cases, outcomes, kinds, tolerance)
        cards[step.name] = card
        per_step.append(
            [
                StepResult(
                    valid=isinstance(r, Enriched),
                    confidence=_confidence(r) if index < last else None,
                    score=_overall(row.scores) if isinstance(r, Enriched) else 0.0,
                    cost_usd=o.cost_usd,
                    latency_ms=o.latency_ms,
                )
                for r, o, row in zip(results, outcomes, card.results, strict=True)
            ]
        )
    return [list(record) for record in zip(*per_step, strict=True)], cards


async def _ask_steps(
    job: Job, cases: Sequence[GoldenCase], chains: list[list[ProviderSpec]]
) -> list[list[Enriched | Failure]]:
    cascade = job.task.cascade
    assert cascade is not None
    last = len(chains) - 1
    return list(
        await asyncio.gather(
            *(
                ask_all(
                    job, chain, cases, f"step {step.name!r}", _step_gate(job, step, last=i == last)
                )
                for i, (step, chain) in enumerate(zip(cascade.steps, chains, strict=True))
            )
        )
    )


def _confidence(result: Enriched | Failure) -> float | None:
    if isinstance(result, Enriched) and result.confidence is not None:
        return result.confidence.record
    return None


def _overall(scores: dict[str, float]) -> float:
    return sum(scores.values()) / len(scores) if scores else 0.0


def _figures(played: Route, names: Sequence[str], strong_cost: float) -> dict[str, Any]:
    return {
        "records": played.records,
        "answered": dict(zip(names, played.answered, strict=True)),
        "shares": {n: round(s, 4) for n, s in zip(names, played.shares(), strict=True)},
        "failed": played.failed,
        "overall": round(played.overall, 4),
        "cost_per_record_usd": round(played.cost_usd, 10),
        "latency_per_record_ms": round(played.latency_ms, 1),
        "cost_vs_strongest": round(played.cost_usd / strong_cost, 4) if strong_cost else None,
    }


def _part(
    results: list[list[StepResult]], thresholds: tuple[float | None, ...], names: list[str]
) -> dict[str, Any]:
    """The rows of the table on one part: the strongest step alone, the cascade with the
    chosen thresholds, and each step alone."""
    if not results:
        return {"records": 0}
    strong = route(results, (None,) * (len(names) - 1))
    rows = {
        "strongest alone": _figures(strong, names, strong.cost_usd),
        "cascade": _figures(route(results, thresholds), names, strong.cost_usd),
    }
    for index, name in enumerate(names[:-1]):
        rows[f"{name} alone"] = _figures(alone(results, index), names, strong.cost_usd)
    return {"records": len(results), "rows": rows}


def calibrate(
    job: Job,
    cases: Sequence[GoldenCase],
    golden: str,
    *,
    target_within: float,
    holdout: float,
) -> dict[str, Any]:
    """The calibration (JSON-ready): the split, the target, the chosen thresholds, the
    table on both parts, and each step's scorecard over the whole set."""
    cascade = job.task.cascade
    assert cascade is not None
    names = [s.name for s in cascade.steps]
    if all(held_back(c.input, holdout) for c in cases):  # said before asking anyone
        raise ValueError(
            f"{golden}: no record falls in the calibration part with --holdout {holdout}"
        )
    results, cards = _results(job, cases)
    calibration = [
        r for r, c in zip(results, cases, strict=True) if not held_back(c.input, holdout)
    ]
    kept = [r for r, c in zip(results, cases, strict=True) if held_back(c.input, holdout)]
    strongest = route(calibration, (None,) * (len(names) - 1)).overall
    chosen = choose(calibration, strongest - target_within)
    thresholds = chosen.thresholds
    return {
        "format": FORMAT,
        "task": job.name,
        "prompt_hash": job.prompt.hash,
        "golden": {"path": golden, "records": len(cases)},
        "split": {
            "holdout": holdout,
            "rule": SPLIT_RULE,
            "calibration": len(calibration),
            "held_back": len(kept),
        },
        "target": {
            "within": target_within,
            "strongest_overall": round(strongest, 4),
            "minimum": round(strongest - target_within, 4),
        },
        "steps": {
            name: _threshold_entry(job, cascade.steps[i], thresholds, i, len(names))
            for i, name in enumerate(names)
        },
        "calibration_part": _part(calibration, thresholds, names),
        "held_back_part": _part(kept, thresholds, names),
        "records": [
            {
                "line": case.line,
                "held_back": held_back(case.input, holdout),
                "steps": {
                    name: {
                        "valid": r.valid,
                        "confidence": r.confidence,
                        "score": round(r.score, 4),
                        "cost_usd": round(r.cost_usd, 10),
                    }
                    for name, r in zip(names, record, strict=True)
                },
            }
            for case, record in zip(cases, results, strict=True)
        ],
        "step_scorecards": {
            name: card.model_dump(mode="json", include=_STEP_CARD_KEYS)
            for name, card in cards.items()
        },
    }


def _threshold_entry(
    job: Job,
    step: CascadeStepSpec,
    thresholds: tuple[float | None, ...],
    index: int,
    count: int,
) -> dict[str, Any]:
    specs = {p.name: p for p in job.task.chain}
    entry: dict[str, Any] = {"providers": [f"{n}={specs[n].model}" for n in step.providers]}
    if index == count - 1:
        entry["last"] = True
    elif thresholds[index] is None:
        entry["skip"] = True
    else:
        entry["min_confidence"] = thresholds[index]
    return entry


def write_thresholds(result: dict[str, Any], path: Path) -> None:
    """The thresholds file the task's ``cascade.thresholds`` reads."""
    document = {
        "format": THRESHOLDS_FORMAT,
        "task": result["task"],
        "prompt_hash": result["prompt_hash"],
        "steps": result["steps"],
        "calibration": {
            k: result[k]
            for k in ("golden", "split", "target", "calibration_part", "held_back_part")
        },
    }
    header = "# Written by llm-enrich eval --calibrate; read by the task's cascade.thresholds.\n"
    path.write_text(header + yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
