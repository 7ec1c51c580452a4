"""Avro framings: how the writer schema is named in front of the Avro body.

single-object: C3 01 | 8-byte little-endian CRC-64-AVRO fingerprint | body
confluent:     00    | 4-byte big-endian schema-registry id         | body
raw:           body only; the writer schema is the task's schema
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from schemas import AvroSchema
from transforms.core.errors import DecodeError

__all__ = ["CONFLUENT_MAGIC", "SINGLE_OBJECT_MAGIC", "SchemaById", "decode", "encode"]

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"
_SINGLE_OBJECT_HEADER = len(SINGLE_OBJECT_MAGIC) + 8
_CONFLUENT_HEADER = len(CONFLUENT_MAGIC) + 4

# Looks a registry schema id up (raises KeyError when the registry does not know it).
SchemaById = Callable[[int], AvroSchema]


def encode(datum: Any, schema: AvroSchema, framing: str, schema_id: int | None = None) -> bytes:
    buffer = io.BytesIO()
    if framing == "single-object":
        buffer.write(SINGLE_OBJECT_MAGIC + schema.fingerprint)
    elif framing == "confluent":
        if schema_id is None:
            raise ValueError("confluent framing needs the schema's registry id")
        buffer.write(CONFLUENT_MAGIC + schema_id.to_bytes(4, "big"))
    elif framing != "raw":
        raise ValueError(f"unknown framing {framing!r}")
    schemaless_writer(buffer, schema.parsed, datum)
    return buffer.getvalue()


def decode(
    payload: bytes,
    reader: AvroSchema,
    framing: str,
    writers: Mapping[bytes, AvroSchema] | None = None,
    by_id: SchemaById | None = None,
) -> tuple[dict[str, Any], AvroSchema]:
    """Decode one framed value; return the datum (resolved to ``reader``) and its writer.

    ``writers`` maps fingerprints to the writer schemas known for this topic (the reader
    schema is always known); ``by_id`` looks registry ids up, for confluent framing. Every
    malformed payload raises ``DecodeError``.
    """
    if framing == "single-object":
        writer, body = _single_object(payload, {reader.fingerprint: reader, **(writers or {})})
    elif framing == "confluent":
        writer, body = _confluent(payload, by_id)
    elif framing == "raw":
        writer, body = reader, payload
    else:
        raise ValueError(f"unknown framing {framing!r}")
    return _read_body(body, writer, reader), writer


def _single_object(payload: bytes, known: Mapping[bytes, AvroSchema]) -> tuple[AvroSchema, bytes]:
    if len(payload) < _SINGLE_OBJECT_HEADER or not payload.startswith(SINGLE_OBJECT_MAGIC):
        raise DecodeError(
            f"not Avro single-object encoded: expected header C3 01, got {payload[:2].hex()!r}"
        )
    fingerprint = payload[2:_SINGLE_OBJECT_HEADER]
    writer = known.get(fingerprint)
    if writer is None:
        raise DecodeError(f"unknown writer schema fingerprint {fingerprint.hex()}")
    return writer, payload[_SINGLE_OBJECT_HEADER:]


def _confluent(payload: bytes, by_id: SchemaById | None) -> tuple[AvroSchema, bytes]:
    if by_id is None:
        raise ValueError("confluent framing needs a schema registry")
    if len(payload) < _CONFLUENT_HEADER or not payload.startswith(CONFLUENT_MAGIC):
        raise DecodeError(
            f"not Confluent-framed Avro: expected magic byte 00, got {payload[:1].hex()!r}"
        )
    schema_id = int.from_bytes(payload[1:_CONFLUENT_HEADER], "big")
    try:
        return by_id(schema_id), payload[_CONFLUENT_HEADER:]
    except KeyError:
        raise DecodeError(f"schema id {schema_id} is not in the registry") from None


def _read_body(body: bytes, writer: AvroSchema, reader: AvroSchema) -> dict[str, Any]:
    stream = io.BytesIO(body)
    try:
        datum = schemaless_reader(stream, writer.parsed, reader.parsed)
    except Exception as exc:  # fastavro raises EOFError, ValueError, UnicodeDecodeError, ...
        reason = f"{type(exc).__name__}: {exc}"
        raise DecodeError(f"invalid Avro body for {writer.identity}: {reason}") from None
    if stream.tell() != len(body):
        raise DecodeError(
            f"invalid Avro body for {writer.identity}: {len(body) - stream.tell()} trailing bytes"
        )
    if not isinstance(datum, dict):
        raise DecodeError(f"expected an Avro record, got {type(datum).__name__}")
    return datum
