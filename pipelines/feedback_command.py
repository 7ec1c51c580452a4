"""``llm-enrich feedback``'s flow: checks, drain or follow, files, drift and exit code.

Exit codes: 0 done (no window below its thresholds; or --follow stopped by a signal);
1 drift (drain: a window fell below feedback.min_scores, one line on stderr); 2 a bad task,
option or --eval-json, or a launch check failed (broker, topics); 3 the broker stopped
answering while reading (systemic).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from pipelines import exit_codes
from pipelines.eval_files import load_eval_result
from pipelines.feedback import Collector, checked_events, drain_records, follow_records
from transforms.core.eval.result import EvalResult
from transforms.core.feedback.compare import compare_with_eval
from transforms.core.feedback.report import feedback_report_html, result_lines
from transforms.core.feedback.result import FeedbackResult, new_alerts
from transforms.core.job import Job

__all__ = ["run_feedback"]

log = logging.getLogger("llm_enrich")


def _launch_problem(job: Job) -> str | None:
    from pipelines.preflight import _kafka_logs_quiet, kafka_problem
    from transforms.kafka.admin import existing_topics

    assert job.task.feedback is not None
    kafka = job.task.kafka
    with _kafka_logs_quiet():
        problem = kafka_problem(kafka)
        if problem:
            return problem
        existing = existing_topics(kafka)
    for key, topic in (
        ("feedback.topic", job.task.feedback.topic),
        ("kafka.output_topic", kafka.output_topic),
    ):
        if topic not in existing:
            return f"{key}: topic {topic!r} does not exist"
    return None


def _finish(
    collector: Collector,
    eval_result: EvalResult | None,
    json_path: str | None,
    report_path: str | None,
    follow_alerts: int = 0,
) -> FeedbackResult:
    result = collector.result(follow_alerts)
    if eval_result is not None:
        result = dataclasses.replace(
            result, eval_comparison=compare_with_eval(result.groups, eval_result)
        )
    if json_path:
        Path(json_path).write_text(json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n")
    if report_path:
        Path(report_path).write_text(feedback_report_html(result), encoding="utf-8")
    return result


def run_feedback(
    job: Job,
    *,
    follow: bool,
    json_path: str | None,
    report_path: str | None,
    eval_json: str | None,
    chunk_size: int,
    flush_every_s: float,
    fail: Callable[[str, int], NoReturn],
) -> int:
    where = job.task.source_path
    if job.task.feedback is None:
        fail(f"{where}: the task has no feedback section (README: Feedback)", exit_codes.USAGE)
    try:
        eval_result = load_eval_result(eval_json, "the eval result") if eval_json else None
    except ValueError as exc:
        fail(str(exc), exit_codes.USAGE)
    problem = _launch_problem(job)
    if problem:
        fail(f"{where}: {problem}", exit_codes.USAGE)
    collector = Collector(job, chunk_size)
    alerts = 0
    try:
        if not follow:
            for event in checked_events(job, drain_records(job)):
                if event is not None:
                    collector.add(event)
            collector.flush()
        else:
            alerts = _follow(job, collector, eval_result, json_path, report_path, flush_every_s)
    except Exception as exc:  # kafka-python errors, a stalled partition: not the events'
        log.debug("reading failed", exc_info=True)
        fail(f"reading feedback failed: {type(exc).__name__}: {exc}", exit_codes.SYSTEMIC)
    result = _finish(collector, eval_result, json_path, report_path, alerts)
    for line in result_lines(result):
        click.echo(line)
    if json_path:
        click.echo(f"json: {json_path}")
    if report_path:
        click.echo(f"report: {report_path}")
    found = result.alerts
    if follow or not found:
        return exit_codes.OK
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    click.echo(f"llm-enrich: drift: {found[0].line()}{more}", err=True)
    return exit_codes.UNSETTLED


def _follow(
    job: Job,
    collector: Collector,
    eval_result: EvalResult | None,
    json_path: str | None,
    report_path: str | None,
    flush_every_s: float,
) -> int:
    """Read until SIGINT/SIGTERM; every ``flush_every_s``, join what arrived, log each
    window newly below a threshold (``drift`` counter) and rewrite the files."""
    stopping = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stopping.set())
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    seen: set[Any] = set()
    alerts, last = 0, time.monotonic()
    try:
        for event in checked_events(job, follow_records(job, stopping.is_set)):
            if event is not None:
                collector.add(event)
            if time.monotonic() - last < flush_every_s:
                continue
            last = time.monotonic()
            collector.flush()
            for alert in new_alerts(collector.result(), seen):
                alerts += 1
                log.warning("drift: %s", alert.line())
            _finish(collector, eval_result, json_path, report_path, alerts)
        collector.flush()
        for alert in new_alerts(collector.result(), seen):
            alerts += 1
            log.warning("drift: %s", alert.line())
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return alerts
