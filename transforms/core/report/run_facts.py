"""What a run's written records say, folded as they are read back: records over time,
attempt latency per provider, tokens and cost per provider, dead letters by error class.

Constant memory whatever the run's size: time in at most ``MAX_BINS`` bins over the run's
wall time, latency in fixed bins (``bins.LATENCY_EDGES_MS``), counters keyed by provider,
stage or error class. Input is plain data (header values, decoded dead letters), so this
module does no I/O; a header it cannot read is counted in ``unreadable``, never raised.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from transforms.core.report.bins import LATENCY_EDGES_MS, latency_bin

__all__ = ["MAX_BINS", "RunFacts"]

MAX_BINS = 60


def _shared_by(attempt: Mapping[str, Any]) -> int:
    """How many records shared the call: an output's header says ``"shared": [i, n]``, a
    dead letter's attempt ``shared_by``."""
    shared = attempt.get("shared")
    count = shared[1] if isinstance(shared, list) and len(shared) == 2 else attempt.get("shared_by")
    return count if isinstance(count, int) and count > 1 else 1


def _latency_row() -> list[int]:
    return [0] * (len(LATENCY_EDGES_MS) + 1)


@dataclass
class RunFacts:
    started_ms: int
    ended_ms: int
    outputs: int = 0
    dead_letters: int = 0
    unreadable: int = 0
    output_bins: list[int] = field(default_factory=list)
    dead_bins: list[int] = field(default_factory=list)
    latency: dict[str, list[int]] = field(default_factory=dict)  # provider -> bin counts
    # (provider, ok|failed) -> calls; a call n records shared counts 1/n for each of them
    calls: defaultdict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))
    tokens: Counter[str] = field(default_factory=Counter)  # provider -> tokens
    prompt_tokens: Counter[str] = field(default_factory=Counter)  # provider -> prompt tokens
    cached_tokens: Counter[str] = field(default_factory=Counter)  # provider -> of those, cached
    cost_usd: dict[str, float] = field(default_factory=dict)  # provider -> $
    # (provider, lane) -> $, for what the batch and flex discounts saved
    cost_by_lane: dict[tuple[str, str], float] = field(default_factory=dict)
    answered_by: Counter[str] = field(default_factory=Counter)  # provider -> outputs
    dead_by_class: Counter[str] = field(default_factory=Counter)  # "stage: ErrorClass"
    # the cascade, from outputs' llm_enrich.cascade headers: (step index, step) -> outputs,
    # their cost, and what the cascade's last step would have cost for them
    by_step: Counter[tuple[int, str]] = field(default_factory=Counter)
    escalated: Counter[tuple[int, str, str]] = field(default_factory=Counter)
    cascade_cost_usd: float = 0.0
    all_strong_usd: float = 0.0

    def __post_init__(self) -> None:
        count = max(1, min(MAX_BINS, math.ceil(self.span_ms / 1000)))
        self.output_bins = [0] * count
        self.dead_bins = [0] * count

    @property
    def span_ms(self) -> int:
        return max(1, self.ended_ms - self.started_ms)

    @property
    def bin_ms(self) -> float:
        return self.span_ms / len(self.output_bins)

    def _bin(self, timestamp_ms: int | None) -> int:
        if timestamp_ms is None:
            return len(self.output_bins) - 1
        index = int((timestamp_ms - self.started_ms) / self.bin_ms)
        return min(max(index, 0), len(self.output_bins) - 1)

    def _attempt(self, attempt: Mapping[str, Any]) -> None:
        provider = str(attempt.get("provider") or "?")
        failed = attempt.get("error") or (attempt.get("status") or 200) >= 400
        self.calls[(provider, "failed" if failed else "ok")] += 1 / _shared_by(attempt)
        row = self.latency.setdefault(provider, _latency_row())
        row[latency_bin(float(attempt.get("latency_ms") or 0.0))] += 1

    def _cost(self, provider: str, usd: float, lane: str = "sync") -> None:
        self.cost_usd[provider] = self.cost_usd.get(provider, 0.0) + usd
        key = (provider, lane)
        self.cost_by_lane[key] = self.cost_by_lane.get(key, 0.0) + usd

    def _ledger(self, attempt: Mapping[str, Any]) -> None:
        """One attempt's line of the ledger (outputs' attempts header, dead letters)."""
        provider = str(attempt.get("provider") or "?")
        prompt = int(attempt.get("prompt_tokens") or 0)
        self.prompt_tokens[provider] += prompt
        self.cached_tokens[provider] += int(attempt.get("cached_tokens") or 0)
        self.tokens[provider] += prompt + int(attempt.get("completion_tokens") or 0)
        lane = str(attempt.get("lane") or "sync")
        self._cost(provider, float(attempt.get("cost_usd") or 0.0), lane)

    def add_output(self, timestamp_ms: int | None, headers: Mapping[str, str]) -> None:
        """One output record: its Kafka timestamp and its ``llm_enrich.*`` headers."""
        self.outputs += 1
        self.output_bins[self._bin(timestamp_ms)] += 1
        provider = headers.get("llm_enrich.provider", "?")
        self.answered_by[provider] += 1
        try:
            attempts = json.loads(headers.get("llm_enrich.attempts", "[]"))
            usage = json.loads(headers.get("llm_enrich.usage", "{}"))
            for attempt in attempts:
                self._attempt(attempt)
                if "cost_usd" in attempt:  # each attempt's own line of the ledger
                    self._ledger(attempt)
            if not any("cost_usd" in a for a in attempts):  # written before the ledger
                self.tokens[provider] += int(usage.get("prompt_tokens", 0)) + int(
                    usage.get("completion_tokens", 0)
                )
                self._cost(provider, float(usage.get("cost_usd", 0.0)))
            if "llm_enrich.cascade" in headers:
                self._cascade(json.loads(headers["llm_enrich.cascade"]), usage)
        except (ValueError, TypeError, AttributeError):
            self.unreadable += 1

    def _cascade(self, mark: Mapping[str, Any], usage: Mapping[str, Any]) -> None:
        self.by_step[(int(mark["index"]), str(mark["step"]))] += 1
        for index, (step, reason) in enumerate(mark.get("escalated") or []):
            self.escalated[(index, str(step), str(reason))] += 1
        self.cascade_cost_usd += float(usage.get("cost_usd", 0.0))
        self.all_strong_usd += float(mark.get("all_strong_usd") or 0.0)

    def add_dead_letter(self, timestamp_ms: int | None, letter: Mapping[str, Any]) -> None:
        """One dead letter, decoded (``envelope.read_dead_letter``)."""
        self.dead_letters += 1
        self.dead_bins[self._bin(timestamp_ms)] += 1
        self.dead_by_class[f"{letter.get('stage')}: {letter.get('error_class')}"] += 1
        for attempt in letter.get("attempts") or []:
            self._attempt(attempt)
            self._ledger(attempt)
