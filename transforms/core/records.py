"""Plain, picklable values that flow between pipeline stages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transforms.core.errors import Attempt, FieldError, RecordError

__all__ = ["Enriched", "Failure", "KafkaRecord", "Parsed", "Skipped"]

Headers = tuple[tuple[str, bytes | None], ...]


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
    # Set when this record is replayed from a dead letter: how often it has been replayed,
    # and the dead letter's own coordinates (topic, partition, offset), whose offset the
    # replay settles instead of the original's.
    replay_count: int = 0
    settles: tuple[str, int, int] | None = None

    @property
    def settled_coordinates(self) -> tuple[tuple[str, int], int]:
        topic, partition, offset = self.settles or (self.topic, self.partition, self.offset)
        return ((topic, partition), offset)


@dataclass(frozen=True)
class Parsed:
    """A decoded input record: its fields, and the identity of the schema that wrote it."""

    source: KafkaRecord
    fields: dict[str, Any]
    input_schema: str


@dataclass(frozen=True)
class Enriched:
    """A record the LLM enriched and the output schema accepted."""

    source: KafkaRecord
    output: dict[str, Any]
    provider: str
    model: str
    attempts: tuple[Attempt, ...]
    repairs: tuple[str, ...] = ()


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
        )


@dataclass(frozen=True)
class Skipped:
    """A record not attempted because the run was stopped (budget, dead-letter ratio).
    It is neither written nor dead-lettered: its offset stays uncommitted."""

    source: KafkaRecord
    reason: str
    attempts: tuple[Attempt, ...] = ()
