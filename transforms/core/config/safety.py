"""The task's ``safety`` section: delimiting, injection detection, output rules, moderation.

    safety:
      boundary_seed: 9c1f...        # optional; makes the delimiter unpredictable (see below)
      injection:
        action: flag                # off | flag | dead_letter
        checks: [ignore_instructions, reveal_prompt, role_play, ...]   # default: all
        repeated_min_chars: 400
      output_rules:
        summary: {max_length: 160, must_not_match: "(?i)system prompt", allow_urls: false}
        topics: {allowed_chars: "a-z0-9 -"}
      moderation:
        base_url: https://api.openai.com/v1
        model: omni-moderation-latest
        api_key_env: OPENAI_API_KEY

Validated at load like the rest of the task: unknown keys, unknown checks and regular
expressions that do not compile are errors naming the key.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "INJECTION_CHECKS",
    "InjectionSpec",
    "ModerationSpec",
    "OutputRuleSpec",
    "SafetySpec",
]

# Every check the injection detector knows (transforms.core.safety.detect), in order.
INJECTION_CHECKS = (
    "ignore_instructions",
    "reveal_prompt",
    "role_play",
    "role_marker",
    "chat_template",
    "delimiter_forgery",
    "invisible_unicode",
    "bidi_control",
    "encoded_payload",
    "repeated_text",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InjectionSpec(_Strict):
    # flag: enrich it, with an ``llm_enrich.injection`` header and a counter;
    # dead_letter: stage ``guard`` before any call (replayable); off: no detection
    action: Literal["off", "flag", "dead_letter"] = "flag"
    checks: tuple[str, ...] = INJECTION_CHECKS
    # the rendered record must be at least this long to count as "very long repeated text"
    repeated_min_chars: int = Field(default=400, ge=50)

    @field_validator("checks")
    @classmethod
    def _known_checks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(INJECTION_CHECKS))
        if unknown:
            raise ValueError(f"unknown checks {unknown}; known: {list(INJECTION_CHECKS)}")
        return value


class OutputRuleSpec(_Strict):
    """Rules for every string in one generated output field (array items included)."""

    max_length: int | None = Field(default=None, gt=0)
    must_not_match: str | None = None  # a Python regular expression, searched
    allow_urls: bool = False
    allowed_chars: str | None = None  # the inside of a regex character class: "a-z0-9 -"

    @field_validator("must_not_match")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            _compile(value, "not a valid regular expression")
        return value

    @field_validator("allowed_chars")
    @classmethod
    def _class_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            if not value:
                raise ValueError("must not be empty")
            _compile(f"[^{value}]", "not a valid regex character class body")
        return value


class ModerationSpec(_Strict):
    """An OpenAI-compatible ``/v1/moderations`` endpoint that screens every answer."""

    base_url: str
    model: str = "omni-moderation-latest"
    api_key_env: str | None = None
    timeout_s: float = Field(default=30.0, gt=0)
    attempts: int = Field(default=2, ge=1)
    # only these categories count (empty: the endpoint's overall ``flagged``)
    categories: tuple[str, ...] = ()


class SafetySpec(_Strict):
    # Mixed into the per-job delimiter boundary. Without it the boundary derives from the
    # task's prompt alone: stable, but computable by whoever can read the task file.
    boundary_seed: str | None = Field(default=None, min_length=8)
    delimit: bool = True
    injection: InjectionSpec = Field(default_factory=InjectionSpec)
    output_rules: dict[str, OutputRuleSpec] = Field(default_factory=dict)
    moderation: ModerationSpec | None = None


def _compile(pattern: str, what: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{what}: {exc}") from None
