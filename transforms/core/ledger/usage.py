"""What one call used, as the provider reported it (or as estimated when it did not).

    prompt_tokens       every input token (OpenAI ``usage.prompt_tokens``), cached included
    cached_tokens       of those, served from the provider's prefix cache
                        (``usage.prompt_tokens_details.cached_tokens``)
    completion_tokens   every output token, reasoning included
    reasoning_tokens    of those, hidden reasoning (``completion_tokens_details.reasoning_tokens``)
    estimated           the provider reported no usage: counted by ``estimate_tokens``

Cached and reasoning tokens are subsets, as in the API: uncached prompt tokens are
``prompt_tokens - cached_tokens``. A usage object the SDK built leniently (a plain dict) is
read the same way as a typed one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Usage", "apportion_counts", "estimate_text_tokens", "reported_usage"]


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False

    @property
    def uncached_tokens(self) -> int:
        return self.prompt_tokens - self.cached_tokens

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _get(source: Any, name: str) -> Any:
    if source is None:
        return None
    if isinstance(source, Mapping):
        return source.get(name)
    return getattr(source, name, None)


def _count(source: Any, name: str) -> int:
    value = _get(source, name)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def estimate_text_tokens(text: str) -> int:
    """About four characters per token (``core.limits.estimate_tokens`` for messages)."""
    return (len(text) + 3) // 4


def reported_usage(usage: Any, prompt_estimate: int, completion_text: str) -> Usage:
    """The call's usage from the response's ``usage`` (``CompletionUsage`` or a dict);
    without one, or without ``prompt_tokens`` in it, an estimate marked as such: the
    prompt from ``prompt_estimate``, the completion from the answer's text. Counts a
    provider reports beyond their total (cached > prompt) are capped to it."""
    prompt = _get(usage, "prompt_tokens")
    if not isinstance(prompt, int) or isinstance(prompt, bool) or prompt < 0:
        return Usage(
            prompt_tokens=prompt_estimate,
            completion_tokens=estimate_text_tokens(completion_text),
            estimated=True,
        )
    completion = _count(usage, "completion_tokens")
    return Usage(
        prompt_tokens=prompt,
        cached_tokens=min(prompt, _count(_get(usage, "prompt_tokens_details"), "cached_tokens")),
        completion_tokens=completion,
        reasoning_tokens=min(
            completion, _count(_get(usage, "completion_tokens_details"), "reasoning_tokens")
        ),
    )


def apportion_counts(total: int, weights: Sequence[float]) -> list[int]:
    """``total`` split in proportion to ``weights`` in whole tokens that sum to ``total``
    exactly (largest remainder; ties to the earlier share), for a call several records
    shared. Equal shares when every weight is zero."""
    if not weights:
        return []
    if total < 0 or any(w < 0 for w in weights):
        raise ValueError("apportion_counts needs a non-negative total and weights")
    weight_sum = float(sum(weights))
    shares = [w / weight_sum for w in weights] if weight_sum else [1 / len(weights)] * len(weights)
    exact = [total * s for s in shares]
    counts = [int(e) for e in exact]
    left = total - sum(counts)
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[:left]:
        counts[i] += 1
    return counts
