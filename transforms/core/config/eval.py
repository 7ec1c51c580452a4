"""The task's ``eval`` section: the gate ``llm-enrich eval`` applies to a golden set.

    eval:
      min_scores: {sentiment: 0.6, rating: 0.4, overall: 0.5}   # 0..1, per generated field
      tolerance: {rating: 1}                                     # numbers: |answer - expected|

``min_scores`` keys are generated fields or ``overall`` (the mean of the field scores);
``tolerance`` keys are int/long/float/double fields. Both are checked against the output
schema when the task is compiled.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["OVERALL", "EvalSpec"]

OVERALL = "overall"


class EvalSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_scores: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=dict)
    tolerance: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)
