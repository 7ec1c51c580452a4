"""A batch provider's ``batch:`` section (``mode: batch``): how records are grouped into
provider batches (OpenAI-compatible Files + Batches API), how often pending batches are
polled, how long a record may wait for one, and where pending batch ids are kept.

    mode: batch
    batch:
      max_records: 1000      # submit a group when it holds this many requests ...
      max_wait_s: 60         # ... or when its oldest request waited this long
      poll_interval_s: 30    # ask for each pending batch's status this often
      completion_window: 24h # the only window the Batches API offers
      deadline_s: 90000      # a record waits at most this long for its batch (25 h: the
                             # 24 h window and time to download); then it falls back
      state_path: pending.sqlite  # custom_id -> batch id, durable: a restart resumes
                             # polling instead of resubmitting. Default
                             # $LLM_ENRICH_STATE/batch/pending.sqlite, else
                             # ./.local/batch/pending.sqlite

Records waiting in a batch hold their slots of ``policy.max_in_flight``: a batch must fit
in the window (checked at load), and their partitions' commits wait for them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["BatchSpec", "default_batch_state_path"]

DEFAULT_DEADLINE_S = 25 * 3600.0


class BatchSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_records: int = Field(default=1000, ge=1, le=50_000)  # the Batches API's own limit
    max_wait_s: float = Field(default=60.0, gt=0)
    poll_interval_s: float = Field(default=30.0, gt=0)
    completion_window: Literal["24h"] = "24h"
    deadline_s: float = Field(default=DEFAULT_DEADLINE_S, gt=0)
    state_path: Path | None = None


def default_batch_state_path() -> Path:
    """The pending-batch file when the task names none: in the project's ignored data
    folder, beside the response cache."""
    state = os.environ.get("LLM_ENRICH_STATE")
    base = Path(state) if state else Path.cwd() / ".local"
    return (base / "batch" / "pending.sqlite").resolve()
