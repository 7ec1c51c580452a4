"""Run-level guards: stop the run when too many records fail or the budget is spent.

Once tripped, the enricher skips every record it has not started: those records are
neither written nor dead-lettered, so their offsets are not committed and the next run
reads them again (after whatever caused the failures has been fixed).

The budget is counted in a ``Budget`` (``transforms.core.coordination``): this process's own
(the default), or one shared by every worker of the run, which ``check`` reads before each
record starts, so a worker stops once the others have spent it. The dead-letter ratio is
always this process's own.
"""

from __future__ import annotations

from collections import deque

from transforms.core.coordination.in_process import ProcessBudget
from transforms.core.coordination.interface import Budget

__all__ = ["RunGuard"]


class RunGuard:
    def __init__(
        self,
        max_dead_letter_ratio: float | None,
        window: int,
        budget_usd: float | None,
        spend: Budget | None = None,
    ) -> None:
        self._max_ratio = max_dead_letter_ratio
        self._outcomes: deque[bool] = deque(maxlen=window)
        self._budget = budget_usd
        self._spend = spend or ProcessBudget()
        self.spent_usd = 0.0  # with a budget: the run's total as last seen (every worker's)
        self.stop_reason: str | None = None

    async def check(self) -> str | None:
        """Before a record starts: why the run must stop, if it must (the budget as every
        worker has spent it). Raises ``CoordinationLost`` when a shared budget is gone."""
        if self.stop_reason is None and self._budget is not None:
            self._count(await self._spend.spent())
        return self.stop_reason

    async def observe(self, *, dead_lettered: bool, cost_usd: float) -> None:
        """A record's outcome and cost. Raises ``CoordinationLost`` (after counting the
        outcome) when a shared budget is gone."""
        self._outcomes.append(dead_lettered)
        window_full = len(self._outcomes) == self._outcomes.maxlen
        if self.stop_reason is None and self._max_ratio is not None and window_full:
            ratio = sum(self._outcomes) / len(self._outcomes)
            if ratio > self._max_ratio:
                self.stop_reason = (
                    f"dead_letter_ratio: {ratio:.0%} of the last {len(self._outcomes)} records "
                    f"were dead-lettered, over policy.max_dead_letter_ratio "
                    f"({self._max_ratio:.0%})"
                )
        if self._budget is not None and cost_usd > 0:
            self._count(await self._spend.add(cost_usd))

    def _count(self, total_usd: float) -> None:
        self.spent_usd = max(self.spent_usd, total_usd)
        if self.stop_reason is None and self._budget is not None and total_usd >= self._budget:
            self.stop_reason = (
                f"budget: spent ${total_usd:.4f} of policy.budget_usd ${self._budget:.4f}"
            )
