"""A record's ledger: tokens and cost summed over every attempt that was made for it
(calls, retries, re-asks, fallbacks, batch items; a shared call counts with the record's
share), with cached, uncached, completion and reasoning tokens apart.

``RecordUsage.of(attempts)`` is what outputs carry (the ``llm_enrich.usage`` header), what
the summary and the run report add up and what ``max_tokens_per_record`` is checked
against. ``estimated_calls`` counts attempts whose usage the provider did not report.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from transforms.core.errors import Attempt
from transforms.core.ledger.usage import Usage, apportion_counts

__all__ = ["RecordUsage", "attempt_usage", "cache_hit_share", "split_attempt"]


def attempt_usage(attempt: Attempt) -> Usage:
    return Usage(
        attempt.prompt_tokens,
        attempt.cached_tokens,
        attempt.completion_tokens,
        attempt.reasoning_tokens,
        attempt.usage_estimated,
    )


def cache_hit_share(cached_tokens: float, prompt_tokens: float) -> float:
    """Cached prompt tokens / prompt tokens (0 when there were none)."""
    return cached_tokens / prompt_tokens if prompt_tokens else 0.0


@dataclass(frozen=True)
class RecordUsage:
    calls: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    estimated_calls: int = 0

    @classmethod
    def of(cls, attempts: Iterable[Attempt]) -> RecordUsage:
        total = cls()
        for a in attempts:
            total = total + cls(
                1,
                a.prompt_tokens,
                a.cached_tokens,
                a.completion_tokens,
                a.reasoning_tokens,
                a.cost_usd,
                int(a.usage_estimated),
            )
        return total

    def __add__(self, other: RecordUsage) -> RecordUsage:
        return RecordUsage(
            self.calls + other.calls,
            self.prompt_tokens + other.prompt_tokens,
            self.cached_tokens + other.cached_tokens,
            self.completion_tokens + other.completion_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
            self.cost_usd + other.cost_usd,
            self.estimated_calls + other.estimated_calls,
        )

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def uncached_tokens(self) -> int:
        return self.prompt_tokens - self.cached_tokens

    @property
    def cache_hit_share(self) -> float:
        return cache_hit_share(self.cached_tokens, self.prompt_tokens)

    def as_json(self) -> dict[str, Any]:
        """The ``llm_enrich.usage`` header's fields (the first three are the original ones)."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": round(self.cost_usd, 8),
            "calls": self.calls,
            "cached_prompt_tokens": self.cached_tokens,
            "uncached_prompt_tokens": self.uncached_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "estimated_calls": self.estimated_calls,
        }

    def header(self) -> str:
        return json.dumps(self.as_json(), separators=(",", ":"))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RecordUsage:
        """Read back a ``llm_enrich.usage`` header of any version (missing fields are 0)."""

        def number(name: str) -> int:
            return int(data.get(name) or 0)

        return cls(
            number("calls"),
            number("prompt_tokens"),
            number("cached_prompt_tokens"),
            number("completion_tokens"),
            number("reasoning_tokens"),
            float(data.get("cost_usd") or 0.0),
            number("estimated_calls"),
        )


def split_attempt(
    attempt: Attempt,
    weights: Sequence[float],
    *,
    completion_weights: Sequence[float] | None = None,
    price: Callable[[Usage], float] | None = None,
) -> list[Attempt]:
    """One call that several records shared, as one attempt per record: every token count
    split in proportion to ``weights`` (whole tokens that add up to the call's), the cost
    likewise (the last share takes the rounding), ``shared_by`` and ``shared_index`` set.
    The shares sum to the call, so per-record ledgers add up to the invoice.

    ``completion_weights``: how the completion splits when not like the prompt (a pack:
    by each record's own answer, ``calls.apportion``); ``price``: what a share's usage
    costs, so that each share is priced by its own tokens (the last still takes the
    rounding) instead of by ``weights``."""
    n = len(weights)
    if n == 0:
        return []
    answers = weights if completion_weights is None else completion_weights
    # the parts apart, so that a share never has more cached than prompt tokens
    cached = apportion_counts(attempt.cached_tokens, weights)
    uncached = apportion_counts(attempt.prompt_tokens - attempt.cached_tokens, weights)
    reasoning = apportion_counts(attempt.reasoning_tokens, answers)
    answer = apportion_counts(attempt.completion_tokens - attempt.reasoning_tokens, answers)
    usages = [
        Usage(
            cached[i] + uncached[i],
            cached[i],
            reasoning[i] + answer[i],
            reasoning[i],
            attempt.usage_estimated,
        )
        for i in range(n)
    ]
    if price is not None:
        costs = [price(usage) for usage in usages[:-1]]
    else:
        total_weight = float(sum(weights))
        costs = [
            attempt.cost_usd * (w / total_weight if total_weight else 1 / n) for w in weights[:-1]
        ]
    costs.append(attempt.cost_usd - sum(costs))
    return [
        replace(
            attempt,
            shared_by=n,
            shared_index=i + 1,
            cost_usd=costs[i],
            prompt_tokens=usages[i].prompt_tokens,
            cached_tokens=usages[i].cached_tokens,
            completion_tokens=usages[i].completion_tokens,
            reasoning_tokens=usages[i].reasoning_tokens,
        )
        for i in range(n)
    ]
