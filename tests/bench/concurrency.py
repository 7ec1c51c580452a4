"""Benchmark: the stage's records/s and CPU per record against the bare ``openai`` client.

The ratios that matter are measured in one run on one machine: the drain pipeline (Prism,
streaming, committing as it goes) against a baseline, the bare ``AsyncOpenAI`` client
(default transport, ``chat.completions.create``, the usual way to call it) making the same
number of calls with the same payload (the job's few-shot messages and response format) at
the same concurrency, to the same server. Both talk to a fault server in its own process.

    # CPU-bound: an instant server
    .venv/bin/python -m tests.bench.concurrency --records 5000 --latency 0 --in-flight 64
    # waiting-bound: 1 s per call, 250 in flight (ideal 250/s); --tail-p99 10 for a
    # log-normal latency with median 1 s and p99 10 s
    .venv/bin/python -m tests.bench.concurrency --records 5000 --latency 1 --in-flight 250
    # --profile: where this process's CPU goes during the pipeline run (py-spy)
    # both cores: the pipeline once per worker setting, in one run; 1 = LOOPBACK (all in
    # this process), N >= 2 = that many worker processes (llm-enrich run --workers N),
    # pN = a worker pool with N processes (p1: one worker process, not this one)
    .venv/bin/python -m tests.bench.concurrency --records 5000 --latency 0 --in-flight 64 \
        --workers 1 p1 2

CPU per record counts this process (the launcher and the Beam worker threads that Prism's
LOOPBACK mode runs in it) and, separately, Prism's own process. Needs the local broker
(deploy/kafka.sh start).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import openai
import yaml

from pipelines.enrich_pipeline import build_pipeline
from pipelines.execute import execute
from pipelines.runner import worker_pool
from schemas import load_schema
from tests.bench.cpu import children, cpu_seconds, peak_rss_mb, print_split, profiled
from tests.conftest import REPO, SCHEMAS
from transforms.core.calls.providers import response_format
from transforms.core.config.task import KafkaSpec, load_task
from transforms.core.formats import framing
from transforms.core.job import Job, compile_job
from transforms.kafka.admin import ensure_topics
from transforms.kafka.client import producer

ROWS = REPO / "pipelines/examples/reviews/reviews.jsonl"


def start_server(latency: float, tail_p99: float | None) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "tests.fault_server", "--port", "0", "--latency", str(latency)]
    if tail_p99:
        command += ["--tail-p99", str(tail_p99)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert server.stdout is not None
    line = server.stdout.readline().strip()
    if not line.startswith("READY "):
        raise RuntimeError(f"fault server did not start: {line!r}")
    return server, line.removeprefix("READY ")


def server_stats(base_url: str, reset: bool = False) -> dict[str, Any]:
    """The fault server's stats (``reset``: zero them, for the next run)."""
    url = base_url.removesuffix("/v1") + ("/stats/reset" if reset else "/stats")
    request = urllib.request.Request(url, method="POST" if reset else "GET")
    with urllib.request.urlopen(request, timeout=5) as reply:
        return dict(json.load(reply))


def seen_by_server(base_url: str) -> dict[str, Any]:
    """What the server saw of the run since the last reset: the peak in flight, and the
    steady answer rate, between the 10th and the 90th percentile of its answers (no
    start-up, and no last stragglers: with a heavy tail, the slowest of thousands of
    calls takes 30 s or more, for the bare client too)."""
    stats = server_stats(base_url)
    answered = stats["answered_at"]
    low, high = len(answered) // 10, len(answered) * 9 // 10
    span = answered[high - 1] - answered[low] if high - 1 > low else 0.0
    return {
        "peak": stats["max_in_flight"],
        "steady": (high - 1 - low) / span if span > 0 else 0.0,
    }


def mean_latency(median_s: float, tail_p99_s: float | None) -> float:
    """The mean of the server's latency: log-normal with that median and p99, else fixed."""
    if not tail_p99_s:
        return median_s
    sigma = math.log(tail_p99_s / median_s) / 2.3263
    return median_s * math.exp(sigma * sigma / 2)


def bench_job(base_url: str, in_flight: int, bootstrap: str, cache: bool = False) -> Job:
    run = uuid.uuid4().hex[:8]
    raw = yaml.safe_load((REPO / "pipelines/examples/reviews/task.yaml").read_text())
    raw["name"] = f"bench-{run}"
    raw["kafka"].update(
        bootstrap_servers=bootstrap,
        input_topic=f"bench-{run}-in",
        output_topic=f"bench-{run}-out",
        dead_letter_topic=f"bench-{run}-dlq",
    )
    raw["input"]["schema"] = str(SCHEMAS / "examples.reviews.Review.avsc")
    raw["output"]["schema"] = str(SCHEMAS / "examples.reviews.EnrichedReview.avsc")
    raw["providers"] = [
        {
            "name": "bench",
            "base_url": base_url,
            "model": "fault",
            "timeout_s": 120,
            "max_concurrency": in_flight,
        }
    ]
    raw["policy"] = {"max_in_flight": in_flight, "record_deadline_s": 600}
    if not cache:  # the input rows repeat: with the cache, most records make no call
        raw["cache"] = {"backend": "off"}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "task.yaml"
        path.write_text(yaml.safe_dump(raw))
        return compile_job(load_task(path))


