"""Fold joined feedback events into bins: constant memory per (time window, provider,
model, prompt hash), whatever the number of events.

Per generated field, an event scores the output's value against its correction with the
measure ``eval`` uses for that field's Avro type (``transforms.core.eval.measures``); an
event without a correction for a field counts as agreement (1.0) for that field when its
verdict is ``accepted``, and does not count for that field otherwise (a rejection says
something was wrong, not what).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from transforms.core.eval.kinds import Kind
from transforms.core.eval.measures import measure
from transforms.core.feedback.events import FeedbackEvent

__all__ = ["Aggregate", "Bin", "Group", "Mean", "OutputFacts"]


@dataclass(frozen=True, order=True)
class Group:
    """Who answered: from the output's ``llm_enrich.provider/.model/.prompt_hash`` headers."""

    provider: str
    model: str
    prompt_hash: str

    @property
    def label(self) -> str:
        return f"{self.provider}/{self.model}@{self.prompt_hash[:8]}"


@dataclass(frozen=True)
class OutputFacts:
    """What the join needs of an output: who answered, and its value."""

    group: Group
    value: Mapping[str, Any]


@dataclass
class Mean:
    total: float = 0.0
    count: int = 0

    def add(self, value: float) -> None:
        self.total += value
        self.count += 1

    def merge(self, other: Mean) -> None:
        self.total += other.total
        self.count += other.count

    @property
    def value(self) -> float | None:
        return self.total / self.count if self.count else None


@dataclass
class Bin:
    events: int = 0
    accepted: int = 0
    rejected: int = 0
    corrected: int = 0  # events with at least one correction
    fields: dict[str, Mean] = field(default_factory=dict)
    extras: dict[str, dict[str, Mean]] = field(default_factory=dict)  # abs_error, precision...
    outcomes: dict[str, Mean] = field(default_factory=dict)

    def merge(self, other: Bin) -> None:
        self.events += other.events
        self.accepted += other.accepted
        self.rejected += other.rejected
        self.corrected += other.corrected
        for name, mean in other.fields.items():
            self.fields.setdefault(name, Mean()).merge(mean)
        for name, extra in other.extras.items():
            for key, mean in extra.items():
                self.extras.setdefault(name, {}).setdefault(key, Mean()).merge(mean)
        for name, mean in other.outcomes.items():
            self.outcomes.setdefault(name, Mean()).merge(mean)


@dataclass
class Aggregate:
    """Bins by (window index, group); bad events by reason."""

    window_s: float
    kinds: Mapping[str, Kind]  # the generated fields, in schema order
    tolerance: Mapping[str, float] = field(default_factory=dict)
    bins: dict[tuple[int, Group], Bin] = field(default_factory=dict)
    bad: Counter[str] = field(default_factory=Counter)
    read: int = 0  # every record read from the feedback topic

    def window(self, event_time_ms: int) -> int:
        return int(event_time_ms // (self.window_s * 1000))

    def fold(self, event: FeedbackEvent, output: OutputFacts) -> None:
        slot = self.bins.setdefault((self.window(event.event_time_ms), output.group), Bin())
        slot.events += 1
        slot.accepted += event.verdict == "accepted"
        slot.rejected += event.verdict == "rejected"
        slot.corrected += bool(event.corrections)
        for name, kind in self.kinds.items():
            if name in event.corrections:
                got = measure(
                    kind,
                    output.value.get(name),
                    event.corrections[name],
                    self.tolerance.get(name, 0),
                )
                score = got.score
                for key, value in got.extra.items():
                    slot.extras.setdefault(name, {}).setdefault(key, Mean()).add(value)
            elif event.verdict == "accepted":
                score = 1.0
            else:
                continue
            slot.fields.setdefault(name, Mean()).add(score)
        for name, value in event.outcomes.items():
            slot.outcomes.setdefault(name, Mean()).add(value)

    def merge(self, other: Aggregate) -> None:
        """Add another aggregate's bins (e.g. a chunk's) into this one."""
        for key, slot in other.bins.items():
            self.bins.setdefault(key, Bin()).merge(slot)
        self.bad.update(other.bad)
        self.read += other.read

    @property
    def joined(self) -> int:
        return sum(b.events for b in self.bins.values())
