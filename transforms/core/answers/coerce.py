"""Schema-guided coercion: the deterministic fixes that need the output schema.

    enum symbols          " Positive " -> "positive" (trimmed, case-insensitive)
    numbers               "4" -> 4, "4.5" -> 4.5 (int fields take only whole numbers)
    arrays                "battery" -> ["battery"] (a single value where a list is expected)
    missing fields        filled with the field's Avro default

Each fix is named in the returned list. Values that cannot be coerced are left for the
validator to report.
"""

from __future__ import annotations

from typing import Any

from transforms.core.formats.avro_walk import Named, resolve, type_name

__all__ = ["coerce"]


def coerce(datum: Any, schema: Any) -> tuple[Any, list[str]]:
    named: Named = schema.get("__named_schemas", {}) if isinstance(schema, dict) else {}
    fixes: list[str] = []
    return _coerce(datum, schema, named, fixes), fixes


def _coerce(datum: Any, schema: Any, named: Named, fixes: list[str]) -> Any:
    schema = resolve(schema, named)
    kind = type_name(schema)
    if kind == "union":
        branches = [resolve(b, named) for b in schema if b != "null"]
        return _coerce(datum, branches[0], named, fixes) if len(branches) == 1 else datum
    if kind == "enum" and isinstance(datum, str):
        return _enum(datum, schema["symbols"], fixes)
    if kind in ("int", "long", "float", "double") and isinstance(datum, str):
        return _number(datum, kind, fixes)
    if kind == "array":
        if datum is not None and not isinstance(datum, list):
            fixes.append("wrap_in_array")
            datum = [datum]
        if isinstance(datum, list):
            return [_coerce(item, schema["items"], named, fixes) for item in datum]
    if kind in ("record", "error") and isinstance(datum, dict):
        return _record(datum, schema, named, fixes)
    return datum


def _enum(datum: str, symbols: list[str], fixes: list[str]) -> str:
    if datum in symbols:
        return datum
    wanted = datum.strip().casefold()
    for symbol in symbols:
        if symbol.casefold() == wanted:
            fixes.append("enum_case")
            return symbol
    return datum


def _number(datum: str, kind: str, fixes: list[str]) -> Any:
    text = datum.strip()
    if kind in ("int", "long"):
        exact: int | None
        try:
            exact = int(text)  # every digit kept, beyond 2**53 too
        except ValueError:
            exact = _integral_float(text)
        if exact is None:
            return datum
        fixes.append("numeric_string")
        return exact
    try:
        value = float(text)
    except ValueError:
        return datum
    fixes.append("numeric_string")
    return value


def _integral_float(text: str) -> int | None:
    """``"5.0"`` or ``"1e3"`` as an integer, when a double holds it exactly."""
    try:
        value = float(text)
    except ValueError:
        return None
    if not value.is_integer() or abs(value) > 2**53:
        return None
    return int(value)


def _record(datum: dict[str, Any], schema: Any, named: Named, fixes: list[str]) -> Any:
    out = dict(datum)
    for field in schema["fields"]:
        name = field["name"]
        if name in out:
            out[name] = _coerce(out[name], field["type"], named, fixes)
        elif "default" in field:
            fixes.append("default_for_missing")
            out[name] = field["default"]
    return out
