"""The eval result as types: what ``llm-enrich eval`` computes, prints, writes with
``--json`` (``format: llm-enrich.eval/1``, stable keys; the README's *Evaluate*) and reads
back as a ``--baseline`` or as feedback's ``--eval-json``.

A file is read with the same types it was written with. What a reader compares on is
required (the prompt hash; per provider its model, overall and per-field scores); every
other key has a default, so a result written before a key existed still reads.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from transforms.core.eval.kinds import Kind

__all__ = [
    "FORMAT",
    "Change",
    "Comparison",
    "EvalResult",
    "FieldScore",
    "Gate",
    "Golden",
    "Latency",
    "PerRecord",
    "Presence",
    "ProviderCard",
    "RecordScore",
    "Scorecard",
    "Thresholds",
    "read_eval_result",
]

FORMAT = "llm-enrich.eval/1"


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore")


class FieldScore(BaseModel):
    """A generated field's mean score; a measure's extra figures (``abs_error``, ...) sit
    beside it under their own keys."""

    model_config = ConfigDict(extra="allow")

    score: float
    kind: Kind | None = None

    @property
    def extras(self) -> dict[str, float]:
        return dict(self.model_extra or {})


class RecordScore(_Part):
    """One golden record: what the provider answered and how each field scored."""

    line: int
    valid: bool
    stage: str | None = None
    error: str | None = None
    repairs: list[str] = Field(default_factory=list)
    reasked: bool = False
    latency_ms: float = 0.0
    scores: dict[str, float] = Field(default_factory=dict)
    answer: dict[str, Any] | None = None


class Latency(_Part):
    p50: float = 0.0
    p95: float = 0.0
    all: list[float] = Field(default_factory=list)


class PerRecord(_Part):
    """Means per record; a call k records shared counts 1/k in ``calls``."""

    prompt_tokens: float = 0.0
    completion_tokens: float = 0.0
    cost_usd: float = 0.0
    cached_prompt_tokens: float = 0.0
    reasoning_tokens: float = 0.0
    calls: float = 0.0


class Scorecard(_Part):
    """A provider's figures over the golden set (``scorecard.scorecard``)."""

    overall: float
    fields: dict[str, FieldScore]
    records: int = 0
    valid_share: float | None = None  # None: a result written without it
    repaired_share: float = 0.0
    reask_share: float = 0.0
    alone_share: float = 0.0
    failed_by_stage: dict[str, int] = Field(default_factory=dict)
    latency_ms: Latency = Field(default_factory=Latency)
    per_record: PerRecord = Field(default_factory=PerRecord)
    cache_hit_share: float = 0.0
    cost_usd: float = 0.0
    results: list[RecordScore] = Field(default_factory=list)

    def scores(self) -> dict[str, float]:
        """What a baseline compares: overall, the valid share and each field's score."""
        headline = {"overall": self.overall, "valid_share": self.valid_share}
        known = {name: value for name, value in headline.items() if value is not None}
        return known | {name: field.score for name, field in self.fields.items()}


class Gate(_Part):
    passed: bool = True
    missed: list[str] = Field(default_factory=list)


class ProviderCard(Scorecard):
    model: str
    gate: Gate = Field(default_factory=Gate)


class Change(_Part):
    """A score before and after, against a baseline."""

    before: float
    after: float
    delta: float
    verdict: str  # better / worse / same


class Presence(_Part):
    """A provider or score only one side has."""

    status: str  # new / gone


# Per provider: its Presence, or per score a Change or a Presence.
Comparison = dict[str, Presence | dict[str, Change | Presence]]


class Golden(_Part):
    path: str = ""
    records: int = 0


class Thresholds(_Part):
    min_scores: dict[str, float] = Field(default_factory=dict)
    tolerance: dict[str, float] = Field(default_factory=dict)


class EvalResult(_Part):
    prompt_hash: str
    providers: dict[str, ProviderCard]
    format: str = FORMAT
    task: str = ""
    records_per_call: int = 1
    output_schema: str = ""
    golden: Golden = Field(default_factory=Golden)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    passed: bool = True
    baseline: Comparison | None = None  # set by a comparison with an earlier result

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` document (no ``baseline`` key when nothing was compared)."""
        return self.model_dump(mode="json", exclude={"baseline"} if self.baseline is None else None)


def read_eval_result(data: Any) -> EvalResult:
    """``data`` (parsed JSON) as an eval result; ValueError in one line when it is not."""
    if not isinstance(data, dict) or not isinstance(data.get("providers"), dict):
        raise ValueError("not an llm-enrich eval result (no 'providers' object)")
    try:
        return EvalResult.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ValueError(f"not an llm-enrich eval result ({where}: {first['msg']})") from None
