"""The run summary: every record accounted for, from the pipeline's own counters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipelines import exit_codes
from pipelines.cascade_summary import cascade_lines
from pipelines.shadow_summary import shadow_lines
from transforms.core import counters
from transforms.core.counters import NAMESPACE, STOP_REASONS
from transforms.core.ledger.record import cache_hit_share
from transforms.core.run.outcome import RunOutcome
from transforms.core.run.tally import Tally

__all__ = ["RunSummary", "counts_of", "summarize"]


@dataclass
class RunSummary(RunOutcome):
    """The run's outcome (``transforms.core.run.outcome``) as the CLI shows it: lines, and
    the exit code of its verdict."""

    wall_time_s: float = 0.0

    @property
    def dead_by_stage(self) -> dict[str, int]:
        return self.grouped(counters.DEAD_LETTER)

    @property
    def exit_code(self) -> int:
        return exit_codes.BY_VERDICT[self.verdict]

    def lines(self) -> list[str]:
        read = self.get(counters.READ)
        rate = read / self.wall_time_s if self.wall_time_s else 0.0
        dead = ", ".join(f"{k}={v}" for k, v in self.dead_by_stage.items()) or "none"
        lines = [
            f"records read        {read}",
            f"enriched (written)  {self.get(counters.WRITTEN_OUTPUT)}",
            f"dead-lettered       {self.get(counters.WRITTEN_DEAD_LETTER)}  (by stage: {dead})",
            f"not settled         {self.unaccounted}  (offsets not committed; re-read next run)",
            f"LLM calls           {self.get(counters.LLM_CALLS)}  (failed "
            f"{self.get(counters.LLM_FAILED_CALLS)}, re-asks {self.get(counters.LLM_REASKS)}, "
            f"answers repaired {self.get(counters.REPAIRED)})",
            *self.token_lines(),
            self.cost_line(),
            f"wall time           {self.wall_time_s:.1f} s  ({rate:.2f} records/s)",
            *self.capacity_lines(),
        ]
        lines += self.answer_lines()
        lines += self.safety_lines()
        lines += self.cache_lines()
        lines += cascade_lines(self)
        lines += self.batch_lines()
        lines += self.pack_lines()
        lines += shadow_lines(self.counters)
        if self.uncommitted:
            lines.append(
                f"not committed       {self.uncommitted}  (settled, but no commit covers them "
                "yet: read again next run)"
            )
        if self.get(counters.ABANDONED):
            lines.append(
                f"abandoned on stop   {self.get(counters.ABANDONED)}  (waiting for a batch, or "
                "every provider was down; not committed, read again next run)"
            )
        if self.get(counters.EXPIRED):
            lines.append(
                f"expired             {self.get(counters.EXPIRED)}  (left the topic by retention "
                "before this group read them)"
            )
        return lines + [f"STOPPED EARLY: {reason}" for reason in self.stop_reasons]

    def cost_line(self) -> str:
        """The run's cost, and per record settled (written or dead-lettered)."""
        usd = self.get(counters.COST_MICRO_USD) / 1_000_000
        settled = self.get(counters.WRITTEN_OUTPUT) + self.get(counters.WRITTEN_DEAD_LETTER)
        per_record = f"  (${usd / settled:.6f} per record settled)" if settled else ""
        return f"cost                ${usd:.6f}{per_record}"

    def token_lines(self) -> list[str]:
        """Tokens over every attempt: prompt (cached apart, and the cache-hit share),
        completion (reasoning apart), and calls whose usage is an estimate."""
        prompt, cached = self.get(counters.PROMPT_TOKENS), self.get(counters.CACHED_PROMPT_TOKENS)
        share = cache_hit_share(cached, prompt)
        lines = [
            f"tokens              prompt {prompt} (cached {cached}, cache-hit share "
            f"{share:.1%}), completion {self.get(counters.COMPLETION_TOKENS)} (reasoning "
            f"{self.get(counters.REASONING_TOKENS)})"
        ]
        estimated = self.get(counters.USAGE_ESTIMATED_CALLS)
        if estimated:
            lines.append(
                f"usage estimated     {estimated} calls  (the provider reported no usage: "
                "their tokens and cost are ESTIMATES, about 4 characters a token)"
            )
        return lines

    def capacity_lines(self) -> list[str]:
        """How long calls queued for provider capacity (not counted in record deadlines)."""
        waited_s = self.get(counters.CAPACITY_WAIT_MS) / 1000
        if waited_s < 0.1:
            return []
        calls = max(1, self.get(counters.LLM_CALLS))
        return [
            f"capacity wait       {waited_s:.1f} s in all, {waited_s / calls:.2f} s a call "
            "(queued for a provider slot or rate limit; not counted in record deadlines)"
        ]

    def answer_lines(self) -> list[str]:
        """Repairs by kind, and records accepted with defaulted fields (output.on_invalid)."""
        lines = []
        repairs = self.grouped(counters.REPAIR)
        if repairs:
            lines.append("repairs by kind     " + ", ".join(f"{k}={v}" for k, v in repairs.items()))
        if self.get(counters.DEFAULTED):
            fields = ", ".join(
                f"{k}={v}" for k, v in self.grouped(counters.DEFAULTED_FIELD).items()
            )
            count = self.get(counters.DEFAULTED)
            lines.append(f"defaulted fields    {count} records  (by field: {fields})")
        return lines

    def safety_lines(self) -> list[str]:
        """Records flagged for injection markers and records the guard refused, if any."""
        kinds = ", ".join(f"{k}={v}" for k, v in self.grouped(counters.SAFETY_FLAG).items())
        guarded = self.grouped(counters.SAFETY_GUARDED)
        if not (self.get(counters.SAFETY_FLAGGED) or guarded):
            return []
        refused = ", ".join(f"{k}={v}" for k, v in guarded.items()) or "none"
        return [
            f"safety: flagged     {self.get(counters.SAFETY_FLAGGED)}  (enriched with an "
            f"llm_enrich.injection header; markers: {kinds or 'none'})",
            f"safety: guarded     {sum(guarded.values())}  (dead-lettered, stage guard: {refused})",
        ]

    def cache_lines(self) -> list[str]:
        """The response cache's line, when it was on: hits, misses, what the hits saved."""
        hits, misses, errors = (self.get(f"cache_{k}") for k in ("hits", "misses", "errors"))
        if not (hits or misses or errors):
            return []
        failed = f", cache errors {errors} (asked the providers instead)" if errors else ""
        return [
            f"response cache      hits {hits}, misses {misses}{failed}",
            f"  saved by hits     calls {self.get(counters.CACHE_SAVED_CALLS)}, tokens "
            f"{self.get(counters.CACHE_SAVED_TOKENS)}, cost "
            f"${self.get(counters.CACHE_SAVED_MICRO_USD) / 1_000_000:.6f}",
        ]

    def batch_lines(self) -> list[str]:
        """Batch providers (mode: batch): answers, failed items, batches; cost above is
        at the batch price (pricing.batch_discount)."""
        submitted, resumed = (
            self.get(counters.BATCHES_SUBMITTED),
            self.get(counters.BATCHES_RESUMED),
        )
        answers, failed = self.get(counters.BATCH_ANSWERS), self.get(counters.BATCH_FAILED)
        if not (submitted or resumed or answers or failed):
            return []
        return [
            f"batch mode          answers {answers}, failed or expired {failed} (fell back);"
            f" batches submitted {submitted}, resumed {resumed}"
        ]

    def pack_lines(self) -> list[str]:
        """Calls several records shared (prompt.records_per_call), and records asked alone
        because their pack held no usable answer for them."""
        calls, shares = self.get(counters.PACK_CALLS), self.get(counters.PACK_SHARES)
        alone = self.get(counters.PACK_ALONE)
        if not (calls or alone):
            return []
        mean = shares / calls if calls else 0.0
        return [
            f"shared calls        {calls} for {shares} record answers ({mean:.1f} a call);"
            f" asked alone {alone} (no usable answer for them in their pack)"
        ]

    def mode_lines(self, mode: str) -> list[str]:
        """The lines of a ``run`` or of a ``replay``."""
        return self.lines() if mode == "run" else self.replay_lines()

    def replay_lines(self) -> list[str]:
        skipped = ", ".join(f"{k}={v}" for k, v in self.skipped_by_reason.items()) or "none"
        return [
            f"dead letters read   {self.get(counters.READ)}",
            f"replayed            {self.get(counters.REPLAY_SELECTED)}",
            f"skipped             {sum(self.skipped_by_reason.values())}  (by reason: {skipped})",
            *self.lines()[1:],
        ]


