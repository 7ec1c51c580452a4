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

from collections.abc import Mapping

NAMESPACE = "llm_enrich"
STOP_REASONS = "stop_reasons"  # a string set, not a counter: why the run stopped

# the readers
READ = "read"
EXPIRED = "expired"  # left the topic by retention before it was read
REPLAY_OUTPUTS_SCANNED = "replay.outputs_scanned"  # a replay's reader of the output topic


def planned(reader: str) -> str:
    """Records a reader (named by its read counter) is to read: the progress line's ETA."""
    return f"planned.{reader}"


# the writers, by the topic they write: ``OUTPUT_TOPIC`` or ``DEAD_LETTER_TOPIC``
OUTPUT_TOPIC, DEAD_LETTER_TOPIC = "output", "dead_letter"


def written(kind: str) -> str:
    return f"written.{kind}"


def write_refused(kind: str) -> str:
    return f"write_refused.{kind}"


WRITTEN_OUTPUT = written(OUTPUT_TOPIC)
WRITTEN_DEAD_LETTER = written(DEAD_LETTER_TOPIC)

# the commit step
COMMITS = "commits"
COMMITS_BEHIND = "commits_behind_another_run"
SPANS_SETTLED = "commit.spans_settled"
SPANS_COMMITTED = "commit.spans_committed"

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


def repair(kind: str) -> str:
    return f"{REPAIR}{kind}"


def defaulted(field: str) -> str:
    return f"{DEFAULTED_FIELD}{field}"


# the response cache
CACHE_HITS = "cache_hits"
CACHE_MISSES = "cache_misses"
CACHE_ERRORS = "cache_errors"
CACHE_SAVED_CALLS = "cache_saved_calls"
CACHE_SAVED_TOKENS = "cache_saved_tokens"
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


def dead_letter(stage: str) -> str:
    return f"{DEAD_LETTER}{stage}"


def halted(reason: str) -> str:
    """``reason`` is ``<kind>: <detail>``; counted by its kind."""
    return f"{HALTED}{reason.split(':')[0]}"


def safety_flag(kind: str) -> str:
    return f"{SAFETY_FLAG}{kind}"


def safety_guarded(error_class: str) -> str:
    return f"{SAFETY_GUARDED}{error_class}"


# a replay
REPLAY_SELECTED = "replay.selected"
REPLAY_OUTPUTS_WITHOUT_SOURCE = "replay.outputs_without_source"
REPLAY_SKIPPED = "replay.skipped."  # by reason


def replay_skipped(reason: str) -> str:
    return f"{REPLAY_SKIPPED}{reason}"


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
