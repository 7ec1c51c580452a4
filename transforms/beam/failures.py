"""Failures are visible: the first few of each stage are logged, one line each.

Class and message at warning level, the traceback (when there is one) at debug level; the
messages are the dead letter's own, so secrets are already redacted. A defect (a dead
letter that cannot even be encoded) is logged at error level, every time.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

__all__ = ["log_defect", "log_failure"]

LOG = logging.getLogger("llm_enrich.failures")
FIRST = 5  # per stage and process

_seen: Counter[str] = Counter()
_lock = threading.Lock()


def log_failure(
    stage: str, error_class: str, message: str, exc: BaseException | None = None
) -> None:
    with _lock:
        _seen[stage] += 1
        count = _seen[stage]
    if count > FIRST:
        return
    more = " (later ones are counted, not logged)" if count == FIRST else ""
    LOG.warning("%s failed: %s: %s%s", stage, error_class, message[:500], more)
    if exc is not None:
        LOG.debug("%s failure traceback", stage, exc_info=exc)


def log_defect(what: str, exc: BaseException) -> None:
    LOG.error("defect: %s: %s: %s", what, type(exc).__name__, str(exc)[:500])
    LOG.debug("defect traceback", exc_info=exc)
