from __future__ import annotations

import json
import os

import pytest

from schemas import load_schema, parse_schema
from tests.conftest import SCHEMAS
from transforms.core.errors import DecodeError
from transforms.core.formats import framing
from transforms.core.formats.codec import InputDecoder
from transforms.core.records import KafkaRecord

REVIEW = load_schema(SCHEMAS / "examples.reviews.Review.avsc")
DATUM = {"review_id": "r1", "product": "Lamp", "text": "Bright.", "submitted_at": 1767276083108}


def _record(value: bytes | None) -> KafkaRecord:
    return KafkaRecord("reviews", 0, 7, 0, b"k", value)


def _decoder(fmt: str = "avro", framing_name: str = "single-object") -> InputDecoder:
    return InputDecoder(REVIEW, fmt, framing_name, max_bytes=1000)


def test_fingerprint_matches_the_avro_spec_vector() -> None:
    # Avro spec: CRC-64-AVRO("null") = 0x63DD24E7CC258F8A, stored little-endian.
    assert parse_schema("null").fingerprint == (7195948357588979594).to_bytes(8, "little")


@pytest.mark.parametrize("framing_name", ["single-object", "raw"])
def test_roundtrip(framing_name: str) -> None:
    payload = framing.encode(DATUM, REVIEW, framing_name)
    assert payload.startswith(b"\xc3\x01") == (framing_name == "single-object")
    parsed = _decoder(framing_name=framing_name).decode(_record(payload))
    assert parsed.fields["review_id"] == "r1"
    assert parsed.fields["submitted_at"].year == 2026  # timestamp-millis logical type
    assert parsed.input_schema == REVIEW.identity


def test_single_object_header_carries_the_writer_fingerprint() -> None:
    payload = framing.encode(DATUM, REVIEW, "single-object")
    assert payload[2:10] == REVIEW.fingerprint


POISON = {
    "random bytes": os.urandom(64),
    "empty": b"",
    "wrong fingerprint": b"\xc3\x01" + b"\x00" * 8 + b"\x02a",
    "truncated": framing.encode(DATUM, REVIEW, "single-object")[:-5],
    "trailing bytes": framing.encode(DATUM, REVIEW, "single-object") + b"\x00\x01",
    "json not avro": json.dumps(DATUM, default=str).encode(),
}


@pytest.mark.parametrize("name", sorted(POISON))
def test_poison_is_a_decode_error(name: str) -> None:
    with pytest.raises(DecodeError) as info:
        _decoder().decode(_record(POISON[name]))
    assert info.value.stage == "decode"
    assert info.value.message


def test_unknown_fingerprint_is_named() -> None:
    with pytest.raises(DecodeError, match="unknown writer schema fingerprint 0000000000000000"):
        _decoder().decode(_record(POISON["wrong fingerprint"]))


def test_tombstone_and_oversized_values_are_decode_errors() -> None:
    with pytest.raises(DecodeError, match="tombstone"):
        _decoder().decode(_record(None))
    with pytest.raises(DecodeError, match=r"1001 bytes, over input.max_bytes \(1000\)"):
        _decoder().decode(_record(b"\xc3\x01" + b"x" * 999))


def test_json_input_is_validated_against_the_schema() -> None:
    ok = json.dumps({**DATUM, "submitted_at": 1}).encode()
    assert _decoder("json").decode(_record(ok)).fields["product"] == "Lamp"
    with pytest.raises(DecodeError, match="not valid JSON"):
        _decoder("json").decode(_record(b"{nope"))
    with pytest.raises(DecodeError, match=r"\$.product: expected string, got int") as info:
        _decoder("json").decode(
            _record(json.dumps({**DATUM, "submitted_at": 1, "product": 3}).encode())
        )
    assert info.value.field_errors[0].path == "$.product"


def test_confluent_framing_names_the_writer_by_registry_id() -> None:
    payload = framing.encode(DATUM, REVIEW, "confluent", schema_id=258)
    assert payload[:5] == b"\x00\x00\x00\x01\x02"
    known = {258: REVIEW}
    datum, writer = framing.decode(payload, REVIEW, "confluent", by_id=known.__getitem__)
    assert datum["review_id"] == "r1" and writer is REVIEW


def test_confluent_unknown_id_and_bad_magic_are_decode_errors() -> None:
    payload = framing.encode(DATUM, REVIEW, "confluent", schema_id=7)
    with pytest.raises(DecodeError, match="schema id 7 is not in the registry"):
        framing.decode(payload, REVIEW, "confluent", by_id={}.__getitem__)
    with pytest.raises(DecodeError, match="expected magic byte 00"):
        framing.decode(b"\x01" + payload[1:], REVIEW, "confluent", by_id={7: REVIEW}.__getitem__)


def test_a_registry_that_cannot_be_reached_is_not_a_decode_error() -> None:
    """The decoder turns every failure into a DecodeError, but not a systemic fault."""
    import pytest

    from schemas import load_schema
    from tests.conftest import SCHEMAS
    from transforms.core.errors import SystemicFault
    from transforms.core.formats.codec import InputDecoder
    from transforms.core.records import KafkaRecord

    def unreachable(schema_id: int) -> object:
        raise SystemicFault(f"schema registry: cannot look up id {schema_id}: unreachable")

    schema = load_schema(SCHEMAS / "examples.reviews.Review.avsc")
    decoder = InputDecoder(schema, "avro", "confluent", 1000, None, unreachable)  # type: ignore[arg-type]
    record = KafkaRecord("t", 0, 0, 0, None, b"\x00\x00\x00\x00\x07rest")
    with pytest.raises(SystemicFault):
        decoder.decode(record)
