"""A shadow provider's settings (``providers[].shadow``): which share of the records it
also answers, and how much it may hold up (nothing: see ``transforms.core.calls.shadow``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ShadowSpec"]


class ShadowSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # The share of records also sent to this provider, chosen by a hash of the record's
    # topic, partition and offset (the same records on a replay or a restart)
    share: float = Field(gt=0, le=1)
    # Shadow calls in flight at most, per worker process; a sampled record finding them
    # all busy is counted (shadow.<name>.busy) and not shadowed
    max_in_flight: int = Field(default=8, ge=1)
    # The whole shadow answer (call, retries, re-asks) within this; then it counts as failed
    timeout_s: float = Field(default=60.0, gt=0)
