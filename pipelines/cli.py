"""``llm-enrich``: run a task, load sample data, look at what a run produced.

Exit codes: see ``pipelines.exit_codes`` (0 settled, 1 unsettled, 2 bad task or launch
check, 3 systemic fault, 4 guard, 70 internal error).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click

from pipelines import exit_codes
from transforms.core.config.cache import CacheSpec
from transforms.core.config.task import load_task, with_records_per_call
from transforms.core.errors import TaskConfigError
from transforms.core.job import Job, compile_job
from transforms.core.run.replay import ReplayFilter

log = logging.getLogger("llm_enrich")


def _fail(message: str, code: int = exit_codes.USAGE) -> NoReturn:
    click.echo(f"llm-enrich: error: {message}", err=True)
    sys.exit(code)


def _launch_checks(job: Job, *, dead_letter_topic_needed: bool = True) -> None:
    from pipelines.preflight import preflight

    problems = preflight(job.task, dead_letter_topic_needed=dead_letter_topic_needed)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        _fail(f"{job.task.source_path}: {problems[0]}{more}")


def _execute(
    build: Any,
    beam_args: tuple[str, ...],
    progress_every_s: float | None,
    workers: int = 1,
    flink: str | None = None,
) -> Any:
    """Run a pipeline on our own Prism job server, unless the user chose a runner; with
    ``workers`` > 1, its SDK workers are processes of a local worker pool; with ``flink``
    (the job's family, ``pipelines.flink_jobs.job_family``), on the local Flink cluster
    (``pipelines.runner.flink_workers``), after cancelling the family's jobs whose launcher
    is gone.
    ``build(endpoint, pool, extra_args)`` builds the pipeline; ``extra_args`` go before the
    user's."""
    from pipelines.execute import execute
    from pipelines.flink_faults import cluster_fault
    from pipelines.flink_jobs import LiveCounts, OrphanError, clear_orphans
    from pipelines.runner import (
        FlinkNotReady,
        PrismNotInstalled,
        flink_job_endpoint,
        flink_workers,
        prism_server,
        worker_pool,
    )

    _quiet_job_message_stream()
    try:
        if flink:
            with flink_workers(beam_args, flink) as flink_args:
                clear_orphans(flink, lambda line: click.echo(f"llm-enrich: {line}", err=True))
                pipeline = build(None, None, flink_args)[0]
                return execute(
                    pipeline,
                    stop_on_signals=True,
                    progress_every_s=progress_every_s,
                    live_counts=LiveCounts(_job_name(pipeline)),
                )
        if any(arg.startswith("--runner") for arg in beam_args):
            return execute(
                build(None, None)[0], stop_on_signals=True, progress_every_s=progress_every_s
            )
        with prism_server() as endpoint:
            pool = worker_pool() if workers > 1 else contextlib.nullcontext()
            with pool as started:
                return execute(
                    build(endpoint, started)[0],
                    stop_on_signals=True,
                    progress_every_s=progress_every_s,
                )
    except (PrismNotInstalled, FlinkNotReady, OrphanError) as exc:
        _fail(str(exc))
    except Exception as exc:  # the pipeline failed: a defect, or an environment Beam hit
        log.debug("pipeline failed", exc_info=True)
        fault = cluster_fault(exc, flink_job_endpoint()) if flink else None
        if fault is not None:  # the cluster, not the pipeline: fix it and run again
            click.echo(
                f"llm-enrich: stopped: systemic: {fault}; records not committed are read again "
                "by the next run (deploy/flink.sh start starts what is missing)",
                err=True,
            )
            sys.exit(exit_codes.SYSTEMIC)
        last = str(exc).strip().splitlines()[-1:] or [type(exc).__name__]
        _fail(f"the pipeline failed: {last[0][:500]} (-v shows more)", exit_codes.INTERNAL)


def _quiet_job_message_stream() -> None:
    """Beam's thread that reads a portable job's messages prints a traceback when the job
    service goes away; the launcher says what happened in one line instead (-v logs it)."""
    default = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.thread is not None and args.thread.name == "wait_until_finish_read":
            trace = (args.exc_type, args.exc_value, args.exc_traceback)
            log.debug("the job's message stream ended", exc_info=trace)  # type: ignore[arg-type]
            return
        default(args)

    threading.excepthook = hook


def _job_name(pipeline: Any) -> str:
    from apache_beam.options.pipeline_options import GoogleCloudOptions

    return str(pipeline.options.view_as(GoogleCloudOptions).job_name)


def _job(task_path: str, *, no_cache: bool = False, calibrating: bool = False) -> Job:
    try:
        task = load_task(task_path, calibrating=calibrating)
        if no_cache:
            task = task.model_copy(update={"cache": CacheSpec(backend="off")})
        return compile_job(task)
    except TaskConfigError as exc:
        _fail(str(exc))


def _quiet_logs(*, verbose: bool) -> None:
    """Our own warnings (the first failures of each stage) always; the libraries' logs and
    tracebacks with -v."""
    level = logging.DEBUG if verbose else logging.ERROR
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("llm_enrich").setLevel(logging.DEBUG if verbose else logging.WARNING)
    if not verbose:
        for name in ("apache_beam", "kafka", "httpx", "openai", "root"):
            logging.getLogger(name).setLevel(logging.ERROR)
    else:  # -v: our debug lines and tracebacks, the libraries at INFO
        for name in ("apache_beam", "kafka", "httpx", "httpcore", "openai"):
            logging.getLogger(name).setLevel(logging.INFO)


TASK = click.option(
    "--task", "task_path", required=True, type=click.Path(dir_okay=False), help="Task YAML file."
)


def _progress_options(command: Any) -> Any:
    command = click.option(
        "--no-progress", is_flag=True, help="No progress line while the pipeline runs."
    )(command)
    return click.option(
        "--progress-every",
        type=click.FloatRange(min=0.5),
        default=10.0,
        show_default=True,
        help="Seconds between plain progress lines on stderr when stdout is not a terminal "
        "(on a terminal the line is live).",
    )(command)


REPORT = click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False),
    help="Write a self-contained HTML report of the run to this file at the end.",
)


