"""``prefix_cache: exact`` against the real llama-server: the same records in two orders
(one after the other, then all at once in reverse, serialised by the per-server lock) get
byte-identical answers, and every record after the first evaluates only its own tokens:
llama-server reports the fixed prefix as reused (``timings.cache_n``) and ``prompt_n`` as
the rest of the prompt."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import EXAMPLE_TASK
from tests.integration.conftest import LLM_URL, sample_reviews
from transforms.core.calls.providers import ProviderClient
from transforms.core.config.task import load_task
from transforms.core.job import compile_job
from transforms.llm.connect import connect

RECORDS = 12


def test_exact_prefix_answers_do_not_depend_on_the_record_order(llm_server: None) -> None:
    job = compile_job(load_task(EXAMPLE_TASK))
    update = {"base_url": LLM_URL, "prefix_cache": "exact", "timeout_s": 300}
    spec = job.task.chain[0].model_copy(update=update)
    rows = sample_reviews(RECORDS)

    async def run() -> tuple[list[Any], list[Any]]:
        client = connect(spec, job.task.generation, job.task.policy)
        assert isinstance(client, ProviderClient)
        endpoint = client._endpoint

        async def ask(index: int) -> Any:
            messages = job.prompt.messages(rows[index])
            return await endpoint.create(client.requests.body(messages, job.shape.json_schema))

        try:
            forward = [await ask(i) for i in range(RECORDS)]
            backward = await asyncio.gather(*(ask(i) for i in reversed(range(RECORDS))))
        finally:
            await client.aclose()
        return forward, list(reversed(backward))

    forward, backward = asyncio.run(run())
    for index in range(RECORDS):
        assert backward[index].choices[0].message.content == (
            forward[index].choices[0].message.content
        ), f"record {index}"
    timings = [(reply.model_extra or {})["timings"] for reply in forward[1:] + backward]
    prefix = {t["cache_n"] for t in timings}
    assert len(prefix) == 1, f"every record reuses the same prefix: {prefix}"
    for reply, t in zip(forward[1:] + backward, timings, strict=True):
        assert reply.usage is not None
        assert t["prompt_n"] == reply.usage.prompt_tokens - t["cache_n"]
        assert t["prompt_n"] < 150 < t["cache_n"]  # the record's tokens, not the few shots
