"""Build a provider's client on the worker: its secret resolved, its HTTP endpoint open.
A ``mode: batch`` provider gets its Files/Batches client, its pending-batch file and its
queue instead of a chat endpoint."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from transforms.core.calls.batch_provider import BatchProviderClient, retry_transient
from transforms.core.calls.batching import BatchQueue
from transforms.core.calls.providers import Provider, ProviderClient
from transforms.core.config.secrets import required_secret
from transforms.core.config.task import GenerationSpec, PolicySpec, ProviderSpec
from transforms.llm.batch_api import OpenAIBatchApi
from transforms.llm.batch_state import SqlitePending
from transforms.llm.chat_http import ChatEndpoint

__all__ = ["connect"]


def connect(
    spec: ProviderSpec,
    generation: GenerationSpec,
    policy: PolicySpec,
    *,
    job: str = "llm-enrich",
    stopping: Callable[[], bool] = lambda: False,
    **options: Any,
) -> Provider:
    """``stopping``: whether the run is stopping (a batch queue stops waiting for its
    batches then). ``options``: ``sleep`` and ``clock`` for tests. Raises
    ``TaskConfigError`` when the provider's API key variable is named but not set."""
    api_key = required_secret(spec.api_key_env, f"provider {spec.name!r}")
    if spec.batch is None:
        endpoint = ChatEndpoint(
            spec.base_url, api_key, spec.timeout_s, spec.max_concurrency, spec.prefix_cache
        )
        return ProviderClient(spec, generation, policy, endpoint, secrets=[api_key], **options)
    batch = spec.batch
    assert batch.state_path is not None, "resolved when the task was loaded"
    api = OpenAIBatchApi(spec.base_url, api_key, spec.timeout_s, batch.completion_window, job)
    store = SqlitePending(batch.state_path, f"{spec.name} {spec.base_url}")
    queue = BatchQueue(
        batch,
        api,
        store,
        stopping=stopping,
        submit=retry_transient(policy, options.get("sleep", asyncio.sleep)),
    )

    async def close() -> None:
        await api.aclose()
        store.close()

    return BatchProviderClient(spec, generation, queue, secrets=[api_key], close=close)
