"""Avro schemas shipped with the project, and the loader every other module uses.

A schema's identity is ``<fullname>@<fingerprint>``, the fingerprint being the
CRC-64-AVRO of its parsing canonical form (the one single-object framing carries).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

__all__ = [
    "SCHEMA_DIR",
    "AvroSchema",
    "dead_letter_schema",
    "dead_letter_writers",
    "feedback_schema",
    "load_schema",
    "parse_schema",
    "shadow_comparison_schema",
]

SCHEMA_DIR = Path(__file__).resolve().parent
DEAD_LETTER_FILE = SCHEMA_DIR / "llm_enrich.DeadLetter.avsc"
SHADOW_COMPARISON_FILE = SCHEMA_DIR / "llm_enrich.ShadowComparison.avsc"
FEEDBACK_FILE = SCHEMA_DIR / "llm_enrich.Feedback.avsc"
# Every earlier version of a shipped schema stays here, so old records stay readable.
HISTORY_DIR = SCHEMA_DIR / "history"


@dataclass(frozen=True)
class AvroSchema:
    """A parsed schema plus what framing and dead letters need to know about it."""

    raw: Any  # the schema as JSON (dict for named types)
    parsed: Any  # fastavro's parsed form, for readers and writers
    fingerprint: bytes  # 8 bytes, little-endian, as in single-object framing

    @property
    def fullname(self) -> str:
        name = self.parsed.get("name") if isinstance(self.parsed, dict) else None
        return str(name or self.parsed)

    @property
    def identity(self) -> str:
        return f"{self.fullname}@{self.fingerprint.hex()}"

    @property
    def fields(self) -> list[dict[str, Any]]:
        if not isinstance(self.parsed, dict) or self.parsed.get("type") != "record":
            return []
        return list(self.parsed["fields"])


def parse_schema(raw: Any) -> AvroSchema:
    parsed = fastavro.parse_schema(raw)
    canonical = to_parsing_canonical_form(parsed)
    return AvroSchema(
        raw=raw,
        parsed=parsed,
        fingerprint=bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO")),
    )


@lru_cache(maxsize=64)
def load_schema(path: str | Path) -> AvroSchema:
    """Parse an ``.avsc`` file. Raises ``ValueError`` naming the file when it is invalid."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return parse_schema(raw)
    except (OSError, ValueError, fastavro.schema.SchemaParseException) as exc:
        raise ValueError(f"{path}: not a valid Avro schema: {exc}") from None


def dead_letter_schema() -> AvroSchema:
    return load_schema(DEAD_LETTER_FILE)


def shadow_comparison_schema() -> AvroSchema:
    return load_schema(SHADOW_COMPARISON_FILE)


def feedback_schema() -> AvroSchema:
    """The feedback contract (``llm_enrich.Feedback``): what downstream systems write to
    a task's ``feedback.topic`` when they use Avro."""
    return load_schema(FEEDBACK_FILE)


@lru_cache(maxsize=1)
def dead_letter_writers() -> dict[bytes, AvroSchema]:
    """Every version of the dead-letter schema ever shipped, by fingerprint."""
    versions = [load_schema(p) for p in sorted(HISTORY_DIR.glob("llm_enrich.DeadLetter.v*.avsc"))]
    return {s.fingerprint: s for s in [*versions, dead_letter_schema()]}
