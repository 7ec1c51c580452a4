"""The counters every run reports; one namespace, names shared with the summary."""

from __future__ import annotations

from typing import Any

from apache_beam.metrics.metric import Metrics

NAMESPACE = "llm_enrich"


def counter(name: str) -> Any:
    return Metrics.counter(NAMESPACE, name)


def dead_letter_counter(stage: str) -> Any:
    return counter(f"dead_letter.{stage}")
