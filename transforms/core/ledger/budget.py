"""``policy.max_tokens_per_record``: the tokens (prompt + completion) one record may use
over all its attempts, re-asks and fallbacks.

Before each call the enricher asks ``over_budget``: what the record has used, plus the next
call's prompt (estimated, ``core.limits.estimate_tokens``) and the most it may answer
(``generation.max_tokens``). Over the budget, the record is dead-lettered (``OverBudget``,
stage ``budget``) instead of being asked again. ``budget_problem`` is the compile-time
check: a budget below what one call of any record takes would dead-letter every record.
"""

from __future__ import annotations

from collections.abc import Sequence

from transforms.core.errors import Attempt
from transforms.core.limits import estimate_tokens

__all__ = ["budget_problem", "over_budget", "used_tokens"]


def used_tokens(attempts: Sequence[Attempt]) -> int:
    return sum(a.prompt_tokens + a.completion_tokens for a in attempts)


def over_budget(
    attempts: Sequence[Attempt],
    next_messages: Sequence[dict[str, str]],
    max_tokens: int,
    budget: int | None,
) -> str | None:
    """Why the next call would take the record over its budget, or None."""
    if budget is None:
        return None
    used = used_tokens(attempts)
    prompt = estimate_tokens(list(next_messages))
    if used + prompt + max_tokens <= budget:
        return None
    return (
        f"over budget: the record has used {used} tokens and its next call would take up to "
        f"{prompt + max_tokens} more (~{prompt} prompt, estimated, + generation.max_tokens "
        f"{max_tokens}), over policy.max_tokens_per_record ({budget})"
    )


def budget_problem(
    fixed_messages: Sequence[dict[str, str]], max_tokens: int, budget: int | None
) -> str | None:
    """The compile-time check: the prompt's fixed part (system, few shots) and one answer
    must fit in the budget, or no record could ever be asked."""
    if budget is None:
        return None
    fixed = estimate_tokens([*fixed_messages, {"role": "user", "content": ""}])
    if fixed + max_tokens <= budget:
        return None
    return (
        f"policy.max_tokens_per_record ({budget}) is below what one call of any record "
        f"takes: the prompt's fixed part (~{fixed} tokens, estimated) plus "
        f"generation.max_tokens ({max_tokens}); no record could be asked"
    )
