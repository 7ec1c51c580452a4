"""Schema-aligned coercion: read the parsed answer *through* the output schema.

One table row per Avro kind; each row applies only the fixes the target type makes
unambiguous, names each one with its field path (``enum_case@$.sentiment``) and leaves
anything else untouched for the validator to report (and the stage to re-ask).

    target    accepted                                   repair
    record    an object encoded as a JSON string         decode_json_string
              the object inside a one-element array      unwrap_single_item_array
              a one-key wrapper {"result": {...}}        unwrap_wrapper_object
              a key spelled with other case/separators   field_name
              a key the schema does not have (dropped)   drop_unknown_field
              a missing field that has an Avro default   default_for_missing
    enum      other case or spacing / separators         enum_case / enum_spelling
    boolean   "true" "yes" "1" (any case), 1 / 0         boolean_spelling / boolean_from_number
    int/long  "4", "4.0", 4.0                            numeric_string / integral_float
    float     "0.5"                                      numeric_string
    string    a number                                   number_to_string
    array     a single value (not an empty or a          wrap_in_array
              comma/semicolon/newline-separated string)
              an array encoded as a JSON string          decode_json_string
    scalars   the value inside a one-element array       unwrap_single_item_array
    union     coerced only when one non-null branch exists

Never, because each would be a guess: inventing a required field, choosing between enum
symbols or fields that match equally well, picking one object out of several, taking one
of two keys that name the same field, splitting a string into list items, rounding. Those
become ``problems`` (errors with a field path) so the answer is re-asked. A key naming a
field copied from the input (``reserved``) is a problem too: the model must not set it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from types import UnionType
from typing import Any

from transforms.core.avro_walk import Named, resolve, type_name
from transforms.core.errors import FieldError

__all__ = ["coerce"]

_INTEGER = re.compile(r"[+-]?\d+", re.ASCII)
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_SEPARATORS = re.compile(r"[\s_\-.]+")
_LIST_LIKE = re.compile(r"[,;\n|]")
_UNSAFE_KEY = re.compile(r"[^A-Za-z0-9_\-]")
_BOOLEANS = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}
_MAX_LISTED_DROPS = 20
_MAX_DIGITS = 40  # a long has 19; longer digit strings are left for the validator


@dataclass
class _Context:
    named: Named
    reserved: frozenset[str]
    repairs: list[str] = field(default_factory=list)
    problems: list[FieldError] = field(default_factory=list)
    dropped: int = 0

    def fix(self, kind: str, path: str) -> None:
        self.repairs.append(kind if path == "$" else f"{kind}@{path}")

    def problem(self, path: str, message: str) -> None:
        self.problems.append(FieldError(path, message))


def coerce(
    datum: Any, schema: Any, reserved: frozenset[str] = frozenset()
) -> tuple[Any, list[str], list[FieldError]]:
    """(coerced datum, repairs applied, problems that forbid accepting it)."""
    named: Named = schema.get("__named_schemas", {}) if isinstance(schema, dict) else {}
    context = _Context(named, frozenset(_squash(name) for name in reserved))
    return _align(datum, schema, context, "$"), context.repairs, context.problems


def _squash(text: str) -> str:
    """A name or symbol with case, spacing, separators and surrounding quotes ignored."""
    return _SEPARATORS.sub("", text.strip(" \t\r\n'\"`.").casefold())


def _align(datum: Any, schema: Any, context: _Context, path: str) -> Any:
    schema = resolve(schema, context.named)
    kind = type_name(schema)
    if kind not in ("array", "union") and isinstance(datum, list) and len(datum) == 1:
        context.fix("unwrap_single_item_array", path)
        datum = datum[0]
    row = _TABLE.get(kind)
    return row(datum, schema, context, path) if row else datum


def _union(datum: Any, schema: Any, context: _Context, path: str) -> Any:
    if datum is None:
        return None
    branches = [resolve(b, context.named) for b in schema]
    others = [b for b in branches if type_name(b) != "null"]
    return _align(datum, others[0], context, path) if len(others) == 1 else datum


def _enum(datum: Any, schema: Any, context: _Context, path: str) -> Any:
    symbols: list[str] = schema["symbols"]
    if not isinstance(datum, str) or datum in symbols:
        return datum
    matches = [s for s in symbols if _squash(s) == _squash(datum)]
    if len(matches) != 1:
        return datum  # none or several: the validator names the symbols, the model chooses
    same_but_case = matches[0].casefold() == datum.strip().casefold()
    context.fix("enum_case" if same_but_case else "enum_spelling", path)
    return matches[0]


def _boolean(datum: Any, schema: Any, context: _Context, path: str) -> Any:
    if isinstance(datum, str) and datum.strip().casefold() in _BOOLEANS:
        context.fix("boolean_spelling", path)
        return _BOOLEANS[datum.strip().casefold()]
    if type(datum) is int and datum in (0, 1):
        context.fix("boolean_from_number", path)
        return bool(datum)
    return datum


def _integer(datum: Any, schema: Any, context: _Context, path: str) -> Any:
    if isinstance(datum, str):
        text = datum.strip()
        if len(text) <= _MAX_DIGITS and _INTEGER.fullmatch(text):
            context.fix("numeric_string", path)
            return int(text)  # every digit kept, beyond 2**53 too
        whole = _integral(float(text)) if _DECIMAL.fullmatch(text) else None
        if whole is not None:
            context.fix("numeric_string", path)
            return whole
    elif isinstance(datum, float) and _integral(datum) is not None:
        context.fix("integral_float", path)
        return int(datum)
    return datum


def _integral(value: float) -> int | None:
    """``5.0`` or ``1e3`` as an integer, when a double holds it exactly."""
    if not math.isfinite(value) or not value.is_integer() or abs(value) > 2**53:
        return None
    return int(value)


def _number(datum: Any, schema: Any, context: _Context, path: str) -> Any:
    if isinstance(datum, str) and _DECIMAL.fullmatch(datum.strip()):
        value = float(datum.strip())
        if math.isfinite(value):
            context.fix("numeric_string", path)
            return value
    return datum


def _string(datum: Any, schema: Any, context: _Context, path: str) -> Any:
    if isinstance(datum, int | float) and not isinstance(datum, bool) and math.isfinite(datum):
        context.fix("number_to_string", path)
        return json.dumps(datum)
    return datum


def _decoded(datum: str, wanted: type | UnionType) -> Any:
    """The value a string encodes as JSON, when it is a ``wanted`` (dict or list)."""
    try:
        value = json.loads(datum)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, wanted) else None


def _array(datum: Any, schema: Any, context: _Context, path: str) -> Any:
    if isinstance(datum, str) and _decoded(datum, list) is not None:
        context.fix("decode_json_string", path)
        datum = _decoded(datum, list)
    elif _wrappable(datum):
        context.fix("wrap_in_array", path)
        datum = [datum]
    if not isinstance(datum, list):
        return datum
    return [_align(item, schema["items"], context, f"{path}[{i}]") for i, item in enumerate(datum)]


def _wrappable(datum: Any) -> bool:
    if isinstance(datum, str):
        return bool(datum.strip()) and not _LIST_LIKE.search(datum)
    return datum is not None and not isinstance(datum, list | dict)


def _map(datum: Any, schema: Any, context: _Context, path: str) -> Any:
    if not isinstance(datum, dict):
        return datum
    return {k: _align(v, schema["values"], context, f"{path}.{k}") for k, v in datum.items()}


def _record(datum: Any, schema: Any, context: _Context, path: str) -> Any:
    datum = _as_object(datum, context, path)
    if not isinstance(datum, dict):
        if isinstance(datum, list) and len(datum) > 1:
            context.problem(path, f"{len(datum)} values where one object is expected")
        return datum
    fields = {f["name"]: f for f in schema["fields"]}
    reserved = context.reserved if path == "$" else frozenset()
    datum = _unwrap_wrapper(datum, fields, reserved, context, path)
    given: dict[str, list[str]] = {}
    for key in datum:
        name = _field_for(key, fields, reserved)
        if name == _RESERVED:
            context.problem(f"{path}.{key}", "copied from the input: the answer must not set it")
        elif name == _AMBIGUOUS:
            context.problem(f"{path}.{key}", "matches several fields: not picking one")
        elif name is None:
            _drop(key, context, path)
        else:
            given.setdefault(name, []).append(key)
    out: dict[str, Any] = {}
    for name, spec in fields.items():
        keys = given.get(name, [])
        if len(keys) > 1:
            context.problem(f"{path}.{name}", f"given more than once (as {sorted(keys)})")
        elif keys:
            if keys[0] != name:
                context.fix("field_name", f"{path}.{name}")
            out[name] = _align(datum[keys[0]], spec["type"], context, f"{path}.{name}")
        elif "default" in spec:
            context.fix("default_for_missing", f"{path}.{name}")
            out[name] = json.loads(json.dumps(spec["default"]))  # a copy, never shared
    return out


def _as_object(datum: Any, context: _Context, path: str) -> Any:
    if isinstance(datum, str) and _decoded(datum, dict | list) is not None:
        context.fix("decode_json_string", path)
        datum = _decoded(datum, dict | list)
    if isinstance(datum, list) and len(datum) == 1 and isinstance(datum[0], dict):
        context.fix("unwrap_single_item_array", path)
        datum = datum[0]
    return datum


_RESERVED, _AMBIGUOUS = "\x00reserved", "\x00ambiguous"


def _field_for(key: str, fields: dict[str, Any], reserved: frozenset[str]) -> str | None:
    if key in fields:
        return key
    if _squash(key) in reserved:
        return _RESERVED
    matches = [name for name in fields if _squash(name) == _squash(key)]
    if len(matches) > 1:
        return _AMBIGUOUS
    return matches[0] if matches else None


def _unwrap_wrapper(
    datum: dict[str, Any],
    fields: dict[str, Any],
    reserved: frozenset[str],
    context: _Context,
    path: str,
) -> dict[str, Any]:
    """``{"result": {...}}``: one key the schema does not know, around an object whose keys
    it does."""
    if len(datum) != 1:
        return datum
    ((key, inner),) = datum.items()
    if _field_for(key, fields, reserved) is not None:
        return datum
    probe = _Context(context.named, reserved)
    inner = _as_object(inner, probe, path)
    if not isinstance(inner, dict):
        return datum
    if not any(_field_for(k, fields, reserved) not in (None, _AMBIGUOUS) for k in inner):
        return datum
    context.repairs.extend(probe.repairs)
    context.fix("unwrap_wrapper_object", path)
    return inner


def _drop(key: str, context: _Context, path: str) -> None:
    """A key the schema does not have: dropped, and listed (the first few, by name)."""
    context.dropped += 1
    if context.dropped <= _MAX_LISTED_DROPS:
        context.fix("drop_unknown_field", f"{path}.{_UNSAFE_KEY.sub('?', key)[:64]}")
    elif context.dropped == _MAX_LISTED_DROPS + 1:
        context.fix("drop_unknown_field", f"{path}.*")


Row = Callable[[Any, Any, _Context, str], Any]
_TABLE: dict[str, Row] = {
    "union": _union,
    "enum": _enum,
    "boolean": _boolean,
    "int": _integer,
    "long": _integer,
    "float": _number,
    "double": _number,
    "string": _string,
    "array": _array,
    "map": _map,
    "record": _record,
    "error": _record,
}
