"""Per-field output rules, checked on a validated answer: a table of checks per string.

    max_length       the string is at most N characters
    must_not_match   the regular expression is not found in it
    allow_urls       false (the default, once a field has rules): no URL, www. address,
                     bare domain of a common TLD, mailto: or data: URI
    allowed_chars    every character is in the class (``a-z0-9 -``)

A rule for a field applies to every string under it (array items, map values, nested
records). Problems are ``FieldError``s with the string's path, so a re-ask can quote them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from transforms.core.config.safety import OutputRuleSpec
from transforms.core.errors import FieldError

__all__ = ["FieldRule", "OutputRules", "compile_rules", "strings"]

_URL = re.compile(
    r"\b[a-z][a-z0-9+.-]*://\S+|\bwww\.\S+|\bmailto:\S+|\bdata:[a-z]+/\S+"
    r"|\b(?:[a-z0-9-]+\.)+(?:com|net|org|io|ru|cn|xyz|info|biz|ly|me|co|top|app|dev|link|"
    r"click|site|online|gg|tk|sh)\b(?:/\S*)?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class FieldRule:
    field: str
    max_length: int | None = None
    forbidden: re.Pattern[str] | None = None
    allow_urls: bool = False
    disallowed: re.Pattern[str] | None = None  # a character outside allowed_chars

    @classmethod
    def from_spec(cls, field: str, spec: OutputRuleSpec) -> FieldRule:
        return cls(
            field,
            spec.max_length,
            re.compile(spec.must_not_match) if spec.must_not_match else None,
            spec.allow_urls,
            re.compile(f"[^{spec.allowed_chars}]") if spec.allowed_chars else None,
        )

    def problems(self, value: str) -> Iterator[str]:
        for check in _CHECKS:
            problem = check(self, value)
            if problem:
                yield problem


def _length(rule: FieldRule, value: str) -> str | None:
    if rule.max_length is not None and len(value) > rule.max_length:
        return f"longer than {rule.max_length} characters ({len(value)})"
    return None


def _forbidden(rule: FieldRule, value: str) -> str | None:
    found = rule.forbidden.search(value) if rule.forbidden else None
    return f"contains forbidden text {found.group()!r}" if found else None


def _urls(rule: FieldRule, value: str) -> str | None:
    found = None if rule.allow_urls else _URL.search(value)
    return f"contains a URL ({found.group()!r}); URLs are not allowed" if found else None


def _characters(rule: FieldRule, value: str) -> str | None:
    found = rule.disallowed.search(value) if rule.disallowed else None
    return f"contains a character that is not allowed: {found.group()!r}" if found else None


_CHECKS: tuple[Callable[[FieldRule, str], str | None], ...] = (
    _length,
    _forbidden,
    _urls,
    _characters,
)


def strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string under a value, with its path."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from strings(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from strings(item, f"{path}[{index}]")


@dataclass(frozen=True)
class OutputRules:
    rules: tuple[FieldRule, ...] = ()

    def check(self, output: Mapping[str, Any]) -> list[FieldError]:
        return [
            FieldError(path, problem)
            for rule in self.rules
            for path, value in strings(output.get(rule.field), f"$.{rule.field}")
            for problem in rule.problems(value)
        ]


def compile_rules(specs: Mapping[str, OutputRuleSpec], generated: Sequence[str]) -> OutputRules:
    """Raises ``ValueError`` naming a field that is not one the model generates."""
    for field in specs:
        if field not in generated:
            raise ValueError(
                f"safety.output_rules.{field}: not a field the model generates "
                f"(generated: {list(generated)})"
            )
    return OutputRules(tuple(FieldRule.from_spec(f, s) for f, s in specs.items()))
