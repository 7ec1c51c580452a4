"""How sure a model was of the values it wrote, from the token log-probabilities it returned.

A generated field whose JSON schema is a closed set of values (an enum, a boolean, an
integer with a ``minimum`` and ``maximum`` at most ``MAX_INT_CHOICES`` apart, each maybe
nullable) gets a confidence: the probability the model gave the value it wrote, among the
values the schema allows. Other fields (free text, arrays, numbers) get none.

What providers return (OpenAI's ``logprobs: true, top_logprobs: K``, and llama-server the
same shape): per generated token its text, its log-probability and the K likeliest tokens
at that position. llama-server reports the model's own distribution *before* the grammar
of ``response_format`` constrains it (its ``post_sampling_probs`` are all 1.0 at
temperature 0), so a token's raw probability says little: ``"n"`` of ``"negative"`` may
have 0.4 % because the model wanted to write prose there. What counts is how the
probability splits among the tokens the schema allows. So, over the tokens that write the
value (from the one that writes its first character to the one that writes its last; a
token ending right where the value starts counts too, since an alternative there may start
the value), at each position:

    factor = sum of p over the alternatives that lead to the value written
             / sum of p over the alternatives that lead to any allowed value

and the field's confidence is the product of the factors: the chosen value's probability
renormalised over the allowed values, position by position (exact when every allowed
token is among the K returned; an allowed token beyond the K counts as 0, so K should be
the provider's maximum, 20 for OpenAI). A field whose value cannot be found in the tokens,
or is not written exactly as one of the allowed spellings (a repair changed it), has no
confidence (None): unknown.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_INT_CHOICES",
    "TokenLogprob",
    "field_choices",
    "field_confidences",
    "record_confidence",
    "value_spans",
]

MAX_INT_CHOICES = 100
_LITERAL = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.+-")


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token: its text, its log-probability, the likeliest alternatives."""

    text: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


def _spellings(schema: Mapping[str, Any]) -> list[str] | None:
    """The JSON texts a value of this schema may be, or None when the set is not closed."""
    if "anyOf" in schema:
        spellings: list[str] = []
        for branch in schema["anyOf"]:
            found = _spellings(branch)
            if found is None:
                return None
            spellings += found
        return spellings
    if isinstance(schema.get("enum"), list):
        values = schema["enum"]
        return [f'"{v}"' if isinstance(v, str) else _literal(v) for v in values]
    kind = schema.get("type")
    if kind == "null":
        return ["null"]
    if kind == "boolean":
        return ["true", "false"]
    low, high = schema.get("minimum"), schema.get("maximum")
    if kind == "integer" and isinstance(low, int) and isinstance(high, int):
        return [str(v) for v in range(low, high + 1)] if high - low <= MAX_INT_CHOICES else None
    return None


def _literal(value: Any) -> str:
    return (
        "null"
        if value is None
        else "true"
        if value is True
        else "false"
        if value is False
        else str(value)
    )


