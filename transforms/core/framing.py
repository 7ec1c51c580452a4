"""Avro framings: single-object (0xC3 0x01 + CRC-64-AVRO fingerprint) and raw (schemaless).

single-object: C3 01 | 8-byte little-endian fingerprint of the writer schema | body
raw:           body only; the writer schema is the task's schema
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from schemas import AvroSchema
from transforms.core.errors import DecodeError

__all__ = ["SINGLE_OBJECT_MAGIC", "decode", "encode"]

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
_HEADER_SIZE = len(SINGLE_OBJECT_MAGIC) + 8


def encode(datum: Any, schema: AvroSchema, framing: str) -> bytes:
    buffer = io.BytesIO()
    if framing == "single-object":
        buffer.write(SINGLE_OBJECT_MAGIC + schema.fingerprint)
    elif framing != "raw":
        raise ValueError(f"unknown framing {framing!r}")
    schemaless_writer(buffer, schema.parsed, datum)
    return buffer.getvalue()


def decode(
    payload: bytes,
    reader: AvroSchema,
    framing: str,
    writers: Mapping[bytes, AvroSchema] | None = None,
) -> tuple[dict[str, Any], AvroSchema]:
    """Decode one framed value; return the datum (resolved to ``reader``) and its writer.

    ``writers`` maps fingerprints to the writer schemas known for this topic; the reader
    schema is always known. Every malformed payload raises ``DecodeError``.
    """
    known = {reader.fingerprint: reader, **(writers or {})}
    if framing == "single-object":
        if len(payload) < _HEADER_SIZE or not payload.startswith(SINGLE_OBJECT_MAGIC):
            raise DecodeError(
                f"not Avro single-object encoded: expected header C3 01, got {payload[:2].hex()!r}"
            )
        fingerprint = payload[2:_HEADER_SIZE]
        writer = known.get(fingerprint)
        if writer is None:
            raise DecodeError(f"unknown writer schema fingerprint {fingerprint.hex()}")
        body = payload[_HEADER_SIZE:]
    elif framing == "raw":
        writer, body = reader, payload
    else:
        raise ValueError(f"unknown framing {framing!r}")
    return _read_body(body, writer, reader), writer


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
