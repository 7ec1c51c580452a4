"""Split what a shared call used and cost among the records that shared it.

The rule (``prompt.records_per_call``), for a call answering n records:

    prompt tokens      the shared part (system, few shots, everything but the records'
                       own blocks) evenly, plus each record's own block by its share:
                       weight_i = shared_chars / n + own_chars_i
                       (cached and uncached prompt tokens alike)
    completion tokens  the answer's wrapper and anything placed on no record evenly, plus
                       each record's own answer by its share:
                       weight_i = (answer_chars - sum(element_chars)) / n + element_chars_i
                       (reasoning tokens alike)
    cost               each record's tokens at the provider's prices, in the lane the call
                       was served in (``ledger.prices``); the last record's share takes
                       the rounding

Characters stand in for tokens (no tokenizer is needed, and every provider bills the
same text); what is split is the provider's reported usage. Each count is split in whole
tokens by the largest remainder (``ledger.usage.apportion_counts``), so the records'
tokens sum to the call's exactly and their costs to its cost
(``ledger.record.split_attempt``).
"""

from __future__ import annotations

from collections.abc import Sequence

from transforms.core.config.task import PricingSpec
from transforms.core.errors import Attempt
from transforms.core.ledger.prices import call_cost_usd
from transforms.core.ledger.record import split_attempt

__all__ = ["share_attempt", "weights"]


def weights(total_chars: int, own_chars: Sequence[int]) -> list[float]:
    """The shared part (``total_chars`` minus every record's own) evenly, plus each own."""
    shared = max(0, total_chars - sum(own_chars))
    count = len(own_chars)
    return [shared / count + own for own in own_chars]


def share_attempt(
    attempt: Attempt,
    prompt_weights: Sequence[float],
    completion_weights: Sequence[float],
    pricing: PricingSpec | None,
) -> list[Attempt]:
    """One copy of ``attempt`` per record of its call (in the call's order), each with the
    record's share of the tokens and cost and its place among them (``shared_index``)."""
    return split_attempt(
        attempt,
        prompt_weights,
        completion_weights=completion_weights,
        price=lambda usage: call_cost_usd(usage, pricing, attempt.lane),
    )
