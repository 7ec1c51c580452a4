"""Split what a shared call cost among the records that shared it.

The rule (``prompt.records_per_call``), for a call answering n records:

    prompt tokens      the shared part (system, few shots, everything but the records'
                       own blocks) evenly, plus each record's own block by its share:
                       weight_i = shared_chars / n + own_chars_i
    completion tokens  the answer's wrapper and anything placed on no record evenly, plus
                       each record's own answer by its share:
                       weight_i = (answer_chars - sum(element_chars)) / n + element_chars_i
    cost               each record's tokens at the provider's prices

Characters stand in for tokens (no tokenizer is needed and every provider bills the same
text); the provider's reported totals are what is split. Each total is split in whole
tokens by the largest remainder, so the records' tokens sum to the call's exactly, and
since the price is linear in tokens their costs sum to the call's cost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from transforms.core.errors import Attempt

__all__ = ["Price", "share_attempt", "split", "weights"]

Price = Callable[[int, int], float]  # (prompt tokens, completion tokens) -> USD


def split(total: int, parts: Sequence[float]) -> list[int]:
    """``total`` in whole parts proportional to ``parts`` (largest remainder, ties to the
    earlier part), summing to ``total``; equal parts when every weight is 0."""
    if not parts:
        return []
    weight = float(sum(parts))
    shares = (
        [total * p / weight for p in parts] if weight > 0 else [total / len(parts)] * len(parts)
    )
    whole = [int(s) for s in shares]
    left = total - sum(whole)
    by_remainder = sorted(range(len(parts)), key=lambda i: (-(shares[i] - whole[i]), i))
    for index in by_remainder[:left]:
        whole[index] += 1
    return whole


def weights(total_chars: int, own_chars: Sequence[int]) -> list[float]:
    """The shared part (``total_chars`` minus every record's own) evenly, plus each own."""
    shared = max(0, total_chars - sum(own_chars))
    count = len(own_chars)
    return [shared / count + own for own in own_chars]


def share_attempt(
    attempt: Attempt,
    prompt_weights: Sequence[float],
    completion_weights: Sequence[float],
    price: Price,
) -> list[Attempt]:
    """One copy of ``attempt`` per record of its call, each with the record's share of the
    tokens and cost and its place in the pack (1..n)."""
    size = len(prompt_weights)
    prompt = split(attempt.prompt_tokens, prompt_weights)
    completion = split(attempt.completion_tokens, completion_weights)
    return [
        replace(
            attempt,
            prompt_tokens=prompt[i],
            completion_tokens=completion[i],
            cost_usd=price(prompt[i], completion[i]) if attempt.cost_usd else 0.0,
            pack_size=size,
            pack_position=i + 1,
        )
        for i in range(size)
    ]
