"""Benchmark: the local model (deploy/llm.sh) on the demo's prompts. Where a record's
time goes (llama-server's own timings: prompt evaluation and generation), and whether
reusing the KV cache of the shared few-shot prefix (llama-server's ``cache_prompt``)
changes any answer.

    .venv/bin/python -m tests.bench.local_model --records 20

Each request is the stage's (the example task's rendered messages, generation parameters
and response format), sent one at a time as the demo's single server slot serves them.
Modes, in one run: ``no cache`` (the baseline), then ``cache`` in the records' order and
in reverse order (so each record follows a different one: the prefix reused differs).
An answer that differs by one byte from the baseline's is counted.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.request
from typing import Any

from tests.conftest import REPO
from transforms.core.calls.providers import response_format
from transforms.core.config.job import Job, compile_job
from transforms.core.config.task import load_task

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20)
    parser.add_argument("--url", default="http://127.0.0.1:18080/v1/chat/completions")
    args = parser.parse_args()
    job = compile_job(load_task(TASK))
    rows = sample_rows(args.records)
    forward = list(range(len(rows)))
    modes = {
        "no cache": run_mode(job, args.url, rows, forward, cache_prompt=False),
        "cache": run_mode(job, args.url, rows, forward, cache_prompt=True),
        "cache, reversed": run_mode(job, args.url, rows, forward[::-1], cache_prompt=True),
    }
    base = modes["no cache"]
    print(f"local model, {len(rows)} records of the demo's task, one at a time")
    for name, mode in modes.items():
        differ = sum(mode["answers"][i] != base["answers"][i] for i in forward)
        print(
            f"{name:16} {mode['rate']:5.2f} records/s ({mode['rate'] / base['rate']:.2f}x); "
            f"per record: {mode['prompt_tokens']:.0f} prompt tokens, prompt "
            f"{mode['prompt_ms']:6.0f} ms, generation {mode['generated']:.0f} tokens in "
            f"{mode['generation_ms']:5.0f} ms; answers differing from no cache: {differ}"
        )


if __name__ == "__main__":
    main()
