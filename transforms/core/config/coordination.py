"""The task's ``coordination:`` section: where the rate limits, the circuit breakers and
the budget live (``transforms.core.coordination``).

    coordination:
      backend: redis                    # process (the default: each worker process its own)
                                        # | redis: one per job, shared by every worker
      url: redis://127.0.0.1:16379/0    # redis only; no password here: password_env
      password_env: REDIS_PASSWORD      # redis only
      namespace: reviews                # redis only; default: the task's name. Jobs with the
                                        # same namespace share their providers' rate limits
                                        # and breakers (by provider name); a budget is per run
      timeout_s: 2                      # one Redis operation (a few tries within it)

Without the section each worker process has its own limits, breakers and budget (on N
worker processes they add up to N times the configured values). Keys that do not apply to
the chosen backend are errors, like unknown keys.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from transforms.core.config.redis_url import check_redis_url

__all__ = ["CoordinationSpec"]

REDIS_ONLY = ("url", "password_env", "namespace")


class CoordinationSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["process", "redis"] = "process"
    url: str | None = None
    password_env: str | None = None
    namespace: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]+$", max_length=200)
    timeout_s: float = Field(default=2.0, gt=0, le=60)

    @model_validator(mode="after")
    def _fits_the_backend(self) -> CoordinationSpec:
        if self.backend == "process":
            for key in REDIS_ONLY:
                if getattr(self, key) is not None:
                    raise ValueError(f"'{key}' does not apply to backend 'process'")
            return self
        check_redis_url(self.url, "redis://127.0.0.1:16379/0")
        return self

    @property
    def shared(self) -> bool:
        return self.backend != "process"
