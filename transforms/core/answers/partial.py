"""Partial acceptance: what to do with a field whose value stays invalid after repair.

The task's ``output.on_invalid`` maps generated field names to an action:

    re-ask    the default: the whole answer is re-asked (and then dead-lettered)
    default   the field takes its Avro default      (only fields that have one)
    null      the field becomes null                (only nullable fields)

An answer is accepted this way only when *every* remaining error lies inside such fields;
an error anywhere else (or about the answer as a whole) still re-asks. The fields
replaced are returned, so outputs can say which were defaulted.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from transforms.core.avro_walk import Named, resolve, type_name
from transforms.core.errors import FieldError

__all__ = ["ACTIONS", "accept_partially", "on_invalid_problems"]

ACTIONS = ("re-ask", "default", "null")
_TOP_FIELD = re.compile(r"\$\.([A-Za-z_][A-Za-z0-9_]*)(?:$|[.\[])")


def _nullable(schema: Any, named: Named) -> bool:
    schema = resolve(schema, named)
    return type_name(schema) == "null" or (
        type_name(schema) == "union" and any(type_name(resolve(b, named)) == "null" for b in schema)
    )


def on_invalid_problems(schema: Any, on_invalid: Mapping[str, str]) -> list[str]:
    """Why ``on_invalid`` does not fit the generated part of the output schema (``schema``:
    a parsed record schema), one message per key, naming it."""
    named: Named = schema.get("__named_schemas", {})
    fields = {f["name"]: f for f in schema["fields"]}
    problems = []
    for name, action in sorted(on_invalid.items()):
        where = f"output.on_invalid.{name}"
        spec = fields.get(name)
        if spec is None:
            problems.append(
                f"{where}: not a field the model generates (those are {sorted(fields)})"
            )
        elif action == "default" and "default" not in spec:
            problems.append(f"{where}: 'default' needs an Avro default on the field")
        elif action == "null" and not _nullable(spec["type"], named):
            problems.append(f"{where}: 'null' needs a nullable field (a union with \"null\")")
    return problems


def accept_partially(
    datum: Any, errors: list[FieldError], on_invalid: Mapping[str, str], schema: Any
) -> tuple[Any, tuple[str, ...]] | None:
    """(datum with the invalid fields replaced, their names), or None when some error is
    not covered by ``on_invalid`` (the answer is then re-asked)."""
    if not isinstance(datum, dict) or not errors:
        return None
    names = []
    for error in errors:
        match = _TOP_FIELD.match(error.path)
        if not match or on_invalid.get(match.group(1), "re-ask") == "re-ask":
            return None
        names.append(match.group(1))
    defaults = {f["name"]: f.get("default") for f in schema["fields"]}
    fixed = dict(datum)
    for name in dict.fromkeys(names):
        fixed[name] = None if on_invalid[name] == "null" else copy.deepcopy(defaults[name])
    return fixed, tuple(dict.fromkeys(names))
