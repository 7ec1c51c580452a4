"""Judge one answer: schema-aligned parsing, validation, partial acceptance.

    parse_answer   text -> the one JSON value in it           (repair.py)
    coerce         value -> read through the output schema    (coerce.py)
    validate       every remaining error, with its field path (validation.py)
    accept_partially  errors only in fields with on_invalid default/null -> replaced
                      (partial.py)

The answer is accepted when no error is left; otherwise the errors go into the re-ask.

Why not ``baml-py`` (BAML's schema-aligned parser, checked at 0.226.3): its Python runtime
parses only for a function declared in BAML source (``BamlRuntime.from_files`` +
``parse_llm_response``), returning instances of generated type modules. From an Avro schema
that means generating BAML source and type classes per job at run time, a 20 MB native
wheel on every worker, and a parser whose policy is not ours: it takes the first of several
objects, fills partial (streamed) values, matches enum symbols inside prose, and does not
report which fixes it made as named, countable repairs. The table here is small, names
every repair with its field path, and refuses each of the issue's "never" cases.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from transforms.core.answers.coerce import coerce
from transforms.core.answers.partial import accept_partially
from transforms.core.answers.repair import parse_answer
from transforms.core.answers.validation import validate
from transforms.core.errors import FieldError

__all__ = ["Judgement", "judge", "repair_kind"]


@dataclass(frozen=True)
class Judgement:
    """Accepted when ``errors`` is empty; then ``answer`` holds the generated fields."""

    answer: dict[str, Any]
    repairs: tuple[str, ...] = ()
    defaulted: tuple[str, ...] = ()
    errors: tuple[FieldError, ...] = ()


def repair_kind(repair: str) -> str:
    """``enum_case@$.sentiment`` -> ``enum_case``: what the summary counts."""
    return repair.split("@", 1)[0]


def judge(
    raw: str,
    schema: Any,
    *,
    reserved: frozenset[str] = frozenset(),
    on_invalid: Mapping[str, str] | None = None,
) -> Judgement:
    """``schema``: the parsed record of generated fields; ``reserved``: names the answer
    must not set (copied from the input)."""
    datum, repairs, errors = parse_answer(raw)
    if errors:
        return Judgement({}, tuple(repairs), (), tuple(errors))
    try:
        datum, fixes, problems = coerce(datum, schema, reserved)
        errors = problems + [e for e in validate(datum, schema) if e not in problems]
    except RecursionError:
        return Judgement({}, tuple(repairs), (), (FieldError("$", "nested too deeply"),))
    repairs = [*repairs, *fixes]
    if not errors:
        return Judgement(datum, tuple(repairs))
    settled = accept_partially(datum, errors, on_invalid or {}, schema)
    if settled is not None and not validate(settled[0], schema):
        return Judgement(settled[0], tuple(repairs), settled[1])
    return Judgement({}, tuple(repairs), (), tuple(errors))