RUNNER = click.option(
    "--runner",
    metavar="NAME",
    help="Where the pipeline runs. prism (the default): a Prism job server of its own. "
    "flink: the local Flink cluster started by deploy/flink.sh (Beam's job server on "
    "127.0.0.1:$LLM_ENRICH_FLINK_JOB_PORT, default 18099; Python workers on the "
    "TaskManagers). Any other name goes to Beam as --runner=NAME.",
)


def _runner(runner: str | None, beam_args: tuple[str, ...]) -> tuple[bool, tuple[str, ...]]:
    """``--runner``: whether it is the local Flink cluster; else the Beam arguments with it."""
    flink = (runner or "").lower() == "flink"
    if runner and not flink and runner.lower() != "prism":
        beam_args = (f"--runner={runner}", *beam_args)
    return flink, beam_args


NO_CACHE = click.option(
    "--no-cache",
    is_flag=True,
    help="Ask the providers for every record: neither read nor write the response cache.",
)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Show Beam and client logs.")
def main(verbose: bool) -> None:
    """Enrich Kafka records with LLMs: few-shot prompts, Avro-validated answers, dead letters."""
    _quiet_logs(verbose=verbose)


@main.command(context_settings={"ignore_unknown_options": True})
@TASK
@click.option(
    "--follow", is_flag=True, help="Keep reading new records until SIGINT/SIGTERM (unbounded)."
)
@click.option("--show", default=0, help="Print this many enriched records after the run.")
@click.option(
    "--allow-incompatible", is_flag=True, help="Run even if the output schema breaks compatibility."
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Local worker processes (Prism only): records are dealt over this many Python "
    "processes, for more than one core. 1: everything runs in this process.",
)
@RUNNER
@NO_CACHE
@_progress_options
@REPORT
@click.argument("beam_args", nargs=-1, type=click.UNPROCESSED)
def run(
    task_path: str,
    follow: bool,
    show: int,
    allow_incompatible: bool,
    workers: int,
    runner: str | None,
    no_cache: bool,
    progress_every: float,
    no_progress: bool,
    report_path: str | None,
    beam_args: tuple[str, ...],
) -> None:
    """Enrich the input topic: write, dead-letter and commit as it goes; print a summary.

    Drain mode (the default) reads up to the end offsets snapshotted at start, then stops;
    --follow keeps reading. SIGINT/SIGTERM stop cleanly (a second one exits at once).
    Arguments after the options go to Beam (e.g. --runner=DirectRunner).
    """
    job = _job(task_path, no_cache=no_cache)
    problems = _compatibility(job, "output")
    if problems and not allow_incompatible:
        _fail(
            f"output schema {job.output_schema.identity} is not "
            f"{job.task.output.compatibility}-compatible: {problems[0]} "
            "(see `llm-enrich schemas check`; --allow-incompatible overrides)"
        )
    _launch_checks(job)
    from pipelines.enrich_pipeline import build_pipeline  # Beam import is slow: after checks
    from pipelines.flink_jobs import job_family

    flink, beam_args = _runner(runner, beam_args)
    if workers > 1 and (flink or any(arg.startswith("--runner") for arg in beam_args)):
        _fail("--workers is for the local runner (Prism); a runner's own options set its workers")
    report = _report_start(job, report_path)
    summary = _execute(
        lambda endpoint, pool, extra=(): build_pipeline(
            job.task,
            (*extra, *beam_args),
            follow=follow,
            job_endpoint=endpoint,
            pool=pool,
            workers=workers,
        ),
        beam_args,
        None if no_progress else progress_every,
        workers,
        job_family("run", job.name) if flink else None,
    )
    _finish(job, summary, "run", report, show=show)


