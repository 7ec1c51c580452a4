"""``replay --dry-run``: what a replay would do, computed without writing or committing."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from transforms.beam.stage import replay_group
from transforms.core.envelope import output_source
from transforms.core.job import Job
from transforms.core.run.offsets import limit_ranges
from transforms.core.run.replay import ReplayFilter, decide
from transforms.kafka.reader import read_range, snapshot_ranges

__all__ = ["ReplayPlan", "plan_replay"]


@dataclass
class ReplayPlan:
    selected: Counter[tuple[str, str]] = field(default_factory=Counter)  # (stage, error class)
    skipped: Counter[str] = field(default_factory=Counter)  # reason

    def lines(self) -> list[str]:
        out = [f"would replay {sum(self.selected.values())} dead letters:"]
        for (stage, error_class), count in sorted(self.selected.items()):
            out.append(f"  {count:6d}  stage={stage}  error_class={error_class}")
        out.append(f"would skip {sum(self.skipped.values())}:")
        for reason, count in sorted(self.skipped.items()):
            out.append(f"  {count:6d}  {reason}")
        return out


def plan_replay(job: Job, selection: ReplayFilter, limit: int | None) -> ReplayPlan:
    kafka = job.task.kafka
    sources = (
        output_source(output.headers)
        for range_ in snapshot_ranges(kafka, kafka.output_topic, None)
        for output in read_range(kafka, range_)
    )
    enriched = {source for source in sources if source is not None}
    plan = ReplayPlan()
    seen: set[tuple[str, int, int]] = set()
    ranges = snapshot_ranges(kafka, kafka.dead_letter_topic, replay_group(job.task))
    for range_ in limit_ranges(ranges, limit):
        for dead_letter in read_range(kafka, range_):
            decision = decide(dead_letter, selection, enriched)
            record = decision.record
            if record is not None and (record.topic, record.partition, record.offset) in seen:
                plan.skipped["duplicate"] += 1  # the replay keeps one dead letter per original
            elif record is not None and decision.letter is not None:
                seen.add((record.topic, record.partition, record.offset))
                plan.selected[(decision.letter["stage"], decision.letter["error_class"])] += 1
            else:
                plan.skipped[decision.skip or "unknown"] += 1
    return plan
