"""Benchmark: records/s of the drain pipeline against a provider that answers in 1 s.

The ratio that matters is the pipeline's throughput over a baseline measured in the same
run on the same machine: the bare ``AsyncOpenAI`` client (``chat.completions.create``, the
usual way to call it) sending the same number of calls with the same concurrency to the
same server. ``--latency 0`` shows the per-record CPU cost instead of the waiting. Both talk to a
fault server running in its own process, which also reports the calls it saw in flight.

    .venv/bin/python -m tests.bench.concurrency --records 1000 --latency 1.0 --in-flight 300

Needs the local broker (deploy/kafka.sh start).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import openai
import yaml

from pipelines.enrich_pipeline import build_pipeline
from pipelines.execute import execute
from schemas import load_schema
from tests.conftest import REPO, SCHEMAS
from transforms.core.config.job import compile_job
from transforms.core.config.task import load_task
from transforms.core.formats import framing
from transforms.kafka.admin import ensure_topics
from transforms.kafka.client import producer


def start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.fault_server", "--port", "0", "--latency", str(latency)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert server.stdout is not None
    line = server.stdout.readline().strip()
    if not line.startswith("READY "):
        raise RuntimeError(f"fault server did not start: {line!r}")
    return server, line.removeprefix("READY ")


def server_stats(base_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/stats", timeout=5) as reply:
        return dict(json.load(reply))


async def baseline(base_url: str, calls: int, concurrency: int) -> float:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=60)
    slots = asyncio.Semaphore(concurrency)
    schema = {
        "type": "object",
        "properties": {"rating": {"type": "integer"}},
        "required": ["rating"],
        "additionalProperties": False,
    }

    async def one() -> None:
        async with slots:
            await client.chat.completions.create(
                model="fault",
                messages=[{"role": "user", "content": "Review: fine"}],
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": "a", "strict": True, "schema": schema},
                },
            )

    started = time.monotonic()
    await asyncio.gather(*(one() for _ in range(calls)))
    elapsed = time.monotonic() - started
    await client.close()
    return calls / elapsed


def pipeline_run(base_url: str, records: int, in_flight: int, bootstrap: str) -> dict[str, Any]:
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
            "name": "slow",
            "base_url": base_url,
            "model": "fault",
            "timeout_s": 60,
            "max_concurrency": in_flight,
        }
    ]
    raw["policy"] = {"max_in_flight": in_flight}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "task.yaml"
        path.write_text(yaml.safe_dump(raw))
        job = compile_job(load_task(path))
    kafka = job.task.kafka
    ensure_topics(kafka, {kafka.input_topic: 3, kafka.output_topic: 3, kafka.dead_letter_topic: 1})
    rows = [
        json.loads(line)
        for line in (REPO / "pipelines/examples/reviews/reviews.jsonl").read_text().splitlines()
    ]
    review = load_schema(SCHEMAS / "examples.reviews.Review.avsc")
    client = producer(kafka)
    for index in range(records):
        client.send(
            kafka.input_topic, framing.encode(rows[index % len(rows)], review, "single-object")
        )
    client.flush()
    client.close()

    pipeline, _ = build_pipeline(job.task)
    summary = execute(pipeline)
    return {
        "records_per_s": summary.get("written.output") / summary.wall_time_s,
        "wall_s": summary.wall_time_s,
        "written": summary.get("written.output"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--in-flight", type=int, default=300)
    parser.add_argument("--kafka", default="127.0.0.1:19092")
    args = parser.parse_args()

    server, base_url = start_server(args.latency)
    try:
        base_rate = asyncio.run(baseline(base_url, args.records, args.in_flight))
        base_peak = server_stats(base_url)["max_in_flight"]
        piped = pipeline_run(base_url, args.records, args.in_flight, args.kafka)
        stats = server_stats(base_url)
    finally:
        server.terminate()
        server.wait(timeout=10)
    ideal = f"ideal {args.in_flight / args.latency:.0f} records/s" if args.latency else "no wait"
    print(
        f"provider latency {args.latency:.1f}s, {args.records} records, "
        f"max_in_flight {args.in_flight} ({ideal})"
    )
    print(
        f"baseline  bare AsyncOpenAI client: {base_rate:7.1f} calls/s, "
        f"server saw {base_peak} in flight"
    )
    print(
        f"pipeline  drain run (Prism): {piped['records_per_s']:7.1f} records/s, "
        f"server saw {stats['max_in_flight']} in flight, {piped['written']} written "
        f"in {piped['wall_s']:.1f}s"
    )
    print(f"ratio     pipeline / baseline = {piped['records_per_s'] / base_rate:.2f}")


if __name__ == "__main__":
    main()