@main.command(context_settings={"ignore_unknown_options": True})
@TASK
@click.option("--stage", "stages", multiple=True, help="Only dead letters of this stage.")
@click.option("--error-class", "error_classes", multiple=True, help="Only this error class.")
@click.option("--since", type=click.DateTime(), help="Only failures at or after (UTC).")
@click.option("--until", type=click.DateTime(), help="Only failures before (UTC).")
@click.option("--max-replays", type=int, help="Skip dead letters replayed this often already.")
@click.option("--limit", type=int, help="Read at most this many dead letters.")
@click.option("--dry-run", is_flag=True, help="Show what would be replayed; change nothing.")
@RUNNER
@NO_CACHE
@_progress_options
@REPORT
@click.argument("beam_args", nargs=-1, type=click.UNPROCESSED)
def replay(
    task_path: str,
    stages: tuple[str, ...],
    error_classes: tuple[str, ...],
    since: datetime | None,
    until: datetime | None,
    max_replays: int | None,
    limit: int | None,
    dry_run: bool,
    runner: str | None,
    no_cache: bool,
    progress_every: float,
    no_progress: bool,
    report_path: str | None,
    beam_args: tuple[str, ...],
) -> None:
    """Re-enrich dead letters under the current task file.

    Reads the dead-letter topic under its own consumer group (<group>.replay), skips dead
    letters whose source already has an output, writes successes to the output topic and
    new failures back to the dead-letter topic with replay_count + 1.
    """
    job = _job(task_path, no_cache=no_cache)
    selection = ReplayFilter(
        stages=frozenset(stages),
        error_classes=frozenset(error_classes),
        since_ms=_utc_millis(since),
        until_ms=_utc_millis(until),
        max_replays=max_replays,
    )
    if dry_run:
        from pipelines.replay_plan import plan_replay

        for line in plan_replay(job, selection, limit).lines():
            click.echo(line)
        return
    _launch_checks(job)
    from pipelines.enrich_pipeline import build_replay_pipeline
    from pipelines.flink_jobs import job_family

    flink, beam_args = _runner(runner, beam_args)
    if flink and not any(a.startswith("--parallelism") for a in beam_args):
        from pipelines.runner import FLINK_REPLAY_ARGS

        beam_args = (*FLINK_REPLAY_ARGS, *beam_args)
    report = _report_start(job, report_path)
    summary = _execute(
        lambda endpoint, _pool, extra=(): build_replay_pipeline(
            job.task,
            selection,
            limit,
            (*extra, *beam_args),
            job_endpoint=endpoint,
            streaming=flink,
        ),
        beam_args,
        None if no_progress else progress_every,
        flink=job_family("replay", job.name) if flink else None,
    )
    _finish(job, summary, "replay", report)


