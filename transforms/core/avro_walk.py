"""Helpers for walking fastavro-parsed schemas (named-type references, unions, kinds)."""

from __future__ import annotations

from typing import Any

__all__ = ["CONSTRAINTS_KEY", "Named", "resolve", "type_name"]

# An Avro field may carry extra JSON-Schema keywords under this property, for example
# {"name": "rating", "type": "int", "llm.json_schema": {"minimum": 1, "maximum": 5}}.
# They go into the response format sent to the model and are checked on the answer.
CONSTRAINTS_KEY = "llm.json_schema"

Named = dict[str, Any]


def resolve(schema: Any, named: Named) -> Any:
    """Replace a named-type reference (a string naming a record/enum/fixed) by its definition."""
    if isinstance(schema, str) and schema in named:
        return named[schema]
    return schema


def type_name(schema: Any) -> str:
    """The Avro type of a (resolved) schema: 'string', 'record', 'union', ..."""
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        return str(schema["type"])
    return str(schema)
