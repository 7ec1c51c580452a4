"""The local model's prompt cache (llama-server reusing the KV cache of the prefix a
request shares with the one before it) must not change a single answer: every demo record
gets the same bytes with the cache off, and with it on in two orders (so each record
follows a different one, and the reused prefix differs). The demo's server runs with the
cache on (``deploy/llm.sh``) only because this holds."""

from __future__ import annotations

from tests.bench.local_model import TASK, run_mode, sample_rows
from tests.integration.conftest import LLM_URL
from transforms.core.config.job import compile_job
from transforms.core.config.task import load_task

RECORDS = 12


def test_answers_are_byte_identical_with_and_without_the_prompt_cache(llm_server: None) -> None:
    job = compile_job(load_task(TASK))
    rows = sample_rows(RECORDS)
    url = LLM_URL + "/chat/completions"
    forward = list(range(len(rows)))
    plain = run_mode(job, url, rows, forward, cache_prompt=False)
    cached = run_mode(job, url, rows, forward, cache_prompt=True)
    reverse = run_mode(job, url, rows, forward[::-1], cache_prompt=True)
    assert len(set(plain["answers"].values())) > 1, "every record got the same answer"
    assert cached["answers"] == plain["answers"]
    assert reverse["answers"] == plain["answers"]
    assert cached["prompt_ms"] < plain["prompt_ms"], "the cache was not used"
