"""Exit codes of ``llm-enrich run`` and ``replay`` (documented in the README).

0   every record read was settled (written or dead-lettered) and committed
1   some records were not settled (a write failed, or a second signal); read again next run
2   the task file or the command line is wrong, or a launch check failed; nothing was read
3   stopped by a systemic fault (credentials, permissions, a missing topic or model, an
    unreachable registry, broker or coordination store, every provider down); fix it
    and run again
4   stopped by a guard (policy.budget_usd, policy.max_dead_letter_ratio)
70  an internal error (a defect, or the pipeline failed): never one of the above
"""

from __future__ import annotations

from transforms.core.run.outcome import Verdict

OK = 0
UNSETTLED = 1
USAGE = 2
SYSTEMIC = 3
GUARD = 4
INTERNAL = 70

# a run's or a replay's verdict (``transforms.core.run.outcome``) as its exit code
BY_VERDICT: dict[Verdict, int] = {
    "ok": OK,
    "unsettled": UNSETTLED,
    "systemic": SYSTEMIC,
    "guard": GUARD,
}
