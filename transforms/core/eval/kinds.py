"""Which measure scores a generated field, chosen by its Avro type.

    enum, boolean          exact       1 when equal, else 0
    int, long              integer     exact, or within eval.tolerance of the expected value
    float, double          number      1 - relative error (capped at 0); also the absolute error
    array of string/enum   set         F1 of the answered set against the expected set
    string                 text        token F1 (see ``measures.text_f1``)
    anything else          exact       records, maps, bytes...: equal as JSON values

A nullable field (``["null", T]``) is scored as ``T``; null against null counts as a match.
"""

from __future__ import annotations

from typing import Any, Literal

from transforms.core.avro_walk import Named, resolve, type_name
from transforms.core.config.eval import OVERALL, EvalSpec

__all__ = ["Kind", "eval_problems", "field_kinds", "kind_of"]

Kind = Literal["exact", "integer", "number", "set", "text"]

_BY_TYPE: dict[str, Kind] = {
    "enum": "exact",
    "boolean": "exact",
    "int": "integer",
    "long": "integer",
    "float": "number",
    "double": "number",
    "string": "text",
}


def kind_of(schema: Any, named: Named) -> Kind:
    schema = resolve(schema, named)
    name = type_name(schema)
    if name == "union":
        branches = [b for b in schema if resolve(b, named) != "null"]
        return kind_of(branches[0], named) if len(branches) == 1 else "exact"
    if name == "array":
        items = type_name(resolve(schema["items"], named))
        return "set" if items in ("string", "enum") else "exact"
    if isinstance(schema, dict) and schema.get("logicalType"):
        return "exact"  # dates, decimals, uuids: compare the values themselves
    return _BY_TYPE.get(name, "exact")


def field_kinds(avro_record: dict[str, Any]) -> dict[str, Kind]:
    """Each field of a (fastavro-parsed) record schema, with its kind, in schema order."""
    named: Named = avro_record.get("__named_schemas", {})
    return {f["name"]: kind_of(f["type"], named) for f in avro_record["fields"]}


def eval_problems(spec: EvalSpec, kinds: dict[str, Kind]) -> list[str]:
    """What is wrong with a task's ``eval`` section for these generated fields."""
    problems = [
        f"eval.min_scores.{name}: not a generated field (fields: {', '.join(kinds)}; or overall)"
        for name in spec.min_scores
        if name != OVERALL and name not in kinds
    ]
    problems += [
        f"eval.tolerance.{name}: only numeric generated fields take a tolerance"
        for name in spec.tolerance
        if kinds.get(name) not in ("integer", "number")
    ]
    return problems
