"""A small client for the Confluent Schema Registry REST API (also served by Apicurio's
``ccompat`` API and Karapace): subjects, versions, ids, with an id cache.

    GET  /schemas/ids/{id}                   -> {"schema": "<avsc>"}
    POST /subjects/{subject}/versions        {"schema": "<avsc>"} -> {"id": n}
    GET  /subjects/{subject}/versions        -> [1, 2, ...]
    GET  /subjects/{subject}/versions/latest -> {"subject", "version", "id", "schema"}

Subjects follow the topic-name strategy by default: ``<topic>-value``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from schemas import AvroSchema, parse_schema
from transforms.core.errors import EnrichError, SystemicFault
from transforms.core.formats.framing import SchemaById

__all__ = ["RegistryClient", "RegistryError", "registry_lookup", "schema_lookup", "topic_subject"]

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class RegistryError(EnrichError):
    """The registry could not be reached or refused a request (not: an unknown id)."""


def topic_subject(topic: str) -> str:
    return f"{topic}-value"


class RegistryClient:
    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self._url = url.rstrip("/")
        self._timeout_s = timeout_s
        self._by_id: dict[int, AvroSchema] = {}
        self._ids: dict[tuple[str, bytes], int] = {}

    def schema_by_id(self, schema_id: int) -> AvroSchema:
        """The schema registered under ``schema_id``; ``KeyError`` if there is none."""
        if schema_id not in self._by_id:
            reply = self._request("GET", f"/schemas/ids/{schema_id}", missing_ok=True)
            if reply is None:
                raise KeyError(schema_id)
            self._by_id[schema_id] = parse_schema(json.loads(reply["schema"]))
        return self._by_id[schema_id]

    def register(self, subject: str, schema: AvroSchema) -> int:
        """Register (or find) ``schema`` under ``subject``; return its id."""
        key = (subject, schema.fingerprint)
        if key not in self._ids:
            body = {"schema": json.dumps(schema.raw)}
            reply = self._request("POST", f"/subjects/{_quote(subject)}/versions", body)
            assert reply is not None
            self._ids[key] = int(reply["id"])
            self._by_id.setdefault(int(reply["id"]), schema)
        return self._ids[key]

    def check(self) -> None:
        """Raise RegistryError unless the registry answers."""
        self._request("GET", "/subjects")

    def versions(self, subject: str) -> list[int]:
        reply = self._request("GET", f"/subjects/{_quote(subject)}/versions", missing_ok=True)
        return [int(v) for v in reply] if reply is not None else []

    def latest(self, subject: str) -> tuple[int, int, AvroSchema]:
        """(version, id, schema) of the subject's latest version; ``KeyError`` if none."""
        reply = self._request(
            "GET", f"/subjects/{_quote(subject)}/versions/latest", missing_ok=True
        )
        if reply is None:
            raise KeyError(subject)
        schema = parse_schema(json.loads(reply["schema"]))
        self._by_id.setdefault(int(reply["id"]), schema)
        return int(reply["version"]), int(reply["id"]), schema

    def _request(
        self, method: str, path: str, body: Any = None, *, missing_ok: bool = False
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self._url + path,
            data=data,
            method=method,
            headers={"Content-Type": CONTENT_TYPE, "Accept": CONTENT_TYPE},
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as reply:
                return json.loads(reply.read() or b"null")
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and missing_ok:
                return None
            detail = exc.read().decode(errors="replace")[:300]
            raise RegistryError(f"{method} {path}: HTTP {exc.code}: {detail}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise RegistryError(f"{method} {path}: registry unreachable: {exc}") from None


def _quote(subject: str) -> str:
    return urllib.parse.quote(subject, safe="")


def schema_lookup(client: RegistryClient) -> SchemaById:
    """``SchemaById`` for decoding. An id the registry does not know fails the record (a
    ``decode`` dead letter); a registry that cannot be reached or refuses us is a
    systemic fault: it stops the run instead of dead-lettering every record."""

    def by_id(schema_id: int) -> AvroSchema:
        try:
            return client.schema_by_id(schema_id)
        except RegistryError as exc:
            raise SystemicFault(f"schema registry: cannot look up id {schema_id}: {exc}") from None

    return by_id


def registry_lookup(framing_name: str, registry_url: str | None) -> SchemaById | None:
    """The id lookup a confluent-framed topic needs; None for the other framings."""
    if framing_name != "confluent" or not registry_url:
        return None
    return schema_lookup(RegistryClient(registry_url))
