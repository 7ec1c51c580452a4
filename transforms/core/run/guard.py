"""Run-level guards: stop the run when too many records fail or the budget is spent.

Once tripped, the enricher skips every record it has not started: those records are
neither written nor dead-lettered, so their offsets are not committed and the next run
reads them again (after whatever caused the failures has been fixed).
"""

from __future__ import annotations

from collections import deque

__all__ = ["RunGuard"]


class RunGuard:
    def __init__(
        self, max_dead_letter_ratio: float | None, window: int, budget_usd: float | None
    ) -> None:
        self._max_ratio = max_dead_letter_ratio
        self._outcomes: deque[bool] = deque(maxlen=window)
        self._budget = budget_usd
        self.spent_usd = 0.0
        self.stop_reason: str | None = None

    def observe(self, dead_lettered: bool, cost_usd: float) -> None:
        self.spent_usd += cost_usd
        self._outcomes.append(dead_lettered)
        if self.stop_reason:
            return
        if self._budget is not None and self.spent_usd >= self._budget:
            self.stop_reason = (
                f"budget: spent ${self.spent_usd:.4f} of policy.budget_usd ${self._budget:.4f}"
            )
        window_full = len(self._outcomes) == self._outcomes.maxlen
        if self._max_ratio is not None and window_full:
            ratio = sum(self._outcomes) / len(self._outcomes)
            if ratio > self._max_ratio:
                self.stop_reason = (
                    f"dead_letter_ratio: {ratio:.0%} of the last {len(self._outcomes)} records "
                    f"were dead-lettered, over policy.max_dead_letter_ratio "
                    f"({self._max_ratio:.0%})"
                )
