"""The task's ``feedback`` section: where downstream verdicts and corrections arrive, and
when production has drifted (``llm-enrich feedback``, README: Feedback).

    feedback:
      topic: reviews.feedback
      format: json                 # or avro (llm_enrich.Feedback, schemas/)
      framing: single-object       # avro only: single-object, raw or confluent
      key: review_id               # optional: an output field naming an output, instead of
                                   # the llm_enrich.source.* coordinates
      window_s: 3600               # time windows (by event time) of this size
      min_events: 1                # a window with fewer events is not gated
      min_scores: {sentiment: 0.8, overall: 0.7, acceptance: 0.9}   # 0..1

``min_scores`` keys are generated fields, ``overall`` (the mean of the field agreements)
or ``acceptance`` (accepted / judged); when absent, ``eval.min_scores`` gates instead.
Field names are checked against the output schema when the task is compiled.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["ACCEPTANCE", "FeedbackSpec"]

ACCEPTANCE = "acceptance"


class FeedbackSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: str = Field(min_length=1)
    format: Literal["avro", "json"] = "json"
    framing: Literal["single-object", "raw", "confluent"] = "single-object"
    registry_url: str | None = None
    key: str | None = None
    window_s: float = Field(default=3600.0, gt=0)
    min_events: int = Field(default=1, ge=1)
    min_scores: dict[str, Annotated[float, Field(ge=0, le=1)]] | None = None

    @model_validator(mode="after")
    def _registry_for_confluent(self) -> FeedbackSpec:
        if self.format == "avro" and self.framing == "confluent" and not self.registry_url:
            raise ValueError("framing 'confluent' needs registry_url")
        return self


def feedback_problems(
    spec: FeedbackSpec | None, generated: list[str], output_fields: list[str]
) -> list[str]:
    """What is wrong with a task's ``feedback`` section for this output schema."""
    if spec is None:
        return []
    problems = []
    if spec.key is not None and spec.key not in output_fields:
        problems.append(
            f"feedback.key: {spec.key!r} is not an output field "
            f"(fields: {', '.join(output_fields)})"
        )
    problems += [
        f"feedback.min_scores.{name}: not a generated field "
        f"(fields: {', '.join(generated)}; or overall, {ACCEPTANCE})"
        for name in spec.min_scores or {}
        if name not in (*generated, "overall", ACCEPTANCE)
    ]
    return problems
