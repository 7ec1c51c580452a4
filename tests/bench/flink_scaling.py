"""Scaling on the local Flink cluster against Prism, in one run.

Drains the same number of records through the stage on Prism (LOOPBACK workers in this
process) and on the Flink cluster of ``deploy/flink.sh`` at each parallelism asked for,
against a fault server in its own process, with an instant server and with a fixed latency.
Each run reads a fresh input topic. For each it prints:

- records/s end to end (the launcher's wall time: on Flink it includes submitting the job
  and starting the Python workers) and *steady* (as the server saw the answers, between
  their 10th and 90th percentile);
- CPU per record: on Prism this process (the launcher and its LOOPBACK workers) plus
  Prism's; on Flink the TaskManagers with the SDK workers they started (reaped when the job
  ends), the job server and the JobManager, from /proc, with the launcher apart;
- the in-flight window's occupancy, from the server's log of when each call started and
  was answered: the mean number of calls in flight over the steady interval, against the
  window (``policy.max_in_flight`` per worker process);
- ratios against Prism.

    deploy/kafka.sh start && deploy/flink.sh start
    .venv/bin/python -m tests.bench.flink_scaling [--instant 200] [--slow 300 --latency 1]
        [--tail 300 --tail-latency 0.5 8] [--in-flight 16] [--parallelism 1 2 4]
        [--waiting 2 4]

``--waiting``: with the slow and the heavy-tailed server, also run at those parallelisms the
way the stage ran on Flink before calls outlived their bundle (records reshuffled, each
bundle of the enrich step waiting for its own calls): the window's occupancy before/after.

Not a test: it takes minutes, and its numbers depend on the machine's load.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import apache_beam as beam

from pipelines.enrich_pipeline import build_pipeline
from pipelines.execute import execute
from pipelines.runner import flink_workers, pipeline_options
from tests.bench.concurrency import (
    bench_job,
    pipeline_run,
    produce_records,
    seen_by_server,
    server_stats,
    start_server,
)
from tests.bench.cpu import cpu_seconds
from transforms.beam.stage import EnrichStage

ROLES = ("taskmanager1", "taskmanager2", "jobserver", "jobmanager")


def _state() -> Path:
    repo = Path(__file__).resolve().parents[2]
    return Path(os.environ.get("LLM_ENRICH_STATE", repo / ".local")) / "flink"


def _pids() -> dict[str, int]:
    found = {}
    for role in ROLES:
        pid = int((_state() / f"{role}.pid").read_text())
        os.kill(pid, 0)
        found[role] = pid
    return found


def _cpu_with_reaped(pid: int) -> float:
    """A process's CPU plus that of the children it has reaped (a TaskManager's SDK
    workers, once the job ended)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(entry.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent]
        found += children
        frontier += children
    return found


