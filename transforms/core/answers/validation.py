"""Validate a datum against an Avro schema, collecting every error with its field path.

fastavro's validator stops at the first problem; a re-ask needs all of them, each located
(``$.topics[1]: expected string, got int``), so this walks the parsed schema itself.
"""

from __future__ import annotations

import operator
from typing import Any

from transforms.core.avro_walk import CONSTRAINTS_KEY, Named, resolve, type_name
from transforms.core.errors import FieldError

__all__ = ["validate"]

Errors = list[FieldError]

_INT_RANGES = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


def validate(datum: Any, schema: Any, *, path: str = "$") -> list[FieldError]:
    """All the ways ``datum`` does not fit ``schema`` (a fastavro-parsed schema)."""
    named: Named = schema.get("__named_schemas", {}) if isinstance(schema, dict) else {}
    errors: list[FieldError] = []
    _check(datum, schema, named, path, errors)
    return errors


def _got(datum: Any) -> str:
    return "null" if datum is None else type(datum).__name__


def _check(datum: Any, schema: Any, named: Named, path: str, errors: Errors) -> None:
    schema = resolve(schema, named)
    kind = type_name(schema)
    if kind == "union":
        for branch in schema:
            found: list[FieldError] = []
            _check(datum, branch, named, path, found)
            if not found:
                return
        names = " | ".join(type_name(resolve(b, named)) for b in schema)
        errors.append(FieldError(path, f"expected one of {names}, got {_got(datum)}"))
        return
    checker = _CHECKERS.get(kind)
    if checker is None:
        errors.append(FieldError(path, f"unsupported schema type {kind}"))
        return
    checker(datum, schema, named, path, errors)


def _primitive(expected: str, ok: bool, datum: Any, path: str, errors: list[FieldError]) -> bool:
    if not ok:
        errors.append(FieldError(path, f"expected {expected}, got {_got(datum)}"))
    return ok


def _check_null(datum: Any, schema: Any, named: Named, path: str, errors: Errors) -> None:
    _primitive("null", datum is None, datum, path, errors)


def _check_bool(datum: Any, schema: Any, named: Named, path: str, errors: Errors) -> None:
    _primitive("boolean", isinstance(datum, bool), datum, path, errors)


def _check_int(datum: Any, schema: Any, named: Named, path: str, errors: Errors) -> None:
    kind = type_name(schema)
    ok = isinstance(datum, int) and not isinstance(datum, bool)
    if _primitive(kind, ok, datum, path, errors):
        low, high = _INT_RANGES[kind]
        if not low <= datum <= high:
            errors.append(FieldError(path, f"{datum} is out of range for {kind}"))


def _check_float(
    datum: Any, schema: Any, named: Named, path: str, errors: list[FieldError]
) -> None:
    ok = isinstance(datum, int | float) and not isinstance(datum, bool)
    _primitive(type_name(schema), ok, datum, path, errors)


def _check_string(
    datum: Any, schema: Any, named: Named, path: str, errors: list[FieldError]
) -> None:
    _primitive("string", isinstance(datum, str), datum, path, errors)


def _check_bytes(
    datum: Any, schema: Any, named: Named, path: str, errors: list[FieldError]
) -> None:
    ok = isinstance(datum, bytes | bytearray)
    fixed = type_name(schema) == "fixed"
    if _primitive("bytes", ok, datum, path, errors) and fixed and len(datum) != schema["size"]:
        errors.append(FieldError(path, f"expected {schema['size']} bytes, got {len(datum)}"))


def _check_enum(datum: Any, schema: Any, named: Named, path: str, errors: Errors) -> None:
    symbols = schema["symbols"]
    if datum not in symbols:
        errors.append(FieldError(path, f"{datum!r} is not one of {symbols}"))


def _check_array(
    datum: Any, schema: Any, named: Named, path: str, errors: list[FieldError]
) -> None:
    if _primitive("array", isinstance(datum, list), datum, path, errors):
        for index, item in enumerate(datum):
            _check(item, schema["items"], named, f"{path}[{index}]", errors)


def _check_map(datum: Any, schema: Any, named: Named, path: str, errors: Errors) -> None:
    if _primitive("map", isinstance(datum, dict), datum, path, errors):
        for key, item in datum.items():
            if not isinstance(key, str):
                errors.append(FieldError(path, f"map key {key!r} is not a string"))
            _check(item, schema["values"], named, f"{path}.{key}", errors)


def _check_record(
    datum: Any, schema: Any, named: Named, path: str, errors: list[FieldError]
) -> None:
    if not _primitive("record (object)", isinstance(datum, dict), datum, path, errors):
        return
    known = set()
    for field in schema["fields"]:
        name = field["name"]
        known.add(name)
        field_path = f"{path}.{name}"
        if name not in datum:
            if "default" not in field:
                errors.append(FieldError(field_path, "required field is missing"))
            continue
        before = len(errors)
        _check(datum[name], field["type"], named, field_path, errors)
        if len(errors) == before and CONSTRAINTS_KEY in field:
            _check_constraints(datum[name], field[CONSTRAINTS_KEY], field_path, errors)
    for extra in sorted(set(datum) - known):
        errors.append(FieldError(f"{path}.{extra}", "unknown field"))


def _check_constraints(
    datum: Any, constraints: dict[str, Any], path: str, errors: list[FieldError]
) -> None:
    """The few JSON-Schema keywords a field may add via ``llm.json_schema``."""
    if datum is None:
        return
    size = len(datum) if isinstance(datum, str | list) else None
    limits = [
        ("minimum", datum, operator.ge, "must be >= {n}"),
        ("maximum", datum, operator.le, "must be <= {n}"),
        ("minLength", size, operator.ge, "must have at least {n} characters"),
        ("maxLength", size, operator.le, "must have at most {n} characters"),
        ("minItems", size, operator.ge, "must have at least {n} items"),
        ("maxItems", size, operator.le, "must have at most {n} items"),
    ]
    for keyword, value, ok, message in limits:
        if keyword in constraints and value is not None and not ok(value, constraints[keyword]):
            errors.append(FieldError(path, message.format(n=constraints[keyword])))


_CHECKERS = {
    "null": _check_null,
    "boolean": _check_bool,
    "int": _check_int,
    "long": _check_int,
    "float": _check_float,
    "double": _check_float,
    "string": _check_string,
    "bytes": _check_bytes,
    "fixed": _check_bytes,
    "enum": _check_enum,
    "array": _check_array,
    "map": _check_map,
    "record": _check_record,
    "error": _check_record,
}
