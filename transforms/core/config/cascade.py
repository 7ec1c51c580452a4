"""The task's ``cascade`` section: an ordered list of steps, cheap to strong, each a chain of
providers; a record is answered by the first step whose valid answer is confident enough.

    cascade:
      thresholds: thresholds.yaml   # optional: written by llm-enrich eval --calibrate
      repair_factor: 0.5            # a repaired or re-asked answer's confidence is scaled by it
      top_logprobs: 20              # alternatives asked per token (OpenAI allows at most 20)
      steps:
        - {name: small, providers: [local-smollm2], min_confidence: 0.9}
        - {name: large, providers: [hosted]}    # the last step: any valid answer is accepted

Checked at load: unknown keys; step names unique; every provider of the chain in exactly
one step, and every provider a step names declared (not a shadow); ``min_confidence`` in
[0, 1] on every step but the last (from the step or the thresholds file, the file winning),
never on the last; a ``mode: batch`` provider only in the last step (the confidence needs
the answer's log-probabilities, which a batch answer does not bring back). The thresholds
file, when it exists, must name exactly the task's steps; when it does not exist yet, every
step but the last needs its own ``min_confidence`` (``llm-enrich eval --calibrate`` loads
the task without them: it is what writes the file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = [
    "THRESHOLDS_FORMAT",
    "CascadeSpec",
    "CascadeStepSpec",
    "StepThreshold",
    "ThresholdsFile",
    "cascade_problems",
    "read_thresholds",
    "repeated",
]

THRESHOLDS_FORMAT = "llm-enrich.cascade-thresholds/1"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CascadeStepSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9._-]+$")
    providers: list[str] = Field(min_length=1)
    # accept this step's valid answer when its confidence is at least this (not on the last)
    min_confidence: float | None = Field(default=None, ge=0, le=1)
    # calibration found the step not worth asking: it is left out (from the thresholds file)
    skip: bool = False


class StepThreshold(_Strict):
    """One step's entry in the thresholds file."""

    min_confidence: float | None = Field(default=None, ge=0, le=1)
    skip: bool = False
    providers: list[str] = Field(default_factory=list)  # "name=model", as calibrated
    last: bool = False


class ThresholdsFile(_Strict):
    """What ``llm-enrich eval --calibrate`` writes (its other keys are the figures behind
    the choice, kept for people: ``calibration``)."""

    format: Literal["llm-enrich.cascade-thresholds/1"]
    task: str
    prompt_hash: str
    steps: dict[str, StepThreshold]
    calibration: dict[str, Any] = Field(default_factory=dict)


class CascadeSpec(_Strict):
    steps: list[CascadeStepSpec] = Field(min_length=2)
    thresholds: Path | None = None
    repair_factor: float = Field(default=0.5, ge=0, le=1)
    top_logprobs: int = Field(default=20, ge=1, le=100)
    # Set at load from the thresholds file (not settable from YAML): the prompt hash the
    # thresholds were calibrated under, checked when the task is compiled.
    calibrated_prompt: str | None = Field(default=None, exclude=True)
    # and each step's providers as ``name=model``, checked at load
    calibrated_providers: dict[str, list[str]] | None = Field(default=None, exclude=True)

    @field_validator("steps")
    @classmethod
    def _steps(cls, steps: list[CascadeStepSpec]) -> list[CascadeStepSpec]:
        twice = repeated([s.name for s in steps])
        if twice:
            raise ValueError(f"step names must be unique, repeated: {twice}")
        twice = repeated([p for s in steps for p in s.providers])
        if twice:
            raise ValueError(f"a provider belongs to one step only, repeated: {twice}")
        if steps[-1].skip:
            raise ValueError(
                f"steps[{len(steps) - 1}] ({steps[-1].name}) is the last step: no skip"
            )
        if steps[-1].min_confidence is not None:
            raise ValueError(
                f"steps[{len(steps) - 1}] ({steps[-1].name}) is the last step: its valid answer "
                "is accepted, so it takes no min_confidence"
            )
        return steps

    @property
    def active(self) -> list[CascadeStepSpec]:
        """The steps a record goes through: those calibration did not leave out."""
        return [s for s in self.steps if not s.skip]


def repeated(names: list[str]) -> list[str]:
    """The names that occur more than once, sorted."""
    return sorted({n for n in names if names.count(n) > 1})


def cascade_problems(
    cascade: CascadeSpec | None, chain: list[Any], shadows: list[Any], *, calibrating: bool
) -> list[str]:
    """What is wrong with the cascade against the task's providers (``chain``: those not
    marked shadow), one line each. ``calibrating``: thresholds may be missing."""
    if cascade is None:
        return []
    declared = {p.name: p for p in chain}
    shadow_names = {p.name for p in shadows}
    problems = []
    for index, step in enumerate(cascade.steps):
        where = f"cascade.steps[{index}] ({step.name})"
        for name in step.providers:
            if name in shadow_names:
                problems.append(f"{where}: provider {name!r} is a shadow, not in the chain")
            elif name not in declared:
                problems.append(f"{where}: no provider {name!r} in providers")
            elif declared[name].mode == "batch" and index < len(cascade.steps) - 1:
                problems.append(
                    f"{where}: provider {name!r} is mode: batch; only the last step may be "
                    "(a batch answer brings no log-probabilities to judge its confidence)"
                )
        last = index == len(cascade.steps) - 1
        calibrated = (cascade.calibrated_providers or {}).get(step.name)
        now = [f"{n}={declared[n].model}" for n in step.providers if n in declared]
        if calibrated and not calibrating and calibrated != now:
            problems.append(
                f"{where}: the thresholds were calibrated for {calibrated}, the step has {now}: "
                "run llm-enrich eval --calibrate again"
            )
        if not last and not calibrating and not step.skip and step.min_confidence is None:
            problems.append(
                f"{where}: no min_confidence (set it, or name a cascade.thresholds file "
                "written by llm-enrich eval --calibrate)"
            )
    stepped = {p for s in cascade.steps for p in s.providers}
    for name in declared:
        if name not in stepped:
            problems.append(f"cascade: provider {name!r} is in no step")
    return problems


def read_thresholds(cascade: CascadeSpec, path: Path) -> CascadeSpec:
    """The cascade with the thresholds file's values applied (the file wins over the task's
    own ``min_confidence``). Raises ValueError naming the file."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        thresholds = ThresholdsFile.model_validate(raw)
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read the thresholds ({exc})") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ValueError(f"{path}: {where}: {first['msg']}") from None
    names = [s.name for s in cascade.steps]
    if sorted(thresholds.steps) != sorted(names):
        raise ValueError(
            f"{path}: the thresholds are for steps {sorted(thresholds.steps)}, the cascade has "
            f"{names}: run llm-enrich eval --calibrate again"
        )
    steps = []
    for index, step in enumerate(cascade.steps):
        entry = thresholds.steps[step.name]
        last = index == len(cascade.steps) - 1
        if last and (entry.skip or entry.min_confidence is not None):
            raise ValueError(f"{path}: steps.{step.name}: the last step takes no threshold")
        if not last and not entry.skip and entry.min_confidence is None:
            raise ValueError(f"{path}: steps.{step.name}: no min_confidence and not skip")
        steps.append(
            step.model_copy(update={"min_confidence": entry.min_confidence, "skip": entry.skip})
        )
    return cascade.model_copy(
        update={
            "steps": steps,
            "calibrated_prompt": thresholds.prompt_hash,
            "calibrated_providers": {n: e.providers for n, e in thresholds.steps.items()},
        }
    )
