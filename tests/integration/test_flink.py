"""``llm-enrich run --runner flink`` on a real Flink cluster: a JobManager, two TaskManagers
(separate JVMs, two slots each) and Beam's Flink job server, started by
``deploy/flink.sh start``; Python SDK workers are processes the TaskManagers start.

The cluster is started once per session (``flink_cluster`` in the integration conftest:
about 20 s on two contended cores) and stopped at the end if this session started it. It
fails, never skips, when it cannot start.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from pipelines.flink_jobs import cancel_job, job_state, running_jobs
from pipelines.runner import FLINK_PARALLELISM
from tests.conftest import REPO
from tests.fault_server import Action, Reply
from tests.integration.conftest import (
    CLI,
    KAFKA,
    OUTAGE_POLICY,
    MakeTask,
    committed_offsets,
    end_offsets,
    fault_provider,
    flink_sh,
    produce,
    reviews,
    run_job,
    sample_reviews,
    start_run,
    wait_for,
)
from transforms.beam.keyed_enrich import bundle_size
from transforms.beam.stage import replay_group
from transforms.core.job import Job
from transforms.kafka.commit_loop import COMMIT_INTERVAL_S
from transforms.kafka.reader import read_range, snapshot_ranges

# the headers naming an output's and a dead letter's input (partition, offset)
OUTPUT_SOURCE = ("llm_enrich.source.partition", "llm_enrich.source.offset")
DEAD_SOURCE = ("__connect.errors.partition", "__connect.errors.offset")


def _command(job: Job, *args: str, command: str = "run") -> list[str]:
    """``llm-enrich <command> --task <the job's file> --runner flink <args>``."""
    assert job.task.source_path is not None
    return [*CLI, command, "--task", str(job.task.source_path), "--runner", "flink", *args]


def _finished(
    job: Job, *args: str, command: str = "run", timeout_s: float = 240
) -> subprocess.CompletedProcess[str]:
    """``_command(job, *args, command=command)`` run to its end, its output captured."""
    return subprocess.run(
        _command(job, *args, command=command), capture_output=True, text=True, timeout=timeout_s
    )


def _never_left_running(run: subprocess.Popen[str], job: Job) -> None:
    """A test that failed with its run going: kill the launcher and cancel the task's jobs,
    which would hold the cluster's slots and starve the next tests."""
    if run.poll() is None:
        run.kill()
        run.wait(30)
    for found in running_jobs():
        if f":{job.task.name}:" in found.name:
            cancel_job(found.jid)


def _script(texts: list[str]) -> Any:
    """Every fifth review gets an answer that is not JSON, twice (a dead letter at stage
    validate); the rest a valid answer. Chosen by the review's text, so the order in which
    the workers ask does not matter."""

    def script(index: int, body: dict[str, Any]) -> Action:
        asked = json.dumps(body["messages"])
        number = next(i for i, t in enumerate(texts) if json.dumps(t)[1:-1] in asked)
        return Reply.text("no idea") if number % 5 == 0 else Reply.ok(delay_s=0.05)

    return script


def _sources(job: Job, topic: str, names: tuple[str, str]) -> list[tuple[int, int]]:
    """The (partition, offset) of the input record each record of ``topic`` came from,
    read from the headers ``names`` (partition header, offset header)."""
    kafka = job.task.kafka
    found = []
    for range_ in snapshot_ranges(kafka, topic, None):
        for record in read_range(kafka, range_):
            headers = {k: v for k, v in record.headers}
            found.append((int(headers[names[0]] or b"-1"), int(headers[names[1]] or b"-1")))
    return found


