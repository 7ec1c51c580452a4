"""The run summary: every record accounted for, from the pipeline's own counters."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from transforms.beam.metrics import NAMESPACE

__all__ = ["RunSummary", "execute", "summarize"]


@dataclass
class RunSummary:
    counters: dict[str, int] = field(default_factory=dict)
    wall_time_s: float = 0.0

    def get(self, name: str) -> int:
        return self.counters.get(name, 0)

    def grouped(self, prefix: str) -> dict[str, int]:
        """Counters named ``<prefix><key>``, by key, sorted."""
        counts = sorted(self.counters.items())
        return {k.removeprefix(prefix): v for k, v in counts if k.startswith(prefix)}

    @property
    def dead_by_stage(self) -> dict[str, int]:
        return self.grouped("dead_letter.")

    @property
    def skipped_by_reason(self) -> dict[str, int]:
        return self.grouped("replay.skipped.")

    @property
    def unaccounted(self) -> int:
        """Records read that ended neither as an output nor as a dead letter (nor, in a
        replay, were skipped on purpose)."""
        settled = self.get("written.output") + self.get("written.dead_letter")
        return self.get("read") - settled - sum(self.skipped_by_reason.values())

    @property
    def stop_reasons(self) -> list[str]:
        """Why the run stopped early, if a guard tripped (see policy in the README)."""
        explain = {
            "budget": "policy.budget_usd was reached",
            "dead_letter_ratio": "the dead-letter ratio went over policy.max_dead_letter_ratio",
        }
        return [
            f"{explain.get(k, k)}; {v} records left for the next run"
            for k, v in self.grouped("halted.").items()
        ]

    def lines(self) -> list[str]:
        read = self.get("read")
        rate = read / self.wall_time_s if self.wall_time_s else 0.0
        dead = ", ".join(f"{k}={v}" for k, v in self.dead_by_stage.items()) or "none"
        return [
            f"records read        {read}",
            f"enriched (written)  {self.get('written.output')}",
            f"dead-lettered       {self.get('written.dead_letter')}  (by stage: {dead})",
            f"not settled         {self.unaccounted}  (offsets not committed; re-read next run)",
            f"LLM calls           {self.get('llm_calls')}  (failed {self.get('llm_failed_calls')},"
            f" re-asks {self.get('llm_reasks')}, answers repaired {self.get('repaired')})",
            f"tokens              prompt {self.get('prompt_tokens')},"
            f" completion {self.get('completion_tokens')}",
            f"cost                ${self.get('cost_micro_usd') / 1_000_000:.6f}",
            f"wall time           {self.wall_time_s:.1f} s  ({rate:.2f} records/s)",
        ] + [f"STOPPED EARLY: {reason}" for reason in self.stop_reasons]

    def replay_lines(self) -> list[str]:
        skipped = ", ".join(f"{k}={v}" for k, v in self.skipped_by_reason.items()) or "none"
        return [
            f"dead letters read   {self.get('read')}",
            f"replayed            {self.get('replay.selected')}",
            f"skipped             {sum(self.skipped_by_reason.values())}  (by reason: {skipped})",
            *self.lines()[1:],
        ]


def summarize(result: Any, wall_time_s: float) -> RunSummary:
    counters: dict[str, int] = {}
    for metric in result.metrics().query()["counters"]:
        if metric.key.metric.namespace != NAMESPACE:
            continue
        name = metric.key.metric.name
        value = metric.committed if metric.committed is not None else metric.attempted
        counters[name] = counters.get(name, 0) + int(value)
    return RunSummary(counters, wall_time_s)


def execute(pipeline: Any) -> RunSummary:
    """Run a pipeline to the end and account for it."""
    started = time.monotonic()
    result = pipeline.run()
    result.wait_until_finish()
    return summarize(result, time.monotonic() - started)
