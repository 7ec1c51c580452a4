"""What goes on the wire for an enriched record and for a dead letter: value and headers.

Dead-letter headers mirror Kafka Connect's ``DeadLetterQueueReporter`` (every
``__connect.errors.*`` header it writes, and the input record's own headers before them), so
existing tools understand them; the value is an Avro ``llm_enrich.DeadLetter`` in
single-object framing.
Outputs carry their source coordinates as headers, so duplicates are recognisable, and
the input record's own headers (trace ids, tenant, origin) as the task's
``output.input_headers`` allows; the stage's ``llm_enrich.*`` headers win on any clash.
"""

from __future__ import annotations

import fnmatch
import json
import os
import socket
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from schemas import dead_letter_schema, dead_letter_writers
from transforms.core.errors import Attempt
from transforms.core.formats import framing
from transforms.core.formats.codec import encode_output
from transforms.core.job import Job
from transforms.core.ledger.record import RecordUsage
from transforms.core.records import Enriched, Failure, Headers, KafkaRecord

__all__ = [
    "Envelope",
    "dead_letter_envelope",
    "dead_letter_value",
    "header_values",
    "output_envelope",
    "output_source",
    "read_dead_letter",
    "source_headers",
]

Header = tuple[str, bytes]
# Kafka's default message limit is about 1 MiB; a dead letter stays under it.
DEAD_LETTER_MAX_BYTES = 900_000


@dataclass(frozen=True)
class Envelope:
    """One record to write, and the input coordinates whose offset it settles."""

    key: bytes | None
    value: bytes
    headers: tuple[Header, ...]
    source: KafkaRecord


def text(value: str) -> str:
    """Text that is safe to encode as UTF-8 (lone surrogates from JSON become escapes)."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def source_headers(source: KafkaRecord) -> list[Header]:
    return [
        ("llm_enrich.source.topic", source.topic.encode()),
        ("llm_enrich.source.partition", str(source.partition).encode()),
        ("llm_enrich.source.offset", str(source.offset).encode()),
    ]


def header_values(headers: Headers) -> dict[str, str]:
    """Each header's value as text, by name (a repeated name: its last value; bytes that
    are not UTF-8 replaced, an absent value empty)."""
    return {k: (v or b"").decode(errors="replace") for k, v in headers}


def output_source(headers: Headers) -> tuple[str, int, int] | None:
    """The input coordinates an output was enriched from (its ``source_headers``), or None
    when the headers are missing or malformed."""
    values = header_values(headers)
    try:
        return (
            values["llm_enrich.source.topic"],
            int(values["llm_enrich.source.partition"]),
            int(values["llm_enrich.source.offset"]),
        )
    except (KeyError, ValueError):
        return None


def _envelope(source: KafkaRecord, value: bytes, headers: list[Header]) -> Envelope:
    return Envelope(source.key, value, tuple(headers), source)


def output_envelope(job: Job, enriched: Enriched, schema_id: int | None = None) -> Envelope:
    """Raises ``EncodeError`` when the output cannot be encoded. ``schema_id``: the output
    schema's registry id, for confluent framing."""
    value = encode_output(enriched.output, job.output_schema, job.task.output.framing, schema_id)
    headers = [
        *source_headers(enriched.source),
        ("llm_enrich.provider", enriched.provider.encode()),
        ("llm_enrich.model", enriched.model.encode()),
        ("llm_enrich.prompt_hash", job.prompt.hash.encode()),
        ("llm_enrich.output_schema", job.output_schema.identity.encode()),
        ("llm_enrich.attempts", _attempts_json(enriched.attempts).encode()),
        ("llm_enrich.usage", RecordUsage.of(enriched.attempts).header().encode()),
    ]
    if enriched.source.replay_count:
        headers.append(("llm_enrich.replay_count", str(enriched.source.replay_count).encode()))
    if enriched.repairs:
        headers.append(("llm_enrich.repairs", ",".join(enriched.repairs).encode()))
    if enriched.defaulted:
        headers.append(("llm_enrich.defaulted", ",".join(enriched.defaulted).encode()))
    if enriched.safety_flags:
        headers.append(("llm_enrich.injection", ",".join(enriched.safety_flags).encode()))
    if enriched.cache:  # "hit": served from the response cache, no call; "miss"
        headers.append(("llm_enrich.cache", enriched.cache.encode()))
    if enriched.cascade:  # the cascade step that answered, its confidence, who escalated
        headers.append(("llm_enrich.step", enriched.cascade.step.encode()))
        headers.append(("llm_enrich.cascade", enriched.cascade.as_json().encode()))
    copied = copied_input_headers(enriched.source.headers, job.task.output.input_headers)
    return _envelope(enriched.source, value, [*copied, *headers])


OWN_PREFIX = "llm_enrich."