async def baseline(job: Job, base_url: str, calls: int, concurrency: int) -> dict[str, float]:
    """The bare client, with the stage's payload: the same rendered messages (one per
    input row, cycling) and the same response format."""
    client = openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=120)
    rows = [json.loads(line) for line in ROWS.read_text().splitlines() if line.strip()]
    messages = [job.prompt.messages(row) for row in rows]
    answer_format = response_format(job.shape.json_schema)
    generation = job.task.generation
    slots = asyncio.Semaphore(concurrency)

    async def one(index: int) -> None:
        async with slots:
            await client.chat.completions.create(
                model="fault",
                messages=messages[index % len(messages)],  # type: ignore[arg-type]
                temperature=generation.temperature,
                seed=generation.seed,
                max_tokens=generation.max_tokens,
                response_format=answer_format,
            )

    cpu, started = time.process_time(), time.monotonic()
    await asyncio.gather(*(one(i) for i in range(calls)))
    elapsed, cpu = time.monotonic() - started, time.process_time() - cpu
    await client.close()
    return {"rate": calls / elapsed, "cpu_ms": 1000 * cpu / calls}


def produce_records(kafka: KafkaSpec, records: int) -> None:
    ensure_topics(kafka, {kafka.input_topic: 3, kafka.output_topic: 3, kafka.dead_letter_topic: 1})
    rows = [json.loads(line) for line in ROWS.read_text().splitlines() if line.strip()]
    review = load_schema(SCHEMAS / "examples.reviews.Review.avsc")
    client = producer(kafka)
    for index in range(records):
        client.send(
            kafka.input_topic, framing.encode(rows[index % len(rows)], review, "single-object")
        )
    client.flush()
    client.close()


def pipeline_run(
    job: Job, profile: bool, workers: str = "1", server_pid: int | None = None
) -> dict[str, Any]:
    """``workers``: "1" LOOPBACK (this process), "N" or "pN" a worker pool (see above)."""
    count = int(workers.removeprefix("p"))
    pooled = workers.startswith("p") or count > 1
    split: Counter[str] = Counter()
    pool_cpu = 0.0
    with worker_pool() if pooled else nullcontext() as pool:
        pipeline, _ = build_pipeline(job.task, pool=pool, workers=count)
        server = cpu_seconds(server_pid) if server_pid else 0.0
        prism = sum(cpu_seconds(pid) for pid in children("prism"))  # Beam reuses its Prism
        cpu = time.process_time()
        with profiled() if profile else nullcontext(split) as split:
            summary = execute(pipeline)
            cpu = time.process_time() - cpu
            prism = sum(cpu_seconds(pid) for pid in children("prism")) - prism
        server = (cpu_seconds(server_pid) if server_pid else 0.0) - server
        if pool is not None:
            pool_cpu = _pool_cpu(pool.pid)
    written = summary.get("written.output")
    return {
        "rate": written / summary.wall_time_s,
        "wall_s": summary.wall_time_s,
        "written": written,
        "dead": sum(summary.dead_by_stage.values()),
        "cpu_ms": 1000 * cpu / max(written, 1),
        "workers_ms": 1000 * pool_cpu / max(written, 1),
        "prism_ms": 1000 * prism / max(written, 1),
        "server_ms": 1000 * server / max(written, 1),
        "prism_s": prism,
        "split": split,
    }


