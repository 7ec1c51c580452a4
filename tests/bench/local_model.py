"""Benchmark: the local model (deploy/llm.sh) on the demo's prompts. Where a record's
time goes (llama-server's own timings: prompt evaluation and generation), and whether
reusing the KV cache of the shared few-shot prefix (llama-server's ``cache_prompt``)
changes any answer.

    .venv/bin/python -m tests.bench.local_model --records 20
    .venv/bin/python -m tests.bench.local_model --records 40 --fresh 2 --port 18090

Each request is the stage's (the example task's rendered messages, generation parameters
and response format), sent one at a time as the demo's single server slot serves them.
Modes, in one run: ``no cache`` (the baseline), then ``cache`` (plain ``cache_prompt``) in
the records' order and in reverse order (so each record follows a different one: the
prefix reused differs), then ``exact`` (``prefix_cache: exact``, through the stage's own
``ChatEndpoint``: warm-up, reset + record per record) in both orders. An answer that
differs by one byte from the first run's baseline is counted, and so is an ``exact``
answer that differs from the first ``exact`` answer to the same record.

``--fresh N`` starts a llama-server of its own on ``--port`` (deploy/llm.sh) N times, one
run per fresh server, and stops it after each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import tempfile
import time
import urllib.request
from typing import Any

from tests.conftest import REPO
from transforms.core.calls.providers import ProviderClient, response_format
from transforms.core.config.task import load_task
from transforms.core.job import Job, compile_job
from transforms.llm.chat_http import ChatEndpoint

TASK = REPO / "pipelines/examples/reviews/task.yaml"
ROWS = REPO / "pipelines/examples/reviews/reviews.jsonl"


def sample_rows(count: int) -> list[dict[str, Any]]:
    """The demo's sample reviews, cycled to ``count``."""
    lines = [line for line in ROWS.read_text().splitlines() if line.strip()]
    return [json.loads(lines[i % len(lines)]) for i in range(count)]


def request_body(job: Job, row: dict[str, Any], cache_prompt: bool) -> bytes:
    provider, generation = job.task.chain[0], job.task.generation
    return json.dumps(
        {
            "model": provider.model,
            "temperature": generation.temperature,
            "seed": generation.seed,
            "max_tokens": generation.max_tokens,
            "response_format": response_format(job.shape.json_schema),
            "messages": job.prompt.messages(row),
            "cache_prompt": cache_prompt,
        }
    ).encode()


def ask(url: str, body: bytes) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=300) as reply:
        return dict(json.load(reply))


def run_mode(
    job: Job, url: str, rows: list[dict[str, Any]], order: list[int], cache_prompt: bool
) -> dict[str, Any]:
    answers: dict[int, str] = {}
    prompt_tokens = prompt_ms = generated = generation_ms = 0.0
    started = time.monotonic()
    for index in order:
        reply = ask(url, request_body(job, rows[index], cache_prompt))
        answers[index] = reply["choices"][0]["message"]["content"]
        timings = reply.get("timings", {})
        prompt_tokens += reply["usage"]["prompt_tokens"]
        prompt_ms += timings.get("prompt_ms", 0.0)
        generated += timings.get("predicted_n", 0)
        generation_ms += timings.get("predicted_ms", 0.0)
    wall = time.monotonic() - started
    count = len(order)
    return {
        "answers": answers,
        "rate": count / wall,
        "prompt_tokens": prompt_tokens / count,
        "prompt_ms": prompt_ms / count,
        "generated": generated / count,
        "generation_ms": generation_ms / count,
    }


def run_exact(job: Job, url: str, rows: list[dict[str, Any]], order: list[int]) -> dict[str, Any]:
    """The records through ``ChatEndpoint(prefix_cache="exact")`` with the stage's own
    request bodies; the warm-up is in the time of the first record."""
    base_url = url.removesuffix("/chat/completions")
    provider = job.task.chain[0].model_copy(update={"base_url": base_url})

    async def run() -> dict[str, Any]:
        endpoint = ChatEndpoint(base_url, "", 300, 1, prefix_cache="exact")
        client = ProviderClient(provider, job.task.generation, job.task.policy, endpoint)
        answers: dict[int, str] = {}
        prompt_tokens = 0.0
        started = time.monotonic()
        try:
            for index in order:
                body = client.requests.body(job.prompt.messages(rows[index]), job.shape.json_schema)
                reply = await endpoint.create(body)
                answers[index] = reply.choices[0].message.content or ""
                prompt_tokens += reply.usage.prompt_tokens if reply.usage else 0
        finally:
            await endpoint.aclose()
        wall = time.monotonic() - started
        count = len(order)
        return {"answers": answers, "rate": count / wall, "prompt_tokens": prompt_tokens / count}

    return asyncio.run(run())


def one_run(job: Job, url: str, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    forward = list(range(len(rows)))
    return {
        "no cache": run_mode(job, url, rows, forward, cache_prompt=False),
        "cache": run_mode(job, url, rows, forward, cache_prompt=True),
        "cache, reversed": run_mode(job, url, rows, forward[::-1], cache_prompt=True),
        "exact": run_exact(job, url, rows, forward),
        "exact, reversed": run_exact(job, url, rows, forward[::-1]),
    }


def llm(command: str, port: int, state: str) -> None:
    env = {**os.environ, "LLM_ENRICH_LLM_PORT": str(port), "LLM_ENRICH_STATE": state}
    subprocess.run(["bash", str(REPO / "deploy/llm.sh"), command], env=env, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20)
    parser.add_argument("--url", default="http://127.0.0.1:18080/v1/chat/completions")
    parser.add_argument("--fresh", type=int, default=0, help="runs, each on a fresh server")
    parser.add_argument("--port", type=int, default=18090, help="the fresh servers' port")
    args = parser.parse_args()
    job = compile_job(load_task(TASK))
    rows = sample_rows(args.records)
    runs: list[dict[str, dict[str, Any]]] = []
    if args.fresh:
        url = f"http://127.0.0.1:{args.port}/v1/chat/completions"
        with tempfile.TemporaryDirectory(prefix="llm-bench-") as state:
            for _ in range(args.fresh):
                llm("start", args.port, state)
                try:
                    runs.append(one_run(job, url, rows))
                finally:
                    llm("stop", args.port, state)
    else:
        runs.append(one_run(job, args.url, rows))
    report(runs, len(rows))


def report(runs: list[dict[str, dict[str, Any]]], count: int) -> None:
    base = runs[0]["no cache"]["answers"]
    first_exact = runs[0]["exact"]["answers"]
    print(f"local model, {count} records of the demo's task, one at a time, {len(runs)} run(s)")
    for number, modes in enumerate(runs, 1):
        rate = modes["no cache"]["rate"]
        for name, mode in modes.items():
            same = sum(mode["answers"][i] == base[i] for i in range(count))
            line = (
                f"run {number} {name:16} {mode['rate']:5.2f} records/s "
                f"({mode['rate'] / rate:.2f}x);"
                f" {mode['prompt_tokens']:.0f} prompt tokens; same as run 1's no cache: "
                f"{same}/{count}"
            )
            if name.startswith("exact"):
                stable = sum(mode["answers"][i] == first_exact[i] for i in range(count))
                line += f"; same as run 1's exact: {stable}/{count}"
            if "prompt_ms" in mode:
                line += (
                    f"; prompt {mode['prompt_ms']:.0f} ms, generation {mode['generated']:.0f}"
                    f" tokens in {mode['generation_ms']:.0f} ms"
                )
            print(line)


if __name__ == "__main__":
    main()
