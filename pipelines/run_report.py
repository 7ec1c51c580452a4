"""``run --report`` / ``replay --report``: where the output and dead-letter topics ended
before the run (``topic_marks``), then, after it, the records written since then read back
and folded into ``RunFacts``, and the page written.

Reading back (rather than sampling in the workers) works the same on every runner,
Dataflow included, and costs constant memory. A second writer on the same topics during
the run would be counted too; the report says how many records it read back.
"""

from __future__ import annotations

import time
from pathlib import Path

from pipelines.summary import RunSummary
from transforms.core.envelope import header_values, read_dead_letter
from transforms.core.job import Job
from transforms.core.report.run_facts import RunFacts
from transforms.core.report.run_report import RunInfo, run_report_html
from transforms.core.run.offsets import PartitionRange
from transforms.kafka.reader import read_range, snapshot_ranges

__all__ = ["Marks", "topic_marks", "write_run_report"]

Marks = dict[str, dict[int, int]]  # topic -> partition -> end offset before the run


def topic_marks(job: Job) -> Marks:
    kafka = job.task.kafka
    marks: Marks = {}
    for topic in (kafka.output_topic, kafka.dead_letter_topic):
        try:
            ranges = snapshot_ranges(kafka, topic, None, timeout_s=5)
        except RuntimeError:  # no such topic yet: everything in it will be this run's
            ranges = []
        marks[topic] = {r.partition: r.end or 0 for r in ranges}
    return marks


def _since(job: Job, topic: str, marks: Marks) -> list[PartitionRange]:
    ranges = snapshot_ranges(job.task.kafka, topic, None, timeout_s=5)
    before = marks.get(topic, {})
    return [
        PartitionRange(topic, r.partition, max(r.start, before.get(r.partition, 0)), r.end)
        for r in ranges
    ]


def collect(job: Job, marks: Marks, started_s: float, ended_s: float) -> RunFacts:
    kafka = job.task.kafka
    facts = RunFacts(int(started_s * 1000), int(ended_s * 1000))
    for range_ in _since(job, kafka.output_topic, marks):
        for record in read_range(kafka, range_):
            facts.add_output(record.timestamp_ms, header_values(record.headers))
    for range_ in _since(job, kafka.dead_letter_topic, marks):
        for record in read_range(kafka, range_):
            try:
                letter = read_dead_letter(record.value or b"")
            except Exception:  # not a dead letter of ours: counted, not fatal
                facts.unreadable += 1
                continue
            facts.add_dead_letter(record.timestamp_ms, letter)
    return facts


def write_run_report(
    job: Job, summary: RunSummary, marks: Marks, started_s: float, path: str, mode: str
) -> None:
    facts = collect(job, marks, started_s, time.time())
    lines = summary.mode_lines(mode)
    info = RunInfo(
        job=job.name,
        mode=mode,
        prompt_hash=job.prompt.hash,
        counters=dict(summary.counters),
        wall_time_s=summary.wall_time_s,
        stop_reasons=summary.stop_reasons,
        summary_lines=lines,
        discounts={
            p.name: {"batch": p.pricing.batch_discount, "flex": p.pricing.flex_discount}
            for p in job.task.providers
            if p.pricing is not None
        },
    )
    Path(path).write_text(run_report_html(info, facts), encoding="utf-8")