def _cluster_cpu(pids: dict[str, int], wait_s: float = 30.0) -> dict[str, float]:
    """CPU seconds so far of each cluster role; the TaskManagers' once their SDK workers of
    the last job are gone (reaped: counted in the TaskManager), or with theirs if they stay."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and any(
        _descendants(pids[r]) for r in ROLES if r.startswith("task")
    ):
        time.sleep(0.2)
    cpu = {role: _cpu_with_reaped(pid) for role, pid in pids.items()}
    for role in ROLES:
        if role.startswith("task"):
            cpu[role] += sum(_cpu_or_zero(p) for p in _descendants(pids[role]))
    return cpu


def _cpu_or_zero(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except OSError:
        return 0.0


def mean_in_flight(stats: dict[str, Any]) -> float:
    """The mean number of calls in flight over the steady interval (the 10th to the 90th
    percentile of the answers), from when each call started and was answered."""
    answers = sorted(stats["answered_at"])
    if len(answers) < 10:
        return 0.0
    low, high = answers[len(answers) // 10], answers[len(answers) * 9 // 10 - 1]
    events = sorted([(t, 1) for t in stats["received_at"]] + [(t, -1) for t in answers])
    level, area, last = 0, 0.0, low
    for t, step in events:
        if t > last:
            area += level * (min(t, high) - last)
            last = min(t, high)
        level += step
        if t >= high:
            break
    return area / (high - low) if high > low else 0.0


def _waiting_pipeline(task: Any, args: list[str]) -> Any:
    """The pipeline as before calls outlived their bundle on Flink: records reshuffled over
    the workers, each bundle of the enrich step waiting for its own calls, Flink's default
    bundles."""
    pipeline = beam.Pipeline(options=pipeline_options(args, streaming=True))
    _ = pipeline | f"Enrich[{task.name}]" >> EnrichStage(task, keyed=False)
    return pipeline


def flink_run(job: Any, parallelism: int, waiting: bool = False) -> dict[str, Any]:
    pids = _pids()
    before = _cluster_cpu(pids)
    launcher = time.process_time()
    with flink_workers([f"--parallelism={parallelism}"]) as args:
        args = [*args, f"--parallelism={parallelism}"]
        if waiting:
            pipeline = _waiting_pipeline(job.task, args)
        else:
            pipeline, _ = build_pipeline(job.task, args)
        summary = execute(pipeline)
    launcher = time.process_time() - launcher
    after = _cluster_cpu(pids)
    written = summary.get("written.output") or 0
    per = 1000 / max(written, 1)
    cpu = {role: (after[role] - before[role]) * per for role in ROLES}
    return {
        "rate": written / summary.wall_time_s,
        "wall_s": summary.wall_time_s,
        "written": written,
        "cluster_ms": sum(cpu.values()),
        "taskmanagers_ms": cpu["taskmanager1"] + cpu["taskmanager2"],
        "jobserver_ms": cpu["jobserver"],
        "jobmanager_ms": cpu["jobmanager"],
        "launcher_ms": launcher * per,
    }


def measure(
    records: int,
    latency: float,
    tail_p99: float | None,
    in_flight: int,
    parallelisms: list[int],
    waiting: list[int],
) -> None:
    server, base_url = start_server(latency, tail_p99)
    try:
        rows: list[tuple[str, dict[str, Any]]] = []
        names = ["prism", *(f"flink p{p}" for p in parallelisms)]
        names += [f"flink p{p}, bundles wait" for p in waiting]
        for name in names:
            job = bench_job(base_url, in_flight, "127.0.0.1:19092")
            produce_records(job.task.kafka, records)
            server_stats(base_url, reset=True)
            if name == "prism":
                result = pipeline_run(job, profile=False)
                result["cpu_total_ms"] = result["cpu_ms"] + result["prism_ms"]
            else:
                parallelism = int(name.removeprefix("flink p").split(",")[0])
                result = flink_run(job, parallelism, waiting=name.endswith("wait"))
                result["cpu_total_ms"] = result["cluster_ms"]
            result.update(seen_by_server(base_url))
            result["mean_in_flight"] = mean_in_flight(server_stats(base_url))
            rows.append((name, result))
            print(f"  {name}: {_line(result)}", flush=True)
        latencies = (
            f"log-normal, median {latency:g} s, p99 {tail_p99:g} s"
            if tail_p99
            else (f"{latency:g} s")
        )
        _table(records, latencies, in_flight, rows)
    finally:
        server.terminate()
        server.wait()


def _line(r: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in r.items() if isinstance(v, int | float))


def _table(
    records: int, latency: str, in_flight: int, rows: list[tuple[str, dict[str, Any]]]
) -> None:
    base = rows[0][1]
    print(
        f"\n{records} records, latency {latency}, max_in_flight {in_flight} per worker\n"
        "| runner | records/s (steady) | vs Prism | CPU ms/record | vs Prism | window "
        "(mean in flight, peak) | wall s |\n|---|---|---|---|---|---|---|"
    )
    for name, r in rows:
        extra = (
            f" (TMs+workers {r['taskmanagers_ms']:.1f}, job server {r['jobserver_ms']:.1f}, "
            f"JM {r['jobmanager_ms']:.1f}; launcher {r['launcher_ms']:.1f})"
            if "taskmanagers_ms" in r
            else f" (launcher+LOOPBACK {r['cpu_ms']:.1f}, Prism {r['prism_ms']:.1f})"
        )
        print(
            f"| {name} | {r['rate']:.1f} ({r['steady']:.1f}) | "
            f"{r['rate'] / base['rate']:.2f}x ({r['steady'] / max(base['steady'], 1e-9):.2f}x) | "
            f"{r['cpu_total_ms']:.1f}{extra} | {r['cpu_total_ms'] / base['cpu_total_ms']:.2f}x | "
            f"{r['mean_in_flight']:.1f}, {r['peak']:.0f} | {r['wall_s']:.1f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instant", type=int, default=200, help="records, instant server")
    parser.add_argument("--slow", type=int, default=300, help="records, slow server")
    parser.add_argument("--latency", type=float, default=1.0, help="the slow server's latency")
    parser.add_argument("--tail", type=int, default=300, help="records, heavy-tailed server")
    parser.add_argument(
        "--tail-latency",
        type=float,
        nargs=2,
        default=[0.5, 8.0],
        metavar=("MEDIAN", "P99"),
        help="the heavy-tailed server's log-normal latency",
    )
    parser.add_argument("--in-flight", type=int, default=16)
    parser.add_argument("--parallelism", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument(
        "--waiting",
        type=int,
        nargs="*",
        default=[2, 4],
        help="with a slow server, also run at these parallelisms as before calls outlived "
        "their bundle (each bundle waits for its own calls)",
    )
    args = parser.parse_args()
    if args.instant:
        measure(args.instant, 0.0, None, args.in_flight, args.parallelism, [])
    if args.slow:
        measure(args.slow, args.latency, None, args.in_flight, args.parallelism, args.waiting)
    if args.tail:
        median, p99 = args.tail_latency
        measure(args.tail, median, p99, args.in_flight, args.parallelism, args.waiting)


if __name__ == "__main__":
    main()
