"""How a run ended, from its counters (``transforms.core.counters``).

    unaccounted   records read that ended neither written, nor dead-lettered, nor skipped
                  on purpose (a replay), nor abandoned by a clean stop
    uncommitted   spans settled that no commit covered when the run ended
    stop_kinds    what stopped the run early: a guard's name, ``systemic`` or ``outage``
    verdict       systemic, guard, unsettled or ok, in that order of precedence

The CLI turns the verdict into its exit code (``pipelines.exit_codes``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from transforms.core import counters

__all__ = ["GUARDS", "RunOutcome", "Verdict"]

Verdict = Literal["ok", "unsettled", "systemic", "guard"]
GUARDS = {
    "budget": "policy.budget_usd was reached",
    "dead_letter_ratio": "the dead-letter ratio went over policy.max_dead_letter_ratio",
}
SYSTEMIC = frozenset({"systemic", "outage"})


@dataclass
class RunOutcome:
    counters: dict[str, int] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)  # why the run stopped early, in full

    def get(self, name: str) -> int:
        return self.counters.get(name, 0)

    def grouped(self, prefix: str) -> dict[str, int]:
        """Counters named ``<prefix><key>``, by key, sorted."""
        return counters.grouped(self.counters, prefix)

    @property
    def skipped_by_reason(self) -> dict[str, int]:
        return self.grouped(counters.REPLAY_SKIPPED)

    @property
    def unaccounted(self) -> int:
        """Records read that ended neither as an output nor as a dead letter (nor, in a
        replay, were skipped on purpose, nor were abandoned by a clean stop)."""
        settled = self.get(counters.WRITTEN_OUTPUT) + self.get(counters.WRITTEN_DEAD_LETTER)
        left = sum(self.skipped_by_reason.values()) + self.get(counters.ABANDONED)
        return self.get(counters.READ) - settled - left

    @property
    def uncommitted(self) -> int:
        """Records (and gaps) settled whose offsets no commit covered when the run ended.
        Expected behind a record abandoned by a clean stop (it is not settled, so the
        chain of commits stops there), a defect otherwise."""
        return self.get(counters.SPANS_SETTLED) - self.get(counters.SPANS_COMMITTED)

    @property
    def stop_kinds(self) -> set[str]:
        """What stopped the run early: guard names (``budget``...) or ``systemic``/``outage``."""
        kinds = {k for k, v in self.grouped(counters.HALTED).items() if v}
        return kinds | {reason.split(":")[0] for reason in self.reasons}

    @property
    def stop_reasons(self) -> list[str]:
        """Why the run stopped early (see policy in the README), one line each."""
        return self.reasons or [GUARDS.get(k, k) for k in sorted(self.stop_kinds)]

    @property
    def verdict(self) -> Verdict:
        if self.stop_kinds & SYSTEMIC:
            return "systemic"
        if self.stop_kinds:
            return "guard"
        if self.unaccounted or (self.uncommitted and not self.get(counters.ABANDONED)):
            return "unsettled"
        return "ok"
