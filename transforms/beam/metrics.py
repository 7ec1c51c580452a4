"""The counters every run reports; one namespace, names shared with the summary."""

from __future__ import annotations

from typing import Any

from apache_beam.metrics.metric import Metrics

from transforms.core import control

NAMESPACE = "llm_enrich"
STOP_REASONS = "stop_reasons"


def counter(name: str) -> Any:
    return Metrics.counter(NAMESPACE, name)


def dead_letter_counter(stage: str) -> Any:
    return counter(f"dead_letter.{stage}")


def count_halted(reason: str) -> None:
    """A record left unsettled because the run stopped early (a guard or a systemic
    fault): counted as ``halted.<kind>``; the reason travels as a string-set metric for the
    summary."""
    counter(f"halted.{reason.split(':')[0]}").inc()
    Metrics.string_set(NAMESPACE, STOP_REASONS).add(reason)


def note_stop() -> None:
    """If the run was stopped early (by any stage of this process), say why in the metrics."""
    reason = control.halted()
    if reason:
        Metrics.string_set(NAMESPACE, STOP_REASONS).add(reason)


def halt(reason: str) -> None:
    """A stage met a systemic fault: stop the run (the readers stop claiming offsets)."""
    control.halt(reason)
    count_halted(reason)
