"""Copied fields: an output field whose name is an input field is copied, not generated.

The copied value is the decoded input value (a ``datetime`` for ``timestamp-millis``, a
``Decimal`` for ``decimal``, ...), written again with the output field's type. That works
when the output type accepts every value of the input type: the same type (names aside:
enums are written by symbol, records by field name), a promotion Avro itself allows (int to
long, float or double; long to float or double; float to double), a logical type with the
same decoded values (timestamp-millis and -micros, a decimal of the same scale and no
less precision), applied through unions, arrays, maps and records. Anything else is a
task error, named by field, found when the task is compiled.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["copy_problems"]

_PROMOTIONS = {("int", "long"), ("int", "float"), ("int", "double"), ("long", "float")}
_PROMOTIONS |= {("long", "double"), ("float", "double")}
_KEPT = ("type", "name", "logicalType", "precision", "scale", "size", "symbols")


def copy_problems(
    input_schema: dict[str, Any], output_schema: dict[str, Any], copied: Sequence[str]
) -> list[str]:
    """One message per copied field whose output type does not accept its input values.
    Both schemas are fastavro-parsed (named types by full name)."""
    source = {f["name"]: f["type"] for f in input_schema["fields"]}
    target = {f["name"]: f["type"] for f in output_schema["fields"]}
    problems = []
    for name in copied:
        given = _expand(source[name], input_schema.get("__named_schemas", {}), frozenset())
        wanted = _expand(target[name], output_schema.get("__named_schemas", {}), frozenset())
        if not _fits(given, wanted):
            problems.append(
                f"output field {name!r} is copied from the input, but its output type "
                f"{_show(wanted)} does not accept the input type {_show(given)}"
            )
    return problems


def _expand(schema: Any, named: dict[str, Any], seen: frozenset[str]) -> Any:
    """The type with named references replaced by their definitions, without docs,
    defaults, aliases or order (a recursive reference stays a name)."""
    if isinstance(schema, str):
        if schema in named and schema not in seen:
            return _expand(named[schema], named, seen | {schema})
        return schema
    if isinstance(schema, list):
        return [_expand(branch, named, seen) for branch in schema]
    kept = {k: schema[k] for k in _KEPT if k in schema}
    if "name" in kept:
        seen = seen | {kept["name"]}
    if schema["type"] == "record":
        kept["fields"] = [
            {"name": f["name"], "type": _expand(f["type"], named, seen)} for f in schema["fields"]
        ]
    for key in ("items", "values"):
        if key in schema:
            kept[key] = _expand(schema[key], named, seen)
    return kept if set(kept) != {"type"} else kept["type"]


_KNOWN_LOGICAL = {"decimal", "uuid", "date", "time-millis", "time-micros"}
_KNOWN_LOGICAL |= {"timestamp-millis", "timestamp-micros", "local-timestamp-millis"}
_KNOWN_LOGICAL |= {"local-timestamp-micros"}
# Logical types whose decoded values (datetime, time) either member accepts.
_SAME_VALUES = [
    {"timestamp-millis", "timestamp-micros"},
    {"local-timestamp-millis", "local-timestamp-micros"},
    {"time-millis", "time-micros"},
]


def _logical(schema: Any) -> str | None:
    if isinstance(schema, dict) and schema.get("logicalType") in _KNOWN_LOGICAL:
        return str(schema["logicalType"])
    return None  # none, or one fastavro does not know: the underlying type's values


def _fits(given: Any, wanted: Any) -> bool:
    """Every value of type ``given`` is a valid value of type ``wanted``. Names do not
    matter: fastavro writes an enum by symbol and a record by field names."""
    if given == wanted:
        return True
    if isinstance(given, list):
        return all(_fits(branch, wanted) for branch in given)
    if isinstance(wanted, list):
        return any(_fits(given, branch) for branch in wanted)
    given_logical, wanted_logical = _logical(given), _logical(wanted)
    if given_logical or wanted_logical:
        return _logical_fits(given, wanted, given_logical, wanted_logical)
    given_kind = given if isinstance(given, str) else given["type"]
    wanted_kind = wanted if isinstance(wanted, str) else wanted["type"]
    if isinstance(given_kind, dict | list) or isinstance(wanted_kind, dict | list):
        return False
    if given_kind != wanted_kind:
        return (given_kind, wanted_kind) in _PROMOTIONS
    if given_kind == "enum":
        return set(given["symbols"]) <= set(wanted["symbols"])
    if given_kind == "fixed":
        return bool(given["size"] == wanted["size"])
    if given_kind == "record":
        mine = {f["name"]: f["type"] for f in given["fields"]}
        theirs = {f["name"]: f["type"] for f in wanted["fields"]}
        return mine.keys() == theirs.keys() and all(_fits(mine[k], theirs[k]) for k in mine)
    if given_kind in ("array", "map"):
        key = "items" if given_kind == "array" else "values"
        return _fits(given[key], wanted[key])
    return True  # the same primitive


def _logical_fits(given: Any, wanted: Any, given_l: str | None, wanted_l: str | None) -> bool:
    if given_l is None or wanted_l is None:
        return False  # a plain value where a logical one is wanted, or the reverse
    if given_l == "decimal" and wanted_l == "decimal":
        return bool(
            given.get("scale", 0) == wanted.get("scale", 0)
            and given["precision"] <= wanted["precision"]
        )
    return given_l == wanted_l or any({given_l, wanted_l} <= same for same in _SAME_VALUES)


def _show(schema: Any) -> str:
    if isinstance(schema, list):
        return "[" + ", ".join(_show(b) for b in schema) + "]"
    if isinstance(schema, str):
        return schema
    if "logicalType" in schema:
        return f"{schema['type']}/{schema['logicalType']}"
    return str(schema.get("name", schema["type"]))
