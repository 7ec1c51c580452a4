"""The project's schema checks agree with a Java Avro registry, pair by pair.

The schema registry the tests run (Apicurio, Java, Avro 1.12) is asked the same BACKWARD
question as ``check_compatibility`` for Apache Avro's own test pairs and for the namespaced
alias case: the writer is registered under a fresh subject with BACKWARD compatibility, and
the reader is checked against it through the Confluent ``/compatibility`` endpoint.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from typing import Any

from schemas import parse_schema
from tests.unit.test_apache_avro_pairs import PAIRS
from transforms.core.formats.compatibility import check_compatibility

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


def _call(url: str, method: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": CONTENT_TYPE}, method=method
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.loads(response.read()))


def _registry_says_compatible(registry: str, reader: Any, writer: Any) -> bool:
    subject = f"compat-{uuid.uuid4().hex[:12]}"
    _call(f"{registry}/subjects/{subject}/versions", "POST", {"schema": json.dumps(writer)})
    _call(f"{registry}/config/{subject}", "PUT", {"compatibility": "BACKWARD"})
    verdict = _call(
        f"{registry}/compatibility/subjects/{subject}/versions/latest",
        "POST",
        {"schema": json.dumps(reader)},
    )
    return bool(verdict["is_compatible"])


def _wrapped(schema: Any) -> dict[str, Any]:
    return {"type": "record", "name": "Pair", "fields": [{"name": "value", "type": schema}]}


def _ours(reader: Any, writer: Any) -> bool:
    return check_compatibility(parse_schema(reader), parse_schema(writer), "BACKWARD") == []


def test_namespaced_alias_rename_is_compatible_for_both(registry_url: str) -> None:
    writer = {
        "type": "record",
        "name": "foo",
        "namespace": "interop",
        "fields": [{"name": "f1", "type": "int"}, {"name": "f2", "type": "string"}],
    }
    reader = {**writer, "name": "other", "aliases": ["foo"], "fields": writer["fields"][:1]}
    no_alias = {key: value for key, value in reader.items() if key != "aliases"}
    assert _registry_says_compatible(registry_url, reader, writer) is True
    assert _ours(reader, writer) is True
    assert _registry_says_compatible(registry_url, no_alias, writer) is False
    assert _ours(no_alias, writer) is False


def test_apache_avro_pairs_get_the_registrys_verdict(registry_url: str) -> None:
    disagreements = []
    for where, reader, writer, _ in PAIRS:
        wrapped_reader, wrapped_writer = _wrapped(reader.to_json()), _wrapped(writer.to_json())
        java = _registry_says_compatible(registry_url, wrapped_reader, wrapped_writer)
        if java != _ours(wrapped_reader, wrapped_writer):
            disagreements.append(f"{where}: registry says {java}: {json.dumps(wrapped_reader)}")
    assert len(PAIRS) >= 130
    assert disagreements == []