@pytest.mark.timeout(300)
def test_a_drain_on_flink_settles_every_offset_once(
    flink_cluster: None, make_task: MakeTask, fault_server: Any
) -> None:
    count = 30
    texts = [row["text"] for row in sample_reviews(count)]
    server = fault_server(script=_script(texts))
    job = make_task([fault_provider(server, "fault")])
    produce(job, reviews(count))

    started = time.monotonic()
    done = _finished(job)
    print(f"\nflink drain of {count} records: {time.monotonic() - started:.1f} s")
    print(done.stdout)

    assert done.returncode == 0, done.stdout + done.stderr
    kafka = job.task.kafka
    outputs = _sources(job, kafka.output_topic, OUTPUT_SOURCE)
    dead = _sources(job, kafka.dead_letter_topic, DEAD_SOURCE)
    expected = sorted((p, o) for p, end in end_offsets(job).items() for o in range(end))
    assert len(expected) == count
    assert sorted(outputs + dead) == expected  # each offset once: an output or a dead letter
    assert len(dead) == sum(1 for t in texts if texts.index(t) % 5 == 0)
    assert outputs
    assert committed_offsets(job) == end_offsets(job)
    # the summary, from the job's metrics (GetJobMetrics), says what the topics hold
    summary = _summary(done.stdout)
    assert summary["records read"] == count and summary["not settled"] == 0
    assert summary["enriched (written)"] == len(outputs)
    assert summary["dead-lettered"] == len(dead)


def _summary(stdout: str) -> dict[str, int]:
    """The summary's counts by label (``records read``, ``enriched (written)``, ...)."""
    found = re.findall(r"^  ([a-z][a-z ()-]*?) +(\d+)", stdout, re.MULTILINE)
    return {label: int(value) for label, value in found}


def _count(job: Job, topic: str) -> int:
    kafka = job.task.kafka
    return sum(
        1 for range_ in snapshot_ranges(kafka, topic, None) for _ in read_range(kafka, range_)
    )


def _written(job: Job) -> int:
    """Records written to the output topic so far (its end offsets: one read, fast)."""
    consumer = KafkaConsumer(bootstrap_servers=KAFKA)
    try:
        topic = job.task.kafka.output_topic
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        return sum(consumer.end_offsets(tps).values())
    finally:
        consumer.close()