def field_choices(json_schema: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """Per top-level property of the response schema whose values form a closed set, the
    JSON spellings of those values (``'"positive"'``, ``'true'``, ``'3'``, ``'null'``)."""
    choices = {}
    for name, schema in (json_schema.get("properties") or {}).items():
        spellings = _spellings(schema) if isinstance(schema, Mapping) else None
        if spellings:
            choices[name] = tuple(dict.fromkeys(spellings))
    return choices


def value_spans(text: str) -> dict[str, tuple[int, int]]:
    """Where each top-level member's value lies in ``text`` (from the first ``{``):
    ``[start, end)`` of its raw JSON, quotes included. The first occurrence of a key wins;
    scanning stops quietly at the first thing that is not JSON (spans found so far stay)."""
    spans: dict[str, tuple[int, int]] = {}
    i = text.find("{")
    if i < 0:
        return spans
    i += 1
    try:
        while True:
            i = _skip_ws(text, i)
            if text[i] == "}":
                return spans
            if text[i] == ",":
                i += 1
                continue
            key_end = _value_end(text, i)
            key = text[i + 1 : key_end - 1]
            i = _skip_ws(text, key_end)
            if text[i] != ":":
                return spans
            start = _skip_ws(text, i + 1)
            i = _value_end(text, start)
            spans.setdefault(key, (start, i))
    except (IndexError, ValueError):
        return spans


def _skip_ws(text: str, i: int) -> int:
    while text[i] in " \t\r\n":
        i += 1
    return i


def _value_end(text: str, i: int) -> int:
    """The index just past the JSON value starting at ``i``."""
    first = text[i]
    if first == '"':
        i += 1
        while text[i] != '"':
            i += 2 if text[i] == "\\" else 1
        return i + 1
    if first in "{[":
        depth = 0
        while True:
            char = text[i]
            if char == '"':
                i = _value_end(text, i)
                continue
            depth += 1 if char in "{[" else -1 if char in "}]" else 0
            i += 1
            if depth == 0:
                return i
    end = i
    while end < len(text) and text[end] in _LITERAL:
        end += 1
    if end == i:
        raise ValueError(f"no JSON value at {i}")
    return end


def _compatible(candidate: str, spelling: str) -> bool:
    """Whether text ``candidate``, written from the value's start, can be (or has
    finished writing) ``spelling``."""
    if spelling.startswith(candidate):
        return True
    if not candidate.startswith(spelling):
        return False
    return spelling.endswith('"') or candidate[len(spelling)] not in _LITERAL


def _confidence(
    tokens: Sequence[TokenLogprob],
    starts: Sequence[int],
    span: tuple[int, int],
    written: str,
    allowed: Sequence[str],
) -> float:
    value_start, value_end = span
    confidence = 1.0
    for token, start in zip(tokens, starts, strict=True):
        end = start + len(token.text)
        if end < value_start or start >= value_end or (end == start):
            continue
        lead = token.text[: max(0, value_start - start)]  # the token's text before the value
        so_far = written[: max(0, start - value_start)]  # the value's text before the token
        options = {token.text: token.logprob}
        for text, logprob in token.top:
            options.setdefault(text, logprob)
        same = total = 0.0
        for text, logprob in options.items():
            if not text.startswith(lead):
                continue
            candidate = so_far + text[len(lead) :]
            if any(_compatible(candidate, s) for s in allowed):
                p = math.exp(logprob)
                total += p
                if _compatible(candidate, written):
                    same += p
        if total > 0:
            confidence *= same / total
    return confidence


def field_confidences(
    tokens: Sequence[TokenLogprob],
    choices: Mapping[str, Sequence[str]],
    answer: Mapping[str, Any],
) -> dict[str, float | None]:
    """Per field of ``choices``: the confidence of the value the tokens wrote, or None when
    it is unknown (no tokens, the value not found, or not written as the accepted value)."""
    text = "".join(t.text for t in tokens)
    starts, position = [], 0
    for token in tokens:
        starts.append(position)
        position += len(token.text)
    spans = value_spans(text) if tokens else {}
    result: dict[str, float | None] = {}
    for name, allowed in choices.items():
        span = spans.get(name)
        written = text[span[0] : span[1]] if span else None
        if span is None or written not in allowed or written != _accepted(answer.get(name)):
            result[name] = None
            continue
        result[name] = _confidence(tokens, starts, span, written, allowed)
    return result


def _accepted(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else _literal(value)


def record_confidence(
    fields: Mapping[str, float | None], *, repaired: bool, repair_factor: float
) -> float:
    """The record's confidence: its least confident field (an unknown one counts as 0; a
    schema without closed-set fields counts as 1, validity alone), times ``repair_factor``
    when the answer was repaired field by field or re-asked."""
    values = [0.0 if v is None else v for v in fields.values()]
    base = min(values) if values else 1.0
    return base * (repair_factor if repaired else 1.0)
