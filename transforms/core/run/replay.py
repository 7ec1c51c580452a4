"""Which dead letters a replay re-enriches, and the original record each one carries.

A dead letter is skipped, with a reason, when it is filtered out (stage, error class,
failure time, replay count), when it cannot be read, or when its source record already has
an output (it was enriched since, e.g. by an earlier replay): that last check is what keeps
a replay from enriching anything twice.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from transforms.core.envelope import read_dead_letter
from transforms.core.errors import RecordError
from transforms.core.records import KafkaRecord

__all__ = ["Decision", "ReplayFilter", "decide", "one_per_source"]

Coordinates = tuple[str, int, int]


@dataclass(frozen=True)
class ReplayFilter:
    stages: frozenset[str] = field(default_factory=frozenset)
    error_classes: frozenset[str] = field(default_factory=frozenset)
    since_ms: int | None = None
    until_ms: int | None = None
    max_replays: int | None = None

    def reason_to_skip(self, letter: dict[str, Any]) -> str | None:
        failed_at = _millis(letter["failed_at"])
        if self.stages and letter["stage"] not in self.stages:
            return "stage"
        if self.error_classes and letter["error_class"] not in self.error_classes:
            return "error_class"
        if self.since_ms is not None and failed_at < self.since_ms:
            return "before_since"
        if self.until_ms is not None and failed_at >= self.until_ms:
            return "after_until"
        if self.max_replays is not None and letter["replay_count"] >= self.max_replays:
            return "max_replays"
        return None


@dataclass(frozen=True)
class Decision:
    """Either ``record`` (replay it) or ``skip`` (a reason); ``letter`` when readable."""

    record: KafkaRecord | None
    skip: str | None
    letter: dict[str, Any] | None = None


def decide(
    dead_letter: KafkaRecord, selection: ReplayFilter, enriched: Container[Coordinates]
) -> Decision:
    try:
        if dead_letter.value is None:
            raise ValueError("empty dead letter")
        letter = read_dead_letter(dead_letter.value)
    except (RecordError, ValueError):
        return Decision(None, "unreadable")
    reason = selection.reason_to_skip(letter)
    if reason:
        return Decision(None, reason, letter)
    original = letter["original"]
    if (original["topic"], original["partition"], original["offset"]) in enriched:
        return Decision(None, "already_enriched", letter)
    record = KafkaRecord(
        topic=original["topic"],
        partition=original["partition"],
        offset=original["offset"],
        timestamp_ms=original["timestamp_ms"],
        key=original["key"],
        value=original["value"],
        headers=tuple((h["key"], h["value"]) for h in original["headers"]),
        replay_count=letter["replay_count"] + 1,
        settles=dead_letter.settled_coordinates,
    )
    return Decision(record, None, letter)


def one_per_source(records: Iterable[KafkaRecord]) -> tuple[KafkaRecord, list[KafkaRecord]]:
    """Of several dead letters for the same original (a lost commit, a crashed replay),
    replay the most replayed one only; the others are settled as duplicates."""
    ordered = sorted(records, key=lambda r: (r.replay_count, r.settles or ()), reverse=True)
    return ordered[0], ordered[1:]


def _millis(value: Any) -> int:
    return int(value.timestamp() * 1000) if isinstance(value, datetime) else int(value)