def copied_input_headers(headers: Headers, allowed: str | Sequence[str]) -> list[Header]:
    """The input headers an output carries, in their order, repeated names kept. A header
    without a value (Kafka allows null) is copied as an empty value."""
    if allowed == "none":
        return []
    return [
        (name, value or b"")
        for name, value in headers
        if not name.startswith(OWN_PREFIX)
        and (allowed == "all" or any(fnmatch.fnmatchcase(name, p) for p in allowed))
    ]


def _attempts_json(attempts: tuple[Attempt, ...]) -> str:
    """Every attempt, compactly: provider, kind, status, error class, latency, and its
    line of the ledger (tokens, cached tokens, cost, lane); for a call several records
    shared, ``shared``: [this record's number, the records that shared it]."""
    return json.dumps([_attempt_item(a) for a in attempts], separators=(",", ":"))


def _attempt_item(attempt: Attempt) -> dict[str, Any]:
    item: dict[str, Any] = {
        "provider": attempt.provider,
        "kind": attempt.kind,
        "status": attempt.status,
        "error": (attempt.error or "").split(" ", 1)[0] or None,
        "latency_ms": round(attempt.latency_ms, 1),
        "prompt_tokens": attempt.prompt_tokens,
        "cached_tokens": attempt.cached_tokens,
        "completion_tokens": attempt.completion_tokens,
        "cost_usd": round(attempt.cost_usd, 8),
        "lane": attempt.lane,
    }
    if attempt.shared_by > 1:
        item["shared"] = [attempt.shared_index, attempt.shared_by]
    return item


def dead_letter_value(job: Job, failure: Failure, replay_count: int = 0) -> dict[str, Any]:
    source = failure.source
    return {
        "original": {
            "topic": source.topic,
            "partition": source.partition,
            "offset": source.offset,
            "timestamp_ms": source.timestamp_ms,
            "key": source.key,
            "value": source.value,
            "headers": [{"key": k, "value": v} for k, v in source.headers],
        },
        "stage": failure.stage,
        "error_class": failure.error_class,
        "error_message": text(failure.message),
        "attempts": [{**asdict(a), "error": a.error and text(a.error)} for a in failure.attempts],
        "last_raw_output": failure.raw_output and text(failure.raw_output),
        "validation_errors": [
            {"path": text(e.path), "message": text(e.message)} for e in failure.field_errors
        ],
        "prompt_hash": job.prompt.hash,
        "input_schema": failure.input_schema,
        "output_schema": job.output_schema.identity,
        "job_name": job.name,
        "job_version": job.version,
        "failed_at": failure.failed_at_ms,
        "replay_count": replay_count,
    }


def dead_letter_envelope(job: Job, failure: Failure) -> Envelope:
    source = failure.source
    datum = dead_letter_value(job, failure, source.replay_count)
    value = framing.encode(datum, dead_letter_schema(), "single-object")
    if len(value) > DEAD_LETTER_MAX_BYTES:
        # Too large for a Kafka message: keep the coordinates (the original stays in its
        # topic until retention) and everything else, and say so.
        datum["original"]["value"] = None
        datum["last_raw_output"] = (datum["last_raw_output"] or "")[:10_000] or None
        datum["error_message"] += (
            f" [original value of {len(source.value or b'')} bytes omitted from this dead "
            f"letter: too large; it is at {source.topic}[{source.partition}]@{source.offset}]"
        )
        value = framing.encode(datum, dead_letter_schema(), "single-object")
    copied = copied_input_headers(source.headers, job.task.output.input_headers)
    connect = [
        ("topic", source.topic),
        ("partition", str(source.partition)),
        ("offset", str(source.offset)),
        ("connector.name", job.name),
        ("task.id", worker_id()),
        ("stage", failure.stage),
        ("class.name", failure.component or "transforms.core.calls.enricher.Enricher"),
        ("exception.class.name", failure.error_class),
        ("exception.message", text(failure.message[:1000])),
        ("exception.stacktrace", failure.trace),
    ]
    headers = [
        *(h for h in copied if not h[0].startswith(CONNECT_PREFIX)),
        *((CONNECT_PREFIX + name, value.encode()) for name, value in connect if value),
        *source_headers(source),
        ("llm_enrich.prompt_hash", job.prompt.hash.encode()),
    ]
    return _envelope(source, value, headers)


CONNECT_PREFIX = "__connect.errors."


def worker_id() -> str:
    """Which worker wrote a dead letter (Connect's ``task.id``): host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def read_dead_letter(payload: bytes) -> dict[str, Any]:
    """Decode a dead-letter value written by any version of the dead-letter schema."""
    schema = dead_letter_schema()
    datum, _ = framing.decode(payload, schema, "single-object", dead_letter_writers())
    return datum
