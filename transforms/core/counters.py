"""Every counter name a run reports, in one place.

The steps count under these names (Beam's metrics in the ``NAMESPACE``, and the run's
``Tally``); the summary, its exit code, the progress line, the run report and Flink's live
counts read them back. A name with a part that varies (a stage, a step, a field) is made by
a function here and read back by its prefix with ``grouped``.

    read, planned.<reader>, expired                    the readers
    written.<output|dead_letter>, write_refused.<...>  the writers (acknowledged, refused)
    commit.spans_settled, commit.spans_committed, ...  the commit step
    enriched, llm_*, *_tokens, cost_micro_usd, ...     the enrich step
    dead_letter.<stage>, halted.<kind>, safety.*       failures, stops, the safety layer
    cache_*, cascade.*, replay.*, shadow[<name>].*     the response cache, the cascade,
                                                       a replay, shadow providers
"""

from __future__ import annotations

from collections.abc import Callable, Mapping


def _family(prefix: str) -> Callable[[str], str]:
    """The names ``<prefix><part>``: one counter per stage, reason, field..."""

    def name(part: str) -> str:
        return f"{prefix}{part}"

    return name


NAMESPACE = "llm_enrich"
STOP_REASONS = "stop_reasons"  # a string set, not a counter: why the run stopped

# the readers
READ = "read"
EXPIRED = "expired"  # left the topic by retention before it was read
REPLAY_OUTPUTS_SCANNED = "replay.outputs_scanned"  # a replay's reader of the output topic


# records a reader (named by its read counter) is to read: the progress line's ETA
planned = _family("planned.")


# the writers, by their role: writing the ``OUTPUT_TOPIC`` or the ``DEAD_LETTER_TOPIC``
OUTPUT_TOPIC, DEAD_LETTER_TOPIC = "output", "dead_letter"


written = _family("written.")
write_refused = _family("write_refused.")
WRITTEN_OUTPUT = written(OUTPUT_TOPIC)
WRITTEN_DEAD_LETTER = written(DEAD_LETTER_TOPIC)

# the commit step: commits that moved the group's offset forward, or found it ahead (another
# run's); the spans (records, gaps) settled, and those a commit covered
COMMITS, COMMITS_BEHIND = "commits", "commits_behind_another_run"
SPANS_SETTLED, SPANS_COMMITTED = "commit.spans_settled", "commit.spans_committed"

# the enrich step
ENRICHED = "enriched"
ABANDONED = "abandoned"  # waiting when a clean stop came: left uncommitted
LLM_CALLS = "llm_calls"
LLM_REASKS = "llm_reasks"
LLM_FAILED_CALLS = "llm_failed_calls"
PROMPT_TOKENS = "prompt_tokens"
COMPLETION_TOKENS = "completion_tokens"
CACHED_PROMPT_TOKENS = "cached_prompt_tokens"
REASONING_TOKENS = "reasoning_tokens"
USAGE_ESTIMATED_CALLS = "usage_estimated_calls"
COST_MICRO_USD = "cost_micro_usd"
REPAIRED = "repaired"
DEFAULTED = "defaulted"
BATCH_ANSWERS = "batch_answers"
BATCH_FAILED = "batch_failed"
BATCHES_SUBMITTED = "batches_submitted"
BATCHES_RESUMED = "batches_resumed"
PACK_CALLS = "pack_calls"
PACK_SHARES = "pack_shares"
PACK_ALONE = "pack_alone"
CAPACITY_WAIT_MS = "capacity_wait_ms"
THROTTLED_MS = "throttled_ms"
# the name Beam's remote model handlers use, which Dataflow's autoscaler reads
THROTTLING_SECONDS = "cumulativeThrottlingSeconds"
DEAD_LETTER_UNENCODABLE = "dead_letter_unencodable"
REPAIR = "repair."  # by kind of repair
DEFAULTED_FIELD = "defaulted."  # by field
repair = _family(REPAIR)
defaulted = _family(DEFAULTED_FIELD)


# the response cache: hits, misses, failed operations; what the hits saved
CACHE_HITS, CACHE_MISSES, CACHE_ERRORS = "cache_hits", "cache_misses", "cache_errors"
CACHE_SAVED_CALLS, CACHE_SAVED_TOKENS = "cache_saved_calls", "cache_saved_tokens"
CACHE_SAVED_MICRO_USD = "cache_saved_micro_usd"

# the cascade
CASCADE_COST_MICRO_USD = "cascade.cost_micro_usd"
CASCADE_ALL_STRONG_MICRO_USD = "cascade.all_strong_micro_usd"
CASCADE_ANSWERED = "cascade.answered."
CASCADE_ESCALATED = "cascade.escalated."


def cascade_answered(index: int, step: str) -> str:
    return f"{CASCADE_ANSWERED}{index}.{step}"


def cascade_escalated(index: int, step: str, reason: str) -> str:
    return f"{CASCADE_ESCALATED}{index}.{step}.{reason}"


# failures and stops
DEAD_LETTER = "dead_letter."  # by stage
HALTED = "halted."  # by what stopped the run: a guard's name, "systemic" or "outage"
SAFETY_FLAGGED = "safety.flagged"
SAFETY_FLAG = "safety.flag."  # by kind of marker
SAFETY_GUARDED = "safety.guarded."  # by error class


dead_letter = _family(DEAD_LETTER)
safety_flag = _family(SAFETY_FLAG)
safety_guarded = _family(SAFETY_GUARDED)


def halted(reason: str) -> str:
    """``reason`` is ``<kind>: <detail>``; counted by its kind."""
    return f"{HALTED}{reason.split(':')[0]}"


# a replay
REPLAY_SELECTED = "replay.selected"
REPLAY_OUTPUTS_WITHOUT_SOURCE = "replay.outputs_without_source"
REPLAY_SKIPPED = "replay.skipped."  # by reason


replay_skipped = _family(REPLAY_SKIPPED)


# shadow providers: per provider, and the shadow topic's writer
SHADOW_WRITTEN = "shadow.written"
SHADOW_WRITE_FAILED = "shadow.write_failed"
SHADOW_WRITE_DROPPED = "shadow.write_dropped"


def shadow(name: str, what: str) -> str:
    """A shadow provider's count: ``sampled``, ``busy``, ``unfinished``, ``unavailable``,
    or a comparison's (``transforms.core.calls.shadow_compare``)."""
    return f"shadow[{name}].{what}"


def shadow_parts(key: str) -> tuple[str, str] | None:
    """(provider, what) of a counter named by ``shadow``, else None."""
    if not key.startswith("shadow[") or "]." not in key:
        return None
    name, what = key[len("shadow[") :].rsplit("].", 1)
    return name, what


def grouped(counters: Mapping[str, int], prefix: str) -> dict[str, int]:
    """Counters named ``<prefix><key>``, by key, sorted."""
    counts = sorted(counters.items())
    return {k.removeprefix(prefix): v for k, v in counts if k.startswith(prefix)}
