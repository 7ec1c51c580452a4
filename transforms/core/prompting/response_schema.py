"""Derive the JSON Schema the model must answer with from the output Avro schema.

The model generates only the output fields the input record does not have; the others are
copied from the input. The result is sent as ``response_format`` (json_schema, strict), so
providers that support constrained decoding produce the right shape to begin with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transforms.core.avro_walk import CONSTRAINTS_KEY, Named, resolve, type_name

__all__ = ["ResponseShape", "derive_response_shape", "to_json_schema"]

_PRIMITIVES = {
    "null": {"type": "null"},
    "boolean": {"type": "boolean"},
    "int": {"type": "integer"},
    "long": {"type": "integer"},
    "float": {"type": "number"},
    "double": {"type": "number"},
    "string": {"type": "string"},
    "bytes": {"type": "string"},
    "fixed": {"type": "string"},
}


@dataclass(frozen=True)
class ResponseShape:
    """Which output fields the model writes, their Avro record schema and its JSON Schema."""

    generated_fields: tuple[str, ...]
    copied_fields: tuple[str, ...]
    avro: dict[str, Any]  # a fastavro-parsed record schema holding only the generated fields
    json_schema: dict[str, Any]


def derive_response_shape(output_schema: Any, input_field_names: set[str]) -> ResponseShape:
    named: Named = output_schema.get("__named_schemas", {})
    generated = [f for f in output_schema["fields"] if f["name"] not in input_field_names]
    copied = [f["name"] for f in output_schema["fields"] if f["name"] in input_field_names]
    if not generated:
        raise ValueError("the output schema has no field for the model to generate")
    avro = {
        "type": "record",
        "name": f"{output_schema['name']}Generated",
        "fields": generated,
        "__named_schemas": named,
    }
    return ResponseShape(
        generated_fields=tuple(f["name"] for f in generated),
        copied_fields=tuple(copied),
        avro=avro,
        json_schema=to_json_schema(avro, named),
    )


def to_json_schema(schema: Any, named: Named) -> dict[str, Any]:
    schema = resolve(schema, named)
    kind = type_name(schema)
    if kind == "union":
        return {"anyOf": [to_json_schema(b, named) for b in schema]}
    if kind in _PRIMITIVES:
        return dict(_PRIMITIVES[kind])
    if kind == "enum":
        return {"type": "string", "enum": list(schema["symbols"])}
    if kind == "array":
        return {"type": "array", "items": to_json_schema(schema["items"], named)}
    if kind == "map":
        return {"type": "object", "additionalProperties": to_json_schema(schema["values"], named)}
    if kind in ("record", "error"):
        properties = {}
        for field in schema["fields"]:
            prop = to_json_schema(field["type"], named)
            if field.get("doc"):
                prop["description"] = field["doc"]
            prop.update(field.get(CONSTRAINTS_KEY, {}))
            properties[field["name"]] = prop
        return {
            "type": "object",
            "properties": properties,
            "required": [f["name"] for f in schema["fields"]],
            "additionalProperties": False,
        }
    raise ValueError(f"cannot express Avro type {kind!r} as JSON Schema")
