"""What a cache entry holds, and nothing else: the validated generated answer, who produced
it, what producing it cost, and when. Never an API key, a header, a raw HTTP exchange or a
copied input field (those come from the record being enriched)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["ENTRY_FIELDS", "CachedAnswer", "decode_entry", "encode_entry"]


@dataclass(frozen=True)
class CachedAnswer:
    answer: dict[str, Any]  # the generated fields only, as validated
    provider: str
    model: str
    calls: int  # provider calls it took (re-asks and failed tries included)
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    created_at_ms: int


ENTRY_FIELDS = frozenset(CachedAnswer.__dataclass_fields__)


def encode_entry(entry: CachedAnswer) -> bytes:
    return json.dumps(asdict(entry), separators=(",", ":"), allow_nan=False).encode()


def decode_entry(payload: bytes) -> CachedAnswer | None:
    """The entry, or None when the bytes are not one (corrupted, or another format)."""
    try:
        raw = json.loads(payload)
        if not isinstance(raw, dict) or set(raw) != ENTRY_FIELDS:
            return None
        if not isinstance(raw["answer"], dict):
            return None
        return CachedAnswer(**raw)
    except (ValueError, TypeError):
        return None
