"""Plain, picklable values that flow between pipeline stages."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from transforms.core.errors import Attempt, FieldError, RecordError
from transforms.core.stacktrace import short_trace

__all__ = [
    "CascadeMark",
    "Confidence",
    "Enriched",
    "Failure",
    "KafkaRecord",
    "Parsed",
    "Saved",
    "Settled",
    "Skipped",
    "Span",
    "TopicPartition",
]

Headers = tuple[tuple[str, bytes | None], ...]
# Names for the tuples the commit path passes (plain tuples: Beam encodes them natively).
TopicPartition = tuple[str, int]  # (topic, partition)
Span = tuple[int, int]  # (span_start, offset): the offsets a record accounts for
# What a write acknowledges, for the commit step: a span of offsets, and where it is.
Settled = tuple[TopicPartition, Span]


@dataclass(frozen=True)
class KafkaRecord:
    """A record as read from Kafka, untouched: what a dead letter must be able to replay."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    # The reader's position before this record: the record accounts for the offsets
    # [span_start, offset], so that the commit step can tell a gap in the offsets
    # (compaction, transaction markers) from a record still in flight.
    span_start: int | None = None
    # Set when this record is replayed from a dead letter: how often it has been replayed,
    # and the dead letter's own coordinates, which the replay settles instead of the
    # original's.
    replay_count: int = 0
    settles: Settled | None = None

    @property
    def span(self) -> Span:
        return (self.offset if self.span_start is None else self.span_start, self.offset)

    @property
    def settled_coordinates(self) -> Settled:
        return self.settles or ((self.topic, self.partition), self.span)


@dataclass(frozen=True)
class Parsed:
    """A decoded input record: its fields, and the identity of the schema that wrote it."""

    source: KafkaRecord
    fields: dict[str, Any]
    input_schema: str


@dataclass(frozen=True)
class Saved:
    """What an answer served from the response cache cost when it was first produced."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True)
class Confidence:
    """How sure a cascade step was of its answer (``transforms.core.answers.confidence``):
    the record's figure, and each closed-set field's (None: unknown)."""

    record: float
    fields: dict[str, float | None]


@dataclass(frozen=True)
class CascadeMark:
    """Which cascade step answered a record, and how it got there."""

    step: str
    index: int  # among the steps the record could go through
    confidence: Confidence | None  # None: the last step (not judged), or a cached answer
    escalated: tuple[tuple[str, str], ...]  # (step, reason) of each step that passed it on
    all_strong_usd: float  # what the strongest step would have cost for this record

    def as_json(self) -> str:
        """The output's ``llm_enrich.cascade`` header."""
        confidence = self.confidence
        return json.dumps(
            {
                "step": self.step,
                "index": self.index,
                "confidence": confidence.record if confidence else None,
                "fields": confidence.fields if confidence else {},
                "escalated": [list(pair) for pair in self.escalated],
                "all_strong_usd": round(self.all_strong_usd, 8),
            },
            separators=(",", ":"),
        )


@dataclass(frozen=True)
class Enriched:
    """A record the LLM enriched and the output schema accepted."""

    source: KafkaRecord
    output: dict[str, Any]
    provider: str
    model: str
    attempts: tuple[Attempt, ...]
    repairs: tuple[str, ...] = ()
    # generated fields whose invalid value was replaced (output.on_invalid default/null)
    defaulted: tuple[str, ...] = ()
    # injection markers the record carried (``safety.injection.action: flag``)
    safety_flags: tuple[str, ...] = ()
    # "hit" (served from the response cache, ``saved`` says what it cost first) or "miss"
    # when the cache is on; None when it is off.
    cache: str | None = None
    saved: Saved | None = None
    # the confidence a cascade step's gate found, and the cascade step that answered
    confidence: Confidence | None = None
    cascade: CascadeMark | None = None


@dataclass(frozen=True)
class Failure:
    """A record that ends in the dead-letter topic, with everything needed to replay it."""

    source: KafkaRecord
    stage: str
    error_class: str
    message: str
    attempts: tuple[Attempt, ...] = ()
    raw_output: str | None = None
    field_errors: tuple[FieldError, ...] = ()
    input_schema: str | None = None
    failed_at_ms: int = 0
    component: str = ""  # what did the failing stage (Connect's ``class.name``)
    trace: str = ""  # ``short_trace`` of the error

    @classmethod
    def from_error(
        cls,
        source: KafkaRecord,
        error: RecordError,
        *,
        failed_at_ms: int,
        input_schema: str | None = None,
    ) -> Failure:
        return cls(
            source=source,
            stage=error.stage,
            error_class=type(error).__name__,
            message=error.message,
            attempts=error.attempts,
            raw_output=error.raw_output,
            field_errors=error.field_errors,
            input_schema=input_schema,
            failed_at_ms=failed_at_ms,
            component=error.component,
            trace=short_trace(error, error.message),
        )


@dataclass(frozen=True)
class Skipped:
    """A record not attempted because the run was stopped (budget, dead-letter ratio).
    It is neither written nor dead-lettered: its offset stays uncommitted."""

    source: KafkaRecord
    reason: str
    attempts: tuple[Attempt, ...] = ()
