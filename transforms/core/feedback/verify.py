"""What feedback says about each output, for ``export``: the latest verdict and the
corrections merged in event-time order (a later correction of a field wins).

    corrected   at least one correction: the export writes the corrected value
    accepted    accepted, nothing corrected: the output as written is right
    rejected    rejected, nothing corrected: known wrong, never exported
    unjudged    no feedback (or outcomes only)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from transforms.core.feedback.events import FeedbackEvent, Verdict

__all__ = ["Status", "Verification"]

Status = Literal["corrected", "accepted", "rejected", "unjudged"]


@dataclass
class Verification:
    verdict: Verdict | None = None
    verdict_ms: int = -1
    corrections: dict[str, tuple[int, Any]] = field(default_factory=dict)  # name -> (ms, value)
    events: int = 0

    def add(self, event: FeedbackEvent) -> None:
        self.events += 1
        moment = event.event_time_ms
        if event.verdict is not None and moment >= self.verdict_ms:
            self.verdict, self.verdict_ms = event.verdict, moment
        for name, value in event.corrections.items():
            if name not in self.corrections or moment >= self.corrections[name][0]:
                self.corrections[name] = (moment, value)

    @property
    def status(self) -> Status:
        if self.corrections:
            return "corrected"
        if self.verdict is not None:
            return self.verdict
        return "unjudged"

    def apply(self, value: Mapping[str, Any]) -> dict[str, Any]:
        """The output's value with the corrections in place."""
        return {**value, **{name: v for name, (_, v) in self.corrections.items()}}
