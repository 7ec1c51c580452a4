"""What a call costs at a provider's prices (``providers[].pricing``, per million tokens).

    uncached prompt tokens x prompt_per_million
  + cached prompt tokens   x cached_prompt_per_million (unset: prompt_per_million)
  + completion tokens      x completion_per_million    (reasoning tokens are output tokens)
  then the lane's discount on the whole:
    sync   none
    batch  pricing.batch_discount (OpenAI, Anthropic: 0.5)
    flex   pricing.flex_discount  (OpenAI: flex is priced at the Batch API's rates, 0.5)

The lane is the one the provider says it served (a response's ``service_tier``), else the
one asked for: a flex request answered at the default tier is billed at the default price.
"""

from __future__ import annotations

from typing import Literal

from transforms.core.config.task import PricingSpec
from transforms.core.ledger.usage import Usage

__all__ = ["Lane", "call_cost_usd", "lane_discount", "served_lane"]

Lane = Literal["sync", "batch", "flex"]


def lane_discount(pricing: PricingSpec, lane: str) -> float:
    if lane == "batch":
        return pricing.batch_discount
    if lane == "flex":
        return pricing.flex_discount
    return 0.0


def call_cost_usd(usage: Usage, pricing: PricingSpec | None, lane: str = "sync") -> float:
    if pricing is None:
        return 0.0
    cached_price = pricing.cached_prompt_per_million
    if cached_price is None:
        cached_price = pricing.prompt_per_million
    list_price = (
        usage.uncached_tokens * pricing.prompt_per_million
        + usage.cached_tokens * cached_price
        + usage.completion_tokens * pricing.completion_per_million
    ) / 1_000_000
    return list_price * (1 - lane_discount(pricing, lane))


def served_lane(asked: Lane, service_tier: object) -> Lane:
    """The lane a sync or flex answer is billed in: the response's ``service_tier`` when it
    names one (``flex``, or ``default``/``auto``/``scale``/``priority`` = not flex), else
    the lane asked for. Batch answers stay batch."""
    if asked == "batch" or not isinstance(service_tier, str) or not service_tier:
        return asked
    return "flex" if service_tier == "flex" else "sync"