def _finish(
    job: Job, summary: Any, mode: str, report: Callable[[Any, str], None], *, show: int = 0
) -> NoReturn:
    """After a run or a replay: the summary, why it stopped, the report, ``show`` outputs;
    then exit with the summary's code."""
    click.echo(f"== {job.name}: {mode} summary (prompt {job.prompt.hash})")
    for line in summary.mode_lines(mode):
        click.echo(f"  {line}")
    for reason in summary.stop_reasons:
        click.echo(f"llm-enrich: stopped: {reason}", err=True)
    report(summary, mode)
    if show:
        _print_records(job, dead_letters=False, limit=show)
    sys.exit(summary.exit_code)


def _report_start(job: Job, report_path: str | None) -> Callable[[Any, str], None]:
    """Before the run: where the output topics end (when a report is asked for). Returns
    what writes the report after the run; a report that cannot be written is a warning,
    never a change of the run's exit code."""
    if not report_path:
        return lambda summary, mode: None
    import time

    from pipelines.run_report import topic_marks, write_run_report

    marks, started = topic_marks(job), time.time()

    def write(summary: Any, mode: str) -> None:
        try:
            write_run_report(job, summary, marks, started, report_path, mode)
            click.echo(f"report: {report_path}")
        except Exception as exc:
            log.debug("report failed", exc_info=True)
            click.echo(f"llm-enrich: warning: no report written: {exc}", err=True)

    return write


def _utc_millis(moment: datetime | None) -> int | None:
    if moment is None:
        return None
    return int(moment.replace(tzinfo=moment.tzinfo or UTC).timestamp() * 1000)


