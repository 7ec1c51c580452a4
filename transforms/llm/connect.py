"""Build a provider's client on the worker: its secret resolved, its HTTP endpoint open."""

from __future__ import annotations

from typing import Any

from transforms.core.calls.providers import ProviderClient
from transforms.core.config.secrets import resolve_secret
from transforms.core.config.task import GenerationSpec, PolicySpec, ProviderSpec
from transforms.core.errors import TaskConfigError
from transforms.llm.chat_http import ChatEndpoint

__all__ = ["connect"]


def connect(
    spec: ProviderSpec, generation: GenerationSpec, policy: PolicySpec, **options: Any
) -> ProviderClient:
    """``options``: ``sleep`` and ``clock`` for tests. Raises ``TaskConfigError`` when the
    provider's API key variable is named but not set."""
    api_key = ""
    if spec.api_key_env:
        api_key = resolve_secret(spec.api_key_env) or ""
        if not api_key:
            raise TaskConfigError(
                f"provider {spec.name!r}: environment variable {spec.api_key_env} is not set"
            )
    endpoint = ChatEndpoint(spec.base_url, api_key, spec.timeout_s, spec.max_concurrency)
    return ProviderClient(spec, generation, policy, endpoint, secrets=[api_key], **options)
