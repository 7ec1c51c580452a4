"""Fine-tuning export, the pure part: which outputs become training examples, and how.

    output record (value + llm_enrich.* headers)
      -> reason_to_skip: other prompt version, time, provider, model, repaired or
         re-asked (``clean_only``), no source coordinates
      -> the input record (read at the source coordinates by ``pipelines.export``)
      -> line: ``openai-chat`` {"messages": [system, user, assistant]} or
               ``golden`` {"input": input fields, "expected": generated fields}
      -> dedupe by the rendered user message; validation split by its hash

The system and user messages are rendered by the task's current prompt (the same text the
model was asked with: the few-shot turns are left out, a fine-tuned model should not need
them); the assistant message is the validated answer's generated fields as JSON, exactly
the shape the response schema asks for. Copied fields are not part of the answer.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import hashlib
import json
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from transforms.core.errors import PromptError
from transforms.core.job import Job

__all__ = ["ExportFilter", "Exporter", "OutputRecord", "jsonable", "reason_to_skip"]

Format = Literal["openai-chat", "golden"]


@dataclass(frozen=True)
class OutputRecord:
    """An output topic record: its timestamp, headers (decoded to text) and value."""

    partition: int
    offset: int
    timestamp_ms: int | None
    headers: Mapping[str, str]
    value: Mapping[str, Any]

    def source(self) -> tuple[str, int, int] | None:
        try:
            return (
                self.headers["llm_enrich.source.topic"],
                int(self.headers["llm_enrich.source.partition"]),
                int(self.headers["llm_enrich.source.offset"]),
            )
        except (KeyError, ValueError):
            return None


@dataclass(frozen=True)
class ExportFilter:
    since_ms: int | None = None
    until_ms: int | None = None
    providers: frozenset[str] = frozenset()
    models: frozenset[str] = frozenset()
    clean_only: bool = False  # no repair, no re-ask

    def describe(self) -> dict[str, Any]:
        return {
            "since_ms": self.since_ms,
            "until_ms": self.until_ms,
            "providers": sorted(self.providers),
            "models": sorted(self.models),
            "clean_only": self.clean_only,
        }


def _reasked(attempts_header: str) -> bool:
    try:
        attempts = json.loads(attempts_header or "[]")
    except ValueError:
        return True  # unreadable: not clean
    return any(isinstance(a, dict) and a.get("kind") == "reask" for a in attempts)


def reason_to_skip(record: OutputRecord, selection: ExportFilter, prompt_hash: str) -> str | None:
    """Why this output is not exported (a counted reason), or None."""
    headers = record.headers
    if headers.get("llm_enrich.prompt_hash") != prompt_hash:
        return "other_prompt"
    if record.source() is None:
        return "no_source_headers"
    moment = record.timestamp_ms
    if selection.since_ms is not None and (moment is None or moment < selection.since_ms):
        return "before_since"
    if selection.until_ms is not None and (moment is None or moment >= selection.until_ms):
        return "after_until"
    if selection.providers and headers.get("llm_enrich.provider") not in selection.providers:
        return "provider"
    if selection.models and headers.get("llm_enrich.model") not in selection.models:
        return "model"
    if selection.clean_only and headers.get("llm_enrich.repairs"):
        return "repaired"
    if selection.clean_only and _reasked(headers.get("llm_enrich.attempts", "")):
        return "reasked"
    return None


def jsonable(value: Any) -> Any:
    """Avro-decoded values as JSON: timestamps ISO 8601, decimals and UUIDs as strings,
    bytes as base64."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


@dataclass
class Exporter:
    """Turns (input fields, output value) pairs into lines; dedupes; splits."""

    job: Job
    format: Format = "openai-chat"
    validation_share: float = 0.0
    counts: Counter[str] = field(default_factory=Counter)
    _seen: set[str] = field(default_factory=set)

    def line(self, fields: Mapping[str, Any], output: Mapping[str, Any]) -> tuple[str, bool] | None:
        """(JSON line, is validation) or None when skipped (counted)."""
        try:
            messages = self.job.prompt.messages(dict(fields))
        except PromptError:
            self.counts["prompt_error"] += 1
            return None
        user = messages[-1]["content"]
        digest = hashlib.sha256(user.encode()).hexdigest()
        if digest in self._seen:
            self.counts["duplicate"] += 1
            return None
        self._seen.add(digest)
        answer = {k: jsonable(output.get(k)) for k in self.job.shape.generated_fields}
        if self.format == "golden":
            body: dict[str, Any] = {"input": jsonable(dict(fields)), "expected": answer}
        else:
            body = {
                "messages": [
                    messages[0],
                    {"role": "user", "content": user},
                    {"role": "assistant", "content": json.dumps(answer, ensure_ascii=False)},
                ]
            }
        validation = int(digest[:8], 16) / 2**32 < self.validation_share
        self.counts["validation" if validation else "train"] += 1
        return json.dumps(body, ensure_ascii=False), validation