@main.command("eval")
@TASK
@click.option(
    "--golden", required=True, type=click.Path(dir_okay=False), help="JSON lines of input/expected."
)
@click.option("--provider", "providers", multiple=True, help="Only this provider (repeatable).")
@click.option("--limit", type=int, help="Only the first N golden records.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), help="Write HTML here.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write JSON here.")
@click.option(
    "--baseline", type=click.Path(dir_okay=False), help="An earlier --json result to compare."
)
@click.option(
    "--calibrate",
    is_flag=True,
    help="Choose the cascade's thresholds on part of the golden set, report on the rest.",
)
@click.option(
    "--target-within",
    type=click.FloatRange(0, 1),
    default=0.02,
    show_default=True,
    help="--calibrate: the cascade's overall score may fall this far below the last step's.",
)
@click.option(
    "--holdout",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.5,
    show_default=True,
    help="--calibrate: the share of the golden set held back to report on.",
)
@click.option(
    "--thresholds-out",
    type=click.Path(dir_okay=False),
    help="--calibrate: write the thresholds here (default: the task's cascade.thresholds).",
)
@click.option(
    "--records-per-call",
    type=click.IntRange(1, 256),
    help="Ask this many records per call instead of the task's prompt.records_per_call.",
)
def eval_(
    task_path: str,
    golden: str,
    providers: tuple[str, ...],
    limit: int | None,
    report_path: str | None,
    json_path: str | None,
    baseline: str | None,
    calibrate: bool,
    target_within: float,
    holdout: float,
    thresholds_out: str | None,
    records_per_call: int | None,
) -> None:
    """Score the task's prompt, validation and repair on a golden set, per provider.

    Exit 0 when every evaluated provider meets eval.min_scores, 1 when one misses a
    threshold, 2 for a bad task, golden set, baseline or option, 3 when a provider fails
    for a reason that is not the records' (unreachable, bad credentials, no such model).

    With --calibrate: ask each cascade step every golden record, choose per step the
    confidence threshold that keeps the overall score within --target-within of the last
    step's at the lowest cost (on the records not held back), print the cost/quality table
    of both parts and write the thresholds file. Exit 0, or 2/3 as above.
    """
    from pipelines.eval_files import load_cases, load_eval_result, write_outputs
    from pipelines.eval_table import result_lines
    from pipelines.evaluate import chosen_providers, evaluate
    from transforms.llm.ask_golden import EvalSystemic

    if calibrate:
        _calibrate(task_path, golden, limit, json_path, target_within, holdout, thresholds_out)
    job = _job(task_path, no_cache=True)
    try:
        if records_per_call is not None:
            job = compile_job(with_records_per_call(job.task, records_per_call))
        chosen = chosen_providers(job, providers)
        cases = load_cases(job, golden, limit)
        before = load_eval_result(baseline, "the baseline") if baseline else None
    except (TaskConfigError, ValueError) as exc:
        _fail(str(exc))
    try:
        result = evaluate(job, cases, chosen, golden)
    except EvalSystemic as exc:
        _fail(str(exc), exit_codes.SYSTEMIC)
    write_outputs(result, before, json_path, report_path)
    for line in result_lines(result):
        click.echo(line)
    sys.exit(exit_codes.OK if result.passed else exit_codes.UNSETTLED)


def _calibrate(
    task_path: str,
    golden: str,
    limit: int | None,
    json_path: str | None,
    target_within: float,
    holdout: float,
    thresholds_out: str | None,
) -> NoReturn:
    """``eval --calibrate``: see ``pipelines.calibrate``."""
    from pipelines.calibrate import calibrate, thresholds_path, write_thresholds
    from pipelines.calibrate_table import calibration_lines
    from pipelines.eval_files import load_cases
    from transforms.llm.ask_golden import EvalSystemic

    job = _job(task_path, no_cache=True, calibrating=True)
    try:
        out = thresholds_path(job, thresholds_out)
        cases = load_cases(job, golden, limit)
        result = calibrate(job, cases, golden, target_within=target_within, holdout=holdout)
    except (TaskConfigError, ValueError) as exc:
        _fail(str(exc))
    except EvalSystemic as exc:
        _fail(str(exc), exit_codes.SYSTEMIC)
    try:
        write_thresholds(result, out)
        if json_path:
            Path(json_path).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    except OSError as exc:
        _fail(f"cannot write the thresholds: {exc}")
    for line in calibration_lines(result):
        click.echo(line)
    click.echo(f"thresholds: {out}")
    sys.exit(exit_codes.OK)


@main.command()
@TASK
@click.option(
    "--format",
    "format_",
    type=click.Choice(["openai-chat", "golden"]),
    default="openai-chat",
    show_default=True,
    help="openai-chat: fine-tuning messages; golden: {input, expected} lines for eval.",
)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Training file.")
@click.option("--since", type=click.DateTime(), help="Only outputs written at or after (UTC).")
@click.option("--until", type=click.DateTime(), help="Only outputs written before (UTC).")
@click.option("--provider", "providers", multiple=True, help="Only answers of this provider.")
@click.option("--model", "models", multiple=True, help="Only answers of this model.")
@click.option("--clean-only", is_flag=True, help="Leave out answers repaired or re-asked.")
@click.option(
    "--verified-only",
    is_flag=True,
    help="Only outputs feedback accepted or corrected (needs the task's feedback section).",
)
@click.option(
    "--validation-share",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.0,
    help="Hold out this share (by a hash of the record) to --validation-out.",
)
@click.option(
    "--validation-out",
    type=click.Path(dir_okay=False),
    help="The held-out file (default: <out> with .validation before the suffix).",
)
def export(
    task_path: str,
    format_: str,
    out: str,
    since: datetime | None,
    until: datetime | None,
    providers: tuple[str, ...],
    models: tuple[str, ...],
    clean_only: bool,
    verified_only: bool,
    validation_share: float,
    validation_out: str | None,
) -> None:
    """Write the output topic's answers as fine-tuning examples (or a golden set).

    Only outputs produced under the task's current prompt (llm_enrich.prompt_hash) are
    exported; each input is read back from the input topic at the output's source
    coordinates. With a feedback section, corrected values replace the answers and
    rejected outputs are left out. Writes <out>.manifest.json with the counts by reason.
    """
    from pipelines.export import export as run_export
    from transforms.core.export.training import ExportFilter

    job = _job(task_path)
    if verified_only and job.task.feedback is None:
        _fail(f"{job.task.source_path}: --verified-only needs the task's feedback section")
    out_path = Path(out)
    held_out = None
    if validation_share:
        held_out = Path(validation_out or out_path.with_suffix(".validation" + out_path.suffix))
    selection = ExportFilter(
        since_ms=_utc_millis(since),
        until_ms=_utc_millis(until),
        providers=frozenset(providers),
        models=frozenset(models),
        clean_only=clean_only,
    )
    result = run_export(
        job,
        format=format_,  # type: ignore[arg-type]
        out=out_path,
        validation_out=held_out,
        validation_share=validation_share,
        selection=selection,
        verified_only=verified_only,
    )
    skipped = ", ".join(
        f"{k}={v}" for k, v in result.counts.items() if k not in ("train", "validation")
    )
    click.echo(
        f"exported {result.exported} of {result.outputs_read} outputs "
        f"(prompt {result.prompt_hash}); skipped: {skipped or 'none'}"
    )
    if result.feedback is not None:
        fed = result.feedback
        click.echo(
            f"  feedback: {fed['events_matched']} of {fed['events_read']} events matched; "
            f"exported {fed['exported_corrected']} corrected, {fed['exported_accepted']} accepted"
        )
    for entry in result.files:
        click.echo(f"  {entry.path}: {entry.lines} lines")
    click.echo(f"  manifest: {result.manifest_path}")
    if not result.exported:
        sys.exit(1)


@main.command()
@TASK
@click.option(
    "--follow", is_flag=True, help="Keep reading new feedback until SIGINT/SIGTERM (unbounded)."
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write JSON here.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), help="Write HTML here.")
@click.option(
    "--eval-json",
    type=click.Path(dir_okay=False),
    help="An `llm-enrich eval --json` result: its golden-set scores beside production's.",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=50_000,
    show_default=True,
    help="Events held at most before they are joined with the output topic (one read of it "
    "per chunk).",
)
@click.option(
    "--flush-every",
    type=click.FloatRange(min=0.5),
    default=10.0,
    show_default=True,
    help="--follow: seconds between joins (and drift checks, and file writes).",
)
def feedback(
    task_path: str,
    follow: bool,
    json_path: str | None,
    report_path: str | None,
    eval_json: str | None,
    chunk_size: int,
    flush_every: float,
) -> None:
    """Score production by what happened next: join the feedback topic with the outputs.

    Per generated field and per provider, model and prompt hash: agreement with the
    corrections, acceptance, outcome metrics, over time windows and in total. Exit 0, or 1
    when a window falls below feedback.min_scores (else eval.min_scores): drift. With
    --follow, drift is logged and counted, and SIGINT/SIGTERM end the command (exit 0).
    """
    from pipelines.feedback_command import run_feedback

    job = _job(task_path)
    sys.exit(
        run_feedback(
            job,
            follow=follow,
            json_path=json_path,
            report_path=report_path,
            eval_json=eval_json,
            chunk_size=chunk_size,
            flush_every_s=flush_every,
            fail=_fail,
        )
    )