def summarize(result: Any, wall_time_s: float, *, tally: Tally | None = None) -> RunSummary:
    """The run's counts: the run's tally in this process when the whole pipeline ran here
    (exact), else the runner's Beam metrics."""
    if tally is not None:
        return RunSummary(tally.counts(), tally.reasons(), wall_time_s=wall_time_s)
    counters, reasons = counts_of(result.metrics())
    return RunSummary(counters, reasons, wall_time_s=wall_time_s)


def counts_of(results: Any) -> tuple[dict[str, int], list[str]]:
    """The ``llm_enrich`` counters (summed over steps) and stop reasons in Beam's
    ``MetricResults`` (committed values where the runner has them, else attempted)."""
    metrics = results.query()
    counters: dict[str, int] = {}
    for metric in metrics["counters"]:
        if metric.key.metric.namespace != NAMESPACE:
            continue
        name = metric.key.metric.name
        value = metric.committed if metric.committed is not None else metric.attempted
        counters[name] = counters.get(name, 0) + int(value or 0)
    reasons: set[str] = set()
    for metric in metrics.get("string_sets", []):
        if (metric.key.metric.namespace, metric.key.metric.name) == (NAMESPACE, STOP_REASONS):
            value = metric.committed if metric.committed is not None else metric.attempted
            reasons |= set(value or ())
    return counters, sorted(reasons)
