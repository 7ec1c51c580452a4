"""Schema compatibility, decided by Apache Avro's own checker (``avro.compatibility``).

    BACKWARD  the new schema can read what the previous one wrote   (reader=new, writer=old)
    FORWARD   the previous schema can read what the new one writes  (reader=old, writer=new)
    FULL      both; NONE: no check

Each problem is explained by field: the checker's locations (``/fields/1/type``) are mapped
back to field names of the reading schema.

Named-type aliases are qualified with the type's namespace before checking, as Java's
``SchemaCompatibility`` sees them (``Schema.getAliases`` returns full names): the Python
checker compares the writer's full name with the alias as written, so a namespaced record
renamed with an unqualified alias would otherwise be reported incompatible. Field aliases
stay as written: fields have no namespace, and the checker matches them against field names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import avro.compatibility
import avro.schema

from schemas import AvroSchema

__all__ = ["Incompatibility", "check_compatibility", "qualify_aliases"]


@dataclass(frozen=True)
class Incompatibility:
    direction: str  # "BACKWARD" or "FORWARD"
    fields: tuple[str, ...]
    messages: tuple[str, ...]

    def __str__(self) -> str:
        where = ", ".join(self.fields) or "(whole schema)"
        return f"{self.direction}: field {where}: " + "; ".join(self.messages)


def check_compatibility(new: AvroSchema, previous: AvroSchema, mode: str) -> list[Incompatibility]:
    directions = {
        "BACKWARD": ["BACKWARD"],
        "FORWARD": ["FORWARD"],
        "FULL": ["BACKWARD", "FORWARD"],
        "NONE": [],
    }[mode]
    found = []
    for direction in directions:
        reader, writer = (new, previous) if direction == "BACKWARD" else (previous, new)
        checker: Any = avro.compatibility.ReaderWriterCompatibilityChecker
        result = checker().get_compatibility(_apache(reader), _apache(writer))
        if result.compatibility is avro.compatibility.SchemaCompatibilityType.compatible:
            continue
        fields = sorted({_field_name(reader.raw, loc) for loc in result.locations} - {""})
        messages = sorted(_explain(m, result.locations) for m in result.messages)
        found.append(Incompatibility(direction, tuple(fields), tuple(messages)))
    return found


def _explain(message: str, locations: set[str]) -> str:
    """Avro's messages are terse ({'x'} for enums, a bare name for a missing default)."""
    if message.startswith("{") and any(loc.endswith("/symbols") for loc in locations):
        return f"enum symbols the reader does not know: {message}"
    if message.isidentifier():
        return f"the reader's field {message} is not written and has no default"
    return message


def _apache(schema: AvroSchema) -> Any:
    return avro.schema.parse(json.dumps(qualify_aliases(schema.raw)))


_NAMED = ("record", "error", "enum", "fixed")


def qualify_aliases(raw: Any, namespace: str | None = None) -> Any:
    """A copy of ``raw`` whose named types' aliases are full names, resolved against the
    namespace the type is in (its own, the one in its dotted name, or the enclosing one)."""
    if isinstance(raw, list):
        return [qualify_aliases(branch, namespace) for branch in raw]
    if not isinstance(raw, dict):
        return raw
    node = dict(raw)
    if node.get("type") in _NAMED and isinstance(node.get("name"), str):
        name = node["name"]
        namespace = name.rpartition(".")[0] if "." in name else node.get("namespace", namespace)
        if isinstance(node.get("aliases"), list):
            node["aliases"] = [_full(alias, namespace) for alias in node["aliases"]]
    if isinstance(node.get("fields"), list):
        node["fields"] = [
            {**f, "type": qualify_aliases(f.get("type"), namespace)} if isinstance(f, dict) else f
            for f in node["fields"]
        ]
    for key in ("type", "items", "values"):
        if isinstance(node.get(key), (dict, list)):
            node[key] = qualify_aliases(node[key], namespace)
    return node


def _full(alias: Any, namespace: str | None) -> Any:
    if not isinstance(alias, str) or "." in alias or not namespace:
        return alias
    return f"{namespace}.{alias}"


def _field_name(raw: Any, location: str) -> str:
    """``/fields/1/type/fields/0`` -> ``inner.x`` (names from the reading schema)."""
    parts = [p for p in location.split("/") if p]
    names, node = [], raw
    index = 0
    while index < len(parts):
        part = parts[index]
        if part == "fields" and index + 1 < len(parts) and isinstance(node, dict):
            field = node["fields"][int(parts[index + 1])]
            names.append(field["name"])
            node = field
            index += 2
            continue
        node = node.get(part, node) if isinstance(node, dict) else node
        index += 1
    return ".".join(names)