@main.command()
@TASK
@click.option("--data", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--partitions", default=3, show_default=True)
@click.option("--key-field", default=None, help="Input field to use as the Kafka key.")
@click.option("--limit", type=int, default=None)
@click.option(
    "--feedback",
    "to_feedback",
    is_flag=True,
    help="The lines are feedback events: write them to feedback.topic in feedback.format.",
)
def produce(
    task_path: str,
    data: str,
    partitions: int,
    key_field: str | None,
    limit: int | None,
    to_feedback: bool,
) -> None:
    """Encode a JSON-lines file with the task's input schema and write it to the input topic
    (with --feedback: feedback events to the feedback topic)."""
    from pipelines.topics import produce_feedback, produce_jsonl

    job = _job(task_path)
    if to_feedback:
        try:
            sent = produce_feedback(job, Path(data), partitions, limit)
        except ValueError as exc:
            _fail(str(exc))
        assert job.task.feedback is not None
        click.echo(f"produced {sent} feedback events to {job.task.feedback.topic}")
        return
    sent = produce_jsonl(job, Path(data), partitions, key_field, limit)
    click.echo(f"produced {sent} records to {job.task.kafka.input_topic}")


@main.command()
@TASK
@click.option("--dead-letters", is_flag=True, help="Show the dead-letter topic instead.")
@click.option("-n", "limit", default=5, show_default=True)
def peek(task_path: str, dead_letters: bool, limit: int) -> None:
    """Print the first records of the output (or dead-letter) topic as JSON."""
    _print_records(_job(task_path), dead_letters, limit)


@main.command()
@TASK
def check(task_path: str) -> None:
    """Validate the task file and print the derived response schema and prompt hash."""
    job = _job(task_path)
    click.echo(f"task {job.name}: ok (prompt hash {job.prompt.hash})")
    click.echo(f"generated by the model: {', '.join(job.shape.generated_fields)}")
    click.echo(f"copied from the input:  {', '.join(job.shape.copied_fields) or '-'}")
    click.echo(json.dumps(job.shape.json_schema, indent=2))


@main.group()
def schemas() -> None:
    """Schema evolution checks."""


@schemas.command("check")
@TASK
def schemas_check(task_path: str) -> None:
    """Check the input and output schemas against their previous versions.

    Uses each section's ``compatibility`` (BACKWARD by default; FORWARD, FULL, NONE) and
    Apache Avro's own checker. Exit 0 when compatible, 1 otherwise.
    """
    job = _job(task_path)
    failed = False
    for section in ("input", "output"):
        spec = getattr(job.task, section)
        current = getattr(job, f"{section}_schema")
        previous = getattr(job, f"{section}_previous")
        click.echo(
            f"{section}: {current.identity} ({spec.compatibility}, "
            f"{len(previous)} previous version(s))"
        )
        for problem in _compatibility(job, section):
            failed = True
            click.echo(f"  INCOMPATIBLE {problem}")
    click.echo("incompatible" if failed else "compatible")
    sys.exit(1 if failed else 0)


def _compatibility(job: Job, section: str) -> list[str]:
    from transforms.core.formats.compatibility import check_compatibility

    mode = getattr(job.task, section).compatibility
    current = getattr(job, f"{section}_schema")
    return [
        f"against {old.identity}: {problem}"
        for old in getattr(job, f"{section}_previous")
        for problem in check_compatibility(current, old, mode)
    ]


def _print_records(job: Job, dead_letters: bool, limit: int) -> None:
    from pipelines.topics import topic_records

    which = "dead letters" if dead_letters else "enriched records"
    click.echo(f"== first {limit} {which}")
    shown = 0
    for record in topic_records(job, dead_letters=dead_letters):
        if shown >= limit:
            break
        click.echo(json.dumps(record["value"], default=_jsonable, ensure_ascii=False))
        shown += 1
    if not shown:
        click.echo("(none)")


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


def entry_point() -> None:
    """The console script: an uncaught exception is an internal error (exit 70), never
    mistaken for one of the documented outcomes."""
    try:
        main()
    except SystemExit:
        raise
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            sys.exit(exit_codes.UNSETTLED)
        log.debug("internal error", exc_info=True)
        click.echo(f"llm-enrich: internal error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(exit_codes.INTERNAL)


if __name__ == "__main__":
    entry_point()
