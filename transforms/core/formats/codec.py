"""Turn Kafka values into input records and enriched records into Kafka values."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from schemas import AvroSchema
from transforms.core.answers.validation import validate
from transforms.core.errors import DecodeError, EncodeError, SystemicFault
from transforms.core.formats import framing
from transforms.core.job import Job
from transforms.core.records import KafkaRecord, Parsed

__all__ = ["InputDecoder", "RegistryLookup", "encode_output", "input_decoder"]

# (framing, registry url) -> the id lookup a confluent framing needs (``registry_lookup``)
RegistryLookup = Callable[[str, str | None], framing.SchemaById | None]


class InputDecoder:
    """Decodes input values (Avro in a framing, or JSON validated against the schema)."""

    def __init__(
        self,
        schema: AvroSchema,
        fmt: str,
        framing_name: str,
        max_bytes: int,
        writers: dict[bytes, AvroSchema] | None = None,
        by_id: framing.SchemaById | None = None,
    ) -> None:
        self.schema = schema
        self.writers = writers or {}
        self.by_id = by_id
        self.format = fmt
        self.framing = framing_name
        self.max_bytes = max_bytes

    def decode(self, record: KafkaRecord) -> Parsed:
        """Raises ``DecodeError`` for every value that is not a valid input record."""
        try:
            return self._decode(record)
        except (DecodeError, SystemicFault):  # an unreachable registry is not the record's
            raise
        except Exception as exc:  # RecursionError on deep JSON, ValueError on huge ints, ...
            raise DecodeError(f"cannot decode value: {type(exc).__name__}: {exc}") from None

    def _decode(self, record: KafkaRecord) -> Parsed:
        value = record.value
        if value is None:
            raise DecodeError("record has no value (tombstone)")
        if len(value) > self.max_bytes:
            raise DecodeError(
                f"record value is {len(value)} bytes, over input.max_bytes ({self.max_bytes})"
            )
        if self.format == "json":
            return Parsed(record, self._decode_json(value), self.schema.identity)
        fields, writer = framing.decode(value, self.schema, self.framing, self.writers, self.by_id)
        return Parsed(record, fields, writer.identity)

    def _decode_json(self, value: bytes) -> dict[str, Any]:
        try:
            datum = json.loads(value)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DecodeError(f"not valid JSON: {exc}") from None
        errors = validate(datum, self.schema.parsed)
        if errors:
            raise DecodeError(
                f"JSON record does not match {self.schema.identity}: "
                + "; ".join(str(e) for e in errors[:5]),
                field_errors=errors,
            )
        return dict(datum)


def input_decoder(job: Job, lookup: RegistryLookup) -> InputDecoder:
    """The decoder of the job's input topic; ``lookup`` gives its registry's id lookup."""
    spec = job.task.input
    return InputDecoder(
        job.input_schema,
        spec.format,
        spec.framing,
        spec.max_bytes,
        job.input_writers,
        lookup(spec.framing, spec.registry_url),
    )


def encode_output(
    datum: dict[str, Any], schema: AvroSchema, framing_name: str, schema_id: int | None = None
) -> bytes:
    try:
        return framing.encode(datum, schema, framing_name, schema_id)
    except Exception as exc:  # fastavro raises ValueError, TypeError, ...
        raise EncodeError(f"cannot encode output as {schema.identity}: {exc}") from None