def _pool_cpu(pid: int, wait_s: float = 20.0) -> float:
    """The worker pool's CPU with its worker processes', once it has reaped them (Prism
    stops the workers when the job ends)."""
    deadline = time.monotonic() + wait_s
    while _live_children(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _live_children(pid: int) -> list[str]:
    found = []
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(entry.parent.name)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--tail-p99", type=float, default=None)
    parser.add_argument("--in-flight", type=int, default=250)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--json", action="store_true", help="one JSON line of the pipeline's numbers, no baseline"
    )
    parser.add_argument("--kafka", default="127.0.0.1:19092")
    parser.add_argument(
        "--cache",
        action="store_true",
        help="response cache on (off by default: the bare client makes every call, and the "
        "input rows repeat, so the cache would answer most records without one)",
    )
    parser.add_argument(
        "--workers",
        nargs="+",
        default=["1"],
        help="1: LOOPBACK (today's default); N >= 2: N worker processes; pN: a worker pool "
        "of N; several: one pipeline run each, compared with the first",
    )
    args = parser.parse_args()
    for value in args.workers:
        if not value.removeprefix("p").isdigit() or int(value.removeprefix("p")) < 1:
            parser.error(f"--workers: expected 1, N or pN, got {value!r}")

    server, base_url = start_server(args.latency, args.tail_p99)
    try:
        job = bench_job(base_url, args.in_flight, args.kafka, cache=args.cache)
        if args.json:  # for tests.bench.memory: only the drain in this process's peak memory
            # (the producer buffers up to 32 MiB of records: it runs in a process of its own)
            producing = multiprocessing.get_context("spawn").Process(
                target=produce_records, args=(job.task.kafka, args.records)
            )
            producing.start()
            producing.join()
            if producing.exitcode != 0:
                raise RuntimeError(f"producing the input failed (exit {producing.exitcode})")
            piped = pipeline_run(job, profile=False)
            piped["peak_rss_mb"] = peak_rss_mb("self")
            piped["prism_peak_rss_mb"] = max(map(peak_rss_mb, children("prism")), default=0.0)
            print(json.dumps({k: v for k, v in piped.items() if k != "split"}))
            return
        produce_records(job.task.kafka, args.records)
        server_stats(base_url, reset=True)
        base = asyncio.run(baseline(job, base_url, args.records, args.in_flight))
        base.update(seen_by_server(base_url))
        if len(set(args.workers)) < len(args.workers):
            parser.error("--workers: each setting once")
        runs: dict[str, dict[str, Any]] = {}
        for index, workers in enumerate(args.workers):
            if index:  # a fresh input topic for each run
                job = bench_job(base_url, args.in_flight, args.kafka, cache=args.cache)
                produce_records(job.task.kafka, args.records)
            server_stats(base_url, reset=True)
            runs[workers] = pipeline_run(job, args.profile, workers, server.pid)
            runs[workers].update(seen_by_server(base_url))
        piped = runs[args.workers[0]]
    finally:
        server.terminate()
        server.wait(timeout=10)

    latency = (
        f"log-normal, median {args.latency:.1f}s, p99 {args.tail_p99:.1f}s"
        if (args.tail_p99)
        else f"{args.latency:.1f}s"
    )
    mean = mean_latency(args.latency, args.tail_p99)
    ideal = args.in_flight / mean if mean else None  # Little's law
    print(
        f"provider latency {latency}; {args.records} records; {args.in_flight} in flight"
        + (f" (ideal {ideal:.0f} records/s at a mean latency of {mean:.2f}s)" if ideal else "")
    )
    print(
        f"baseline  bare AsyncOpenAI client: {base['rate']:7.1f} calls/s "
        f"({base['steady']:.1f} steady, as the server saw them), "
        f"{base['cpu_ms']:.2f} ms CPU per call, server saw {base['peak']} in flight"
    )
    print(
        f"pipeline  drain run (Prism):       {piped['rate']:7.1f} records/s "
        f"({piped['steady']:.1f} steady), "
        f"{piped['cpu_ms']:.2f} ms CPU per record in this process + {piped['prism_ms']:.2f} "
        f"in Prism; server saw {piped['peak']} in flight; {piped['written']} written, "
        f"{piped['dead']} dead-lettered, in {piped['wall_s']:.1f}s (with start-up)"
    )
    print(
        f"ratio     records/s pipeline / baseline = {piped['rate'] / base['rate']:.2f}"
        f" ({piped['steady'] / base['steady']:.2f} steady)"
        + (
            f"; pipeline / ideal = {piped['rate'] / ideal:.2f}"
            f" ({piped['steady'] / ideal:.2f} steady; baseline {base['steady'] / ideal:.2f})"
            if ideal
            else ""
        )
    )
    print(
        f"ratio     CPU per record / per call = {piped['cpu_ms'] / base['cpu_ms']:.2f} "
        f"(this process), {(piped['cpu_ms'] + piped['prism_ms']) / base['cpu_ms']:.2f} "
        f"(with Prism)"
    )
    if len(runs) > 1:
        for workers, run in runs.items():
            how = "LOOPBACK, this process" if workers == "1" else f"{workers} worker pool"
            print(
                f"workers   {how:24}: {run['rate']:7.1f} records/s "
                f"({run['rate'] / piped['rate']:.2f}x); CPU ms per record: this process "
                f"{run['cpu_ms']:.2f}, workers {run['workers_ms']:.2f}, Prism "
                f"{run['prism_ms']:.2f}, fault server {run['server_ms']:.2f}; "
                f"{run['written']} written, {run['dead']} dead-lettered, "
                f"server saw {run['peak']} in flight"
            )
    if args.profile:
        print_split(piped["split"], {"Prism (Go runner)": piped["prism_s"]})


if __name__ == "__main__":
    main()