@pytest.mark.timeout(300)
def test_a_follow_run_on_flink_stops_on_sigterm_with_everything_committed(
    flink_cluster: None, make_task: MakeTask, fault_server: Any
) -> None:
    """The stop reaches the workers on the TaskManagers through the run's control folder
    (``LLM_ENRICH_CONTROL_DIR``: they share this machine): the readers stop, the job ends.
    While it runs, the progress line shows the job's metrics (Flink's REST API)."""
    server = fault_server(default=Reply.ok(delay_s=0.05))
    job = make_task([fault_provider(server, "fault")])
    produce(job, reviews(12))
    run = subprocess.Popen(
        _command(job, "--follow", "--progress-every", "1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert run.stderr is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(run.stderr or ()), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 180
        while _count(job, job.task.kafka.output_topic) < 12 and time.monotonic() < deadline:
            time.sleep(1)
        # the metrics reach the JobManager with the TaskManagers' heartbeats (every 10 s)
        wait_for(lambda: any("enriched 12 " in line for line in lines), 60, "live progress")
        produce(job, reviews(9))  # records that arrive while it follows
        # the signal follows the last write closely: its commit is then still due (this
        # is what left a timer set on the commit step and the job running forever)
        while _written(job) < 21 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert run.poll() is None, "a follow run ended by itself"
        run.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        stdout, _ = run.communicate(timeout=120)
        print(f"\nflink follow run: exit {time.monotonic() - signalled:.1f} s after SIGTERM")
    finally:
        _never_left_running(run, job)
    reader.join(10)
    stderr = "".join(lines)
    assert run.returncode == 0, stdout + stderr
    assert _count(job, job.task.kafka.output_topic) == 21
    assert committed_offsets(job) == end_offsets(job) == {0: 7, 1: 7, 2: 7}
    summary = _summary(stdout)
    assert summary["records read"] == summary["enriched (written)"] == 21
    assert summary["dead-lettered"] == summary["not settled"] == 0


@pytest.mark.timeout(300)
def test_a_follow_run_on_flink_waits_out_an_outage_on_every_worker(
    flink_cluster: None, make_task: MakeTask, fault_server: Any
) -> None:
    """Every provider down (503, circuits open on both workers): once each worker's circuit
    is open no record is dead-lettered or written, the job keeps running with its readers
    paused; once the provider is back the probes find it, every record is settled once, and
    SIGTERM ends the run with everything committed."""
    server = fault_server(default=Reply.ok(delay_s=0.05))
    job = make_task(
        [fault_provider(server, "flaky")],
        policy=OUTAGE_POLICY,
    )
    produce(job, reviews(6))
    run = start_run(job, "--runner", "flink", "--follow", "--no-progress")
    try:
        wait_for(lambda: _written(job) == 6, 180, "the first outputs (the job is up)")
        server.set_default(Reply.status(503))
        asked = server.stats.requests
        produce(job, reviews(24))
        wait_for(lambda: server.stats.requests >= asked + 4, 60, "the failing calls")
        time.sleep(6)  # the outage goes on: records wait, they are not written
        # a record whose call failed before its worker's circuit opened is the record's
        # failure (as on one process): at most one per worker
        dead = _count(job, job.task.kafka.dead_letter_topic)
        assert _written(job) == 6 and dead <= 2
        assert run.poll() is None, "a follow run does not stop for an outage"
        server.set_default(Reply.ok(delay_s=0.05))  # back: the probes find it
        wait_for(lambda: _written(job) == 30 - dead, 120, "every other record written")
        run.send_signal(signal.SIGTERM)
        stdout, stderr = run.communicate(timeout=120)
    finally:
        _never_left_running(run, job)
    assert run.returncode == 0, f"{stdout}\n{stderr}"
    kafka = job.task.kafka
    settled = _sources(job, kafka.output_topic, OUTPUT_SOURCE)
    settled += _sources(job, kafka.dead_letter_topic, DEAD_SOURCE)
    assert sorted(settled) == sorted((p, o) for p, n in end_offsets(job).items() for o in range(n))
    assert _count(job, kafka.dead_letter_topic) == dead  # none while it waited
    assert committed_offsets(job) == end_offsets(job)
    assert _summary(stdout)["not settled"] == 0


@pytest.mark.timeout(420)
def test_a_launcher_killed_with_9_leaves_no_job_behind(
    flink_cluster: None, make_task: MakeTask, fault_server: Any
) -> None:
    """kill -9 takes the launcher, not its job. The next run of the task finds the job (named
    ``llm-enrich:run:<task>:<run>``, its launcher's pid gone), cancels it through Flink's
    REST API, and reads what the job had not committed: every offset written, all committed,
    nothing committed before the kill written twice."""
    server = fault_server(default=Reply.ok(delay_s=0.05))
    job = make_task([fault_provider(server, "fault", timeout_s=120)])
    produce(job, reviews(6))
    run = start_run(job, "--runner", "flink", "--follow", "--no-progress")
    try:
        wait_for(lambda: _written(job) == 6, 180, "the first outputs")
        wait_for(lambda: committed_offsets(job) == end_offsets(job), 30, "their commits")
        server.set_default(Reply.hang(120))  # the next records stay in flight on the job
        asked = server.stats.requests
        produce(job, reviews(6))
        # a bundle waits for its calls: the others queue behind the first that hangs
        wait_for(lambda: server.stats.requests > asked, 60, "the job to ask for them")
        os.killpg(run.pid, signal.SIGKILL)  # start_run: a session of its own
        run.wait(timeout=30)
    except BaseException:
        _never_left_running(run, job)
        raise
    named = f"llm-enrich:run:{job.task.name}:"
    orphans = [j for j in running_jobs() if j.name.startswith(named)]
    assert len(orphans) == 1, running_jobs()
    server.set_default(Reply.ok(delay_s=0.05))

    started = time.monotonic()
    done = _finished(job, "--no-progress", timeout_s=300)
    print(f"\nflink rerun after kill -9 (cancel included): {time.monotonic() - started:.1f} s")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"cancelling Flink job {orphans[0].jid}" in done.stderr, done.stderr
    assert job_state(orphans[0].jid) == "CANCELED"
    assert not [j for j in running_jobs() if j.name.startswith(named)]
    kafka = job.task.kafka
    outputs = _sources(job, kafka.output_topic, OUTPUT_SOURCE)
    settled = Counter(outputs)
    every = {(p, o) for p, end in end_offsets(job).items() for o in range(end)}
    assert set(settled) == every and len(every) == 12  # none lost
    # at least once: the orphan may have written some of the 6 it held before its cancel,
    # uncommitted behind the call that hung, and the rerun writes them again; what was
    # committed before the kill (the first 6) is never repeated
    assert all(n == 1 for (p, o), n in settled.items() if o < 2), settled
    assert committed_offsets(job) == end_offsets(job)


@pytest.mark.timeout(300)
def test_a_replay_on_flink_enriches_every_dead_letter_once(
    flink_cluster: None, make_task: MakeTask, fault_server: Any
) -> None:
    """Dead letters made by a run on Prism (the provider down, dead-lettered on purpose),
    replayed on the cluster once it is back: one output per original, the replay group
    committed to the dead-letter topic's end, and the summary's counts what the topics hold."""
    server = fault_server(default=Reply.status(503))
    policy = {"on_systemic_fault": "dead_letter", "max_dead_letter_ratio": None}
    job = make_task(
        [fault_provider(server, "fault")],
        policy={"attempts_per_provider": 1, "circuit_failure_threshold": 10_000, **policy},
    )
    produce(job, reviews(6))
    assert run_job(job.task).dead_by_stage == {"llm": 6}
    server.set_default(Reply.ok(delay_s=0.05))

    started = time.monotonic()
    done = _finished(job, command="replay")
    print(f"\nflink replay of 6 dead letters: {time.monotonic() - started:.1f} s")
    assert done.returncode == 0, done.stdout + done.stderr
    kafka = job.task.kafka
    outputs = _sources(job, kafka.output_topic, OUTPUT_SOURCE)
    expected = sorted((p, o) for p, end in end_offsets(job).items() for o in range(end))
    assert sorted(outputs) == expected  # each original once
    assert _count(job, kafka.dead_letter_topic) == 6  # the originals' only, none new
    replayed = KafkaConsumer(bootstrap_servers=KAFKA, group_id=replay_group(job.task))
    try:
        assert replayed.committed(TopicPartition(kafka.dead_letter_topic, 0)) == 6
    finally:
        replayed.close()
    assert "dead letters read   6" in done.stdout
    assert "replayed            6" in done.stdout
    assert "enriched (written)  6" in done.stdout


@pytest.mark.timeout(300)
def test_a_systemic_fault_seen_by_one_worker_stops_the_whole_follow_job(
    flink_cluster: None, make_task: MakeTask, fault_server: Any, redis_url: str
) -> None:
    """The provider answers the first 3 calls, then 401 (bad credentials). The worker that
    meets it halts the run; the halt reaches every worker (the control folder, and Redis:
    the task's coordination), so the readers stop and the follow job ends by itself: exit 3,
    nothing dead-lettered for it, nothing committed past a record that has no output."""

    def script(index: int, body: dict[str, Any]) -> Action:
        return Reply.ok(delay_s=0.05) if index < 3 else Reply.status(401)

    server = fault_server(script=script)
    job = make_task(
        [fault_provider(server, "fault")], coordination={"backend": "redis", "url": redis_url}
    )
    produce(job, reviews(12))
    started = time.monotonic()
    done = _finished(job, "--follow", "--no-progress")
    print(f"\nflink follow run halted by a 401: {time.monotonic() - started:.1f} s")
    assert done.returncode == 3, done.stdout + done.stderr
    assert "llm-enrich: stopped: systemic: " in done.stderr
    assert "authentication failed (401)" in done.stderr
    kafka = job.task.kafka
    assert _count(job, kafka.dead_letter_topic) == 0
    outputs = set(_sources(job, kafka.output_topic, OUTPUT_SOURCE))
    assert len(outputs) == 3  # the calls answered before the fault
    for partition, committed in committed_offsets(job).items():
        below = {(partition, offset) for offset in range(committed or 0)}
        assert below <= outputs, f"partition {partition} committed past a record without output"
    summary = _summary(done.stdout)
    assert summary["enriched (written)"] == 3 and summary["dead-lettered"] == 0
    assert "STOPPED EARLY: systemic: " in done.stdout


def _outputs_written_at(job: Job) -> dict[tuple[int, int], float]:
    """When each output was written (its Kafka timestamp, seconds), by source coordinates."""
    kafka = job.task.kafka
    written = {}
    for range_ in snapshot_ranges(kafka, kafka.output_topic, None):
        for record in read_range(kafka, range_):
            headers = dict(record.headers)
            source = tuple(int(headers[name] or b"-1") for name in OUTPUT_SOURCE)
            written[(source[0], source[1])] = (record.timestamp_ms or 0) / 1000
    return written


@pytest.mark.timeout(300)
def test_no_bundle_waits_for_its_slowest_call_on_flink(
    flink_cluster: None, make_task: MakeTask, fault_server: Any
) -> None:
    """One call of 8 s among calls of 0.2 s, on one worker with a window of 4: while it is
    out, the window stays full (others are asked and answered) and each record asked then
    is written long before it (a bundle that waited for its slowest call stopped asking
    until it came back)."""
    count, slow_row, window, latency = 200, 30, 4, 0.2
    texts = [row["text"] for row in sample_reviews(count)]
    asked: dict[int, float] = {}

    def script(index: int, body: dict[str, Any]) -> Action:
        content = json.dumps(body["messages"])
        row = next(i for i, t in enumerate(texts) if json.dumps(t)[1:-1] in content)
        asked.setdefault(row, time.time())
        return Reply.ok(delay_s=8.0 if row == slow_row else latency)

    server = fault_server(script=script)
    job = make_task(
        [fault_provider(server, "fault", timeout_s=30)], policy={"max_in_flight": window}
    )
    produce(job, reviews(count))
    done = _finished(job, "--parallelism=1")
    assert done.returncode == 0, done.stdout + done.stderr
    written = _outputs_written_at(job)
    assert len(written) == count
    start = asked[slow_row]
    end = start + 8.0
    meanwhile = [r for r, at in asked.items() if start < at < end - 1.0]
    late = [r for r in meanwhile if written[(r % 3, r // 3)] > end]
    print(
        f"\n{len(meanwhile)} records asked while the slow call was out (ideal "
        f"{(8.0 - 1.0) * (window - 1) / latency:.0f}); written after it: {len(late)}"
    )
    assert len(meanwhile) >= 0.5 * (8.0 - 1.0) * (window - 1) / latency  # the window moved
    assert late == []  # none waited for it


# Faults on the cluster: a TaskManager or the job server killed with -9 in the middle of a
# drain. The bound on what a crash repeats, from the code (README, "Faults on the cluster"):
# each of the 2 SDK workers (one per TaskManager) holds at most ``2 x max_in_flight`` calls
# unanswered plus one bundle of records per subtask it runs (``keyed_enrich``): ``admitted``;
# twice that (those calls, and as many completed behind the slowest of them, not yet
# committable), plus what the workers complete in one commit interval and ``LAG_S`` more:
# the way from a write to the commit step (the writer's bundle ends, at most 1 s; the
# settled offsets cross to the commit step's worker and wait for its bundle: measured at
# 2-3 s with the commit interval on these two cores) and the second or so Flink takes to
# stop the job's other tasks.
FAULT_RECORDS, FAULT_WINDOW, FAULT_LATENCY_S, WORKERS, LAG_S = 240, 4, 0.5, 2, 4.0


def _crash_bounds(max_in_flight: int, latency_s: float) -> tuple[int, int]:
    """(duplicate outputs, re-billed calls) a crash may cause at most."""
    per_worker = FLINK_PARALLELISM // WORKERS
    admitted = WORKERS * (2 * max_in_flight + bundle_size(max_in_flight) * per_worker)
    completed = WORKERS * max_in_flight / latency_s * (COMMIT_INTERVAL_S + LAG_S)
    duplicates = 2 * admitted + int(completed)
    return duplicates, duplicates + admitted


def _state_pid(role: str) -> int:
    state = Path(os.environ.get("LLM_ENRICH_STATE", REPO / ".local")) / "flink"
    return int((state / f"{role}.pid").read_text())


def _descendants(pid: int) -> set[int]:
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _kill_mid_drain(
    job: Job, victim: str, after_outputs: int
) -> tuple[subprocess.CompletedProcess[str], set[int]]:
    """Run a drain on Flink; once ``after_outputs`` outputs are written, kill -9 ``victim``
    (a role of deploy/flink.sh). The finished run, and the processes the victim had started
    (a TaskManager's SDK workers)."""
    run = subprocess.Popen(
        _command(job),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    orphans: set[int] = set()
    try:
        deadline = time.monotonic() + 180
        while _count(job, job.task.kafka.output_topic) < after_outputs:
            assert run.poll() is None, "the drain ended before the kill"
            assert time.monotonic() < deadline, "no outputs"
            time.sleep(0.3)
        pid = _state_pid(victim)
        orphans = _descendants(pid)
        os.kill(pid, signal.SIGKILL)
        stdout, stderr = run.communicate(timeout=120)  # a clear exit, not a hang
    finally:
        _never_left_running(run, job)
    return subprocess.CompletedProcess(run.args, run.returncode, stdout, stderr), orphans


def _rerun_and_account(job: Job, server: Any, written_before: int) -> None:
    """Restore the cluster, drain again, and check: 0 lost, everything committed, and the
    duplicate outputs and re-billed calls within the bound."""
    restored = flink_sh("start")  # starts what is missing
    assert restored.returncode == 0, restored.stdout + restored.stderr
    again = _finished(job)
    assert again.returncode == 0, again.stdout + again.stderr
    kafka = job.task.kafka
    settled = Counter(
        _sources(job, kafka.output_topic, OUTPUT_SOURCE)
        + _sources(job, kafka.dead_letter_topic, DEAD_SOURCE)
    )
    every = {(p, o) for p, end in end_offsets(job).items() for o in range(end)}
    assert len(every) == FAULT_RECORDS
    assert set(settled) == every  # 0 lost
    assert committed_offsets(job) == end_offsets(job)
    texts = [row["text"] for row in sample_reviews(FAULT_RECORDS)]
    calls = Counter(
        next(i for i, t in enumerate(texts) if json.dumps(t)[1:-1] in json.dumps(b["messages"]))
        for b in server.stats.bodies
    )
    duplicates = sum(n - 1 for n in settled.values())
    rebilled = sum(n - 1 for n in calls.values())
    most_duplicates, most_rebilled = _crash_bounds(FAULT_WINDOW, FAULT_LATENCY_S)
    print(
        f"\n{written_before} written before the rerun; duplicates {duplicates} (bound "
        f"{most_duplicates}), re-billed calls {rebilled} (bound {most_rebilled})"
    )
    assert duplicates <= most_duplicates
    assert rebilled <= most_rebilled


def _fault_job(make_task: MakeTask, fault_server: Any) -> tuple[Job, Any]:
    server = fault_server(default=Reply.ok(delay_s=FAULT_LATENCY_S))
    job = make_task([fault_provider(server, "fault")], policy={"max_in_flight": FAULT_WINDOW})
    produce(job, reviews(FAULT_RECORDS))
    return job, server


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("victim", "cause"),
    [
        ("taskmanager2", "the Flink job failed: a Flink TaskManager was lost"),
        ("jobserver", "lost Beam's job server at"),
    ],
)
def test_a_cluster_process_killed_mid_drain_loses_nothing_and_repeats_a_bounded_few(
    flink_cluster: None, make_task: MakeTask, fault_server: Any, victim: str, cause: str
) -> None:
    """The launcher exits 3 with the cause, leaving nothing running (a dead TaskManager's
    SDK workers stop on their own; a job whose job server died is cancelled through Flink's
    REST API); ``deploy/flink.sh start`` restores the cluster and a rerun settles the rest."""
    job, server = _fault_job(make_task, fault_server)
    done, workers = _kill_mid_drain(job, victim, FAULT_RECORDS // 2)
    assert done.returncode == 3, done.stdout + done.stderr
    assert f"stopped: systemic: {cause}" in done.stderr
    if victim == "jobserver":  # the job went on running on Flink: the launcher ended it
        cancelled = re.search(r"cancelled the Flink job \S+ \((\S+)\)", done.stderr)
        assert cancelled, done.stderr
        assert job_state(cancelled[1]) == "CANCELED"
    else:
        assert workers, "the TaskManager had no SDK worker to kill"
        deadline = time.monotonic() + 15
        while any(map(_alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(map(_alive, workers)), "SDK workers outlived their TaskManager"
    _rerun_and_account(job, server, _count(job, job.task.kafka.output_topic))
