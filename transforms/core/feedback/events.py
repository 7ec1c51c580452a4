"""Feedback events: decoded from JSON or Avro (``llm_enrich.Feedback``), then checked
against the output schema. A bad event is data (``BadEvent``: a reason and a detail), never
an exception: the command counts it by reason and goes on.

Reasons (``BAD_REASONS``):

    undecodable     the bytes are not JSON / not an llm_enrich.Feedback in the framing
    malformed       decoded, but not an event: unknown keys, a verdict other than accepted or
                    rejected, an outcome that is not a number, an unreadable event_time
    no_reference    neither source coordinates nor a key (or a key, and the task names no
                    feedback.key)
    unknown_output  no output on the output topic has these coordinates or this key
    unknown_field   a correction names a field the output schema does not have
    not_generated   a correction names a field copied from the input (not the model's)
    wrong_type      a correction's value does not fit the field's Avro type
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from schemas import AvroSchema
from transforms.core.answers.validation import validate
from transforms.core.formats import framing as framings
from transforms.core.formats.framing import SchemaById

__all__ = [
    "BAD_REASONS",
    "BadEvent",
    "FeedbackEvent",
    "Ref",
    "Verdict",
    "check_corrections",
    "decode_event",
    "event_from_mapping",
]

Verdict = Literal["accepted", "rejected"]
# How an event names an output: the input's coordinates, or the value of feedback.key
Ref = tuple[str, int, int] | str

BAD_REASONS = (
    "undecodable",
    "malformed",
    "no_reference",
    "unknown_output",
    "unknown_field",
    "not_generated",
    "wrong_type",
)
_KEYS = frozenset({"source", "key", "verdict", "corrections", "outcomes", "event_time", "origin"})


@dataclass(frozen=True)
class FeedbackEvent:
    ref: Ref
    event_time_ms: int
    verdict: Verdict | None = None
    corrections: Mapping[str, Any] = field(default_factory=dict)
    outcomes: Mapping[str, float] = field(default_factory=dict)
    origin: str | None = None


@dataclass(frozen=True)
class BadEvent:
    reason: str  # one of BAD_REASONS
    detail: str


def decode_event(
    value: bytes | None,
    timestamp_ms: int | None,
    *,
    format: Literal["avro", "json"],
    schema: AvroSchema,
    framing: str = "single-object",
    by_id: SchemaById | None = None,
    keyed: bool = False,
) -> FeedbackEvent | BadEvent:
    """One feedback record's value as an event. ``timestamp_ms`` (the Kafka record's) is
    the event time when the event has none; ``keyed``: the task names a feedback.key."""
    if not value:
        return BadEvent("undecodable", "empty value")
    if format == "json":
        try:
            raw = json.loads(value)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return BadEvent("undecodable", f"not JSON: {str(exc)[:120]}")
        return event_from_mapping(raw, timestamp_ms, keyed=keyed)
    try:
        datum, _ = framings.decode(value, schema, framing, {schema.fingerprint: schema}, by_id)
    except Exception as exc:  # any decoding failure of foreign bytes is the event's
        return BadEvent("undecodable", f"not an {schema.fullname}: {str(exc)[:120]}")
    corrections = {}
    for name, text in (datum.get("corrections") or {}).items():
        try:
            corrections[name] = json.loads(text)
        except json.JSONDecodeError:
            return BadEvent("wrong_type", f"corrections.{name}: not JSON text: {text[:60]!r}")
    return event_from_mapping(
        {**datum, "corrections": corrections}, timestamp_ms, keyed=keyed, avro=True
    )


def event_from_mapping(
    raw: Any, timestamp_ms: int | None, *, keyed: bool, avro: bool = False
) -> FeedbackEvent | BadEvent:
    """A decoded event (JSON object, or an Avro datum with its corrections parsed)."""
    if not isinstance(raw, dict):
        return BadEvent("malformed", f"expected an object, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        return BadEvent("malformed", f"unknown key(s) {', '.join(unknown)}")
    ref = _ref(raw.get("source"), raw.get("key"), keyed=keyed)
    if isinstance(ref, BadEvent):
        return ref
    verdict = raw.get("verdict")
    if verdict not in (None, "accepted", "rejected"):
        return BadEvent("malformed", f"verdict {verdict!r}: expected accepted or rejected")
    corrections = raw.get("corrections") or {}
    if not isinstance(corrections, dict):
        return BadEvent("malformed", "corrections: expected an object of field -> value")
    outcomes = raw.get("outcomes") or {}
    if not isinstance(outcomes, dict) or not all(
        _is_number(v) and math.isfinite(v) for v in outcomes.values()
    ):
        return BadEvent("malformed", "outcomes: expected an object of name -> number")
    moment = _millis(raw.get("event_time"), timestamp_ms)
    if moment is None:
        return BadEvent("malformed", f"event_time {raw.get('event_time')!r}: not a time")
    origin = raw.get("origin")
    return FeedbackEvent(
        ref,
        moment,
        verdict,
        dict(corrections),
        {str(k): float(v) for k, v in outcomes.items()},
        origin if isinstance(origin, str) else None,
    )


def _ref(source: Any, key: Any, *, keyed: bool) -> Ref | BadEvent:
    if source is not None:
        if not isinstance(source, dict):
            return BadEvent("malformed", "source: expected {topic, partition, offset}")
        topic, partition, offset = (source.get(k) for k in ("topic", "partition", "offset"))
        if not isinstance(topic, str) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in (partition, offset)
        ):
            return BadEvent("malformed", "source: expected {topic, partition, offset}")
        return (topic, int(partition), int(offset))  # type: ignore[arg-type]
    if key is None:
        return BadEvent("no_reference", "neither source coordinates nor a key")
    if not keyed:
        return BadEvent("no_reference", "a key, but the task names no feedback.key")
    return str(key)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _millis(value: Any, fallback: int | None) -> int | None:
    if value is None:
        return fallback
    if isinstance(value, datetime):  # Avro's timestamp-millis, decoded
        return int(value.timestamp() * 1000)
    if _is_number(value) and math.isfinite(value):
        return int(value)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return int(moment.replace(tzinfo=moment.tzinfo or UTC).timestamp() * 1000)
    return None


def check_corrections(
    event: FeedbackEvent,
    generated_avro: dict[str, Any],
    copied: Sequence[str],
) -> BadEvent | None:
    """The first problem with an event's corrections (None: every one is a generated field
    holding a value of its type). ``generated_avro``: the record of generated fields."""
    generated = {f["name"] for f in generated_avro["fields"]}
    for name, value in event.corrections.items():
        if name in copied:
            return BadEvent("not_generated", f"corrections.{name}: copied from the input")
        if name not in generated:
            return BadEvent("unknown_field", f"corrections.{name}: not an output field")
        path = f"$.{name}"
        errors = [
            e
            for e in validate({name: value}, generated_avro)
            if e.path == path or e.path.startswith((path + ".", path + "["))
        ]
        if errors:
            return BadEvent("wrong_type", f"corrections.{errors[0]}")
    return None
