"""The cache key: a hash of everything that determines an answer, and of nothing secret.

    provider name, base URL (without any user:password@), model, and ``prefix_cache``
    when it is on (it changes how the prompt is evaluated, so it may change the answer)
    the rendered messages (system, few shots, the record)
    generation parameters (temperature, seed, max_tokens)
    the response JSON schema sent to the model
    the prompt hash and the output schema's identity (fullname@fingerprint)
    what decides whether an answer is accepted: ``output.on_invalid``, the safety layer's
    output rules and moderation endpoint (so tightening a rule never serves an answer
    that only passed the looser one)

The last two repeat what the messages and the response schema already say, on purpose: an
answer produced under another prompt definition or another output schema is never served,
even where two of them happened to render the same messages. The material is canonical
JSON (sorted keys), so the key is the same in every process and on every machine.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from transforms.core.config.task import GenerationSpec, ProviderSpec

__all__ = ["KEY_VERSION", "acceptance_of", "answer_key", "key_material"]

# Bump when what an entry means changes: every earlier entry becomes a miss.
KEY_VERSION = "llm-enrich/answer/1"


def _public_url(url: str) -> str:
    """The URL without credentials (``https://user:secret@host`` -> ``https://host``)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), parts.query, ""))


def key_material(
    *,
    provider: ProviderSpec,
    generation: GenerationSpec,
    messages: Sequence[Mapping[str, str]],
    response_schema: Mapping[str, Any],
    prompt_hash: str,
    output_schema: str,
    acceptance: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What the key hashes (shown by tests; never stored)."""
    return {
        "version": KEY_VERSION,
        "provider": provider.name,
        "base_url": _public_url(provider.base_url),
        "model": provider.model,
        # only when on: keys of tasks without it stay what they were
        **({"prefix_cache": provider.prefix_cache} if provider.prefix_cache != "off" else {}),
        "messages": [dict(m) for m in messages],
        "generation": {
            "temperature": generation.temperature,
            "seed": generation.seed,
            "max_tokens": generation.max_tokens,
        },
        "response_schema": response_schema,
        "prompt_hash": prompt_hash,
        "output_schema": output_schema,
        "acceptance": dict(acceptance or {}),
    }


def acceptance_of(task: Any) -> dict[str, Any]:
    """The task settings that decide whether an answer is accepted (no secrets: the
    moderation endpoint's key variable and any URL credentials are left out)."""
    moderation = task.safety.moderation
    return {
        "on_invalid": dict(task.output.on_invalid),
        "output_rules": {
            name: rule.model_dump(mode="json") for name, rule in task.safety.output_rules.items()
        },
        "moderation": None
        if moderation is None
        else {
            "base_url": _public_url(moderation.base_url),
            "model": moderation.model,
            "categories": list(moderation.categories),
        },
        # only with a cascade (keys of tasks without one stay what they were): an answer a
        # step accepted under one threshold is not one it accepts under another
        **({"cascade": _cascade_acceptance(task.cascade)} if task.cascade else {}),
    }


def _cascade_acceptance(cascade: Any) -> dict[str, Any]:
    return {
        "steps": [
            {"name": s.name, "min_confidence": s.min_confidence, "skip": s.skip}
            for s in cascade.steps
        ],
        "repair_factor": cascade.repair_factor,
        "top_logprobs": cascade.top_logprobs,
    }


def answer_key(**inputs: Any) -> str:
    """sha256 of the canonical JSON of ``key_material(**inputs)``, hex."""
    text = json.dumps(
        key_material(**inputs),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
