"""Text-level repair: find the one JSON value in a model's answer, or say why there is none.

    what the answer looks like                  repair                  or refused because
    strict JSON                                 -
    one fenced block (```json ... ```)          strip_code_fence        several fenced blocks
    prose around the object                     strip_surrounding_text  a second object after it
    Python literals ({'a': True, 'b': None})    python_literal
    broken JSON (trailing commas, quotes,       json_repair
      comments, bare keys, unclosed brackets)
    a quote inside a string left unescaped                              unbalanced quotes
      ('it's', "he said "no", then")
    cut off inside a string, after a key, a                             truncated
      ':' or ',', or inside a word
    empty, a refusal, prose with no object                              not a JSON object

Each repair that changed something is named in the returned list. Structure *inside* the
value (a wrapper object, a one-element array, an object encoded as a JSON string) is the
schema's business: see ``coerce``.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

import json_repair

from transforms.core.errors import FieldError

__all__ = ["closed_value_end", "parse_answer"]

_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\n?(.*?)```", re.DOTALL)
_ARRAY_OF_OBJECT = re.compile(r"\[\s*\{")
_LAST_WORD = re.compile(r"([A-Za-z]+)\s*$")
_PYTHON = re.compile(r"'|\b(?:True|False|None)\b")
_LITERALS = frozenset({"true", "false", "null", "True", "False", "None"})

Parsed = tuple[Any, list[str], list[FieldError]]


def parse_answer(raw: str) -> Parsed:
    """Return (datum, repairs applied, errors). ``errors`` is non-empty when nothing parsed."""
    try:
        return _json(raw), [], []
    except _DuplicateKey as twice:
        return None, [], [_refused(f"key {twice} given twice: not picking one")]
    except RecursionError:
        return None, [], [_refused("the answer is nested too deeply")]
    except ValueError:  # not JSON (or a number too long to convert)
        pass
    if not raw.strip():
        return None, [], [FieldError("$", "the answer is empty")]
    repairs: list[str] = []
    text = raw
    blocks = [b for b in _FENCE.findall(raw) if "{" in b]
    if len(blocks) > 1:
        return None, [], [_refused("several fenced JSON blocks: not picking one")]
    if blocks:
        text, repairs = blocks[0], ["strip_code_fence"]
    start = _value_start(text)
    if start is None:
        return None, repairs, [FieldError("$", "the answer is not a JSON object")]
    end, state = _scan(text, start)
    if state == "truncated":
        return None, repairs, [_refused("the answer is cut off (truncated); not completing it")]
    if _another_object(text[end:]):
        return None, repairs, [_refused("several JSON objects in the answer: not picking one")]
    if text[:start].strip() or text[end:].strip():
        repairs.append("strip_surrounding_text")
    try:
        datum, how = _loads(text[start:end])
    except _DuplicateKey as twice:
        return None, repairs, [_refused(f"key {twice} given twice: not picking one")]
    except RecursionError:
        return None, repairs, [_refused("the answer is nested too deeply")]
    except _AmbiguousQuotes:
        return (
            None,
            repairs,
            [_refused("a string's quotes are unbalanced: where it ends is a guess")],
        )
    if how is None:
        return None, repairs, [FieldError("$", "the answer is not a JSON object")]
    return datum, [*repairs, *how], []


def closed_value_end(text: str, start: int) -> int | None:
    """Where the object or array opening at ``start`` ends (the index after its closing
    bracket), or None when the text ends first."""
    end, state = _scan(text, start)
    return end if state == "closed" else None


def _refused(message: str) -> FieldError:
    return FieldError("$", message)


def _value_start(text: str) -> int | None:
    """Where the JSON value starts: the first ``{``, or a ``[`` that opens an array of
    objects before it."""
    brace = text.find("{")
    array = _ARRAY_OF_OBJECT.search(text)
    if array and (brace == -1 or array.start() < brace):
        return array.start()
    return brace if brace != -1 else None


def _scan(text: str, start: int) -> tuple[int, str]:
    """From the bracket at ``start`` to its match: (index after it, "closed"); else
    (len(text), "unclosed") when the text ends after a complete value, or "truncated" when
    it ends inside a string, after a key, a ``:`` / ``,`` / opening bracket, or a word."""
    depth, in_string, escaped = 0, False, False
    last, before_string = "", ""
    for index in range(start, len(text)):
        char = text[index]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string, last = False, '"'
            continue
        if char == '"':
            in_string, before_string = True, last
            continue
        if char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return index + 1, "closed"
        if not char.isspace():
            last = char
    dangling_key = last == '"' and before_string in ("{", ",")
    word = _LAST_WORD.search(text)
    cut_word = last.isalpha() and word is not None and word.group(1) not in _LITERALS
    if in_string or dangling_key or cut_word or last in (":", ",", "{", "["):
        return len(text), "truncated"
    return len(text), "unclosed"


def _another_object(rest: str) -> bool:
    """Whether the text after the value holds another JSON object."""
    start = rest.find("{")
    while start != -1:
        end, state = _scan(rest, start)
        if state == "closed":
            try:
                if _loads(rest[start:end])[1] is not None:
                    return True
            except (_DuplicateKey, _AmbiguousQuotes):
                return True
        start = rest.find("{", start + 1)
    return False


class _DuplicateKey(ValueError):
    pass


class _AmbiguousQuotes(ValueError):
    pass


_NEXT = re.compile(r"\s*(\S)")
_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)


def _quotes_close_cleanly(text: str) -> bool:
    """Whether every quoted string (either quote) is followed by ``,`` ``:`` ``]`` ``}`` or
    the end: ``["it's"]`` is, ``['it's']`` and ``"he said "no", then"`` are not. Where it is
    not, json-repair would have to guess where a string ends."""
    index, length = 0, len(text)
    while index < length:
        char = text[index]
        comment = _COMMENT.match(text, index) if char == "/" else None
        if comment:
            index = comment.end()
            continue
        if char not in "\"'":
            index += 1
            continue
        index += 1
        while index < length and text[index] != char:
            index += 2 if text[index] == "\\" else 1
        after = _NEXT.match(text, index + 1)
        if index < length and after and after.group(1) not in ",:]}":
            return False
        index += 1
    return True


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out and out[key] != value:
            raise _DuplicateKey(json.dumps(key))
        out[key] = value
    return out


def _json(text: str) -> Any:
    """Strict JSON; a key given twice with different values raises ``_DuplicateKey``."""
    return json.loads(text, object_pairs_hook=_unique)


def _loads(text: str) -> tuple[Any, list[str] | None]:
    """(value, repairs) for an object or array, else (None, None)."""
    try:
        return _json(text), []
    except _DuplicateKey:
        raise
    except ValueError:  # not JSON (or a number too long to convert)
        pass
    try:
        value = ast.literal_eval(text)  # literals only: nothing is executed
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        value = None
    if isinstance(value, dict | list):
        return value, ["python_literal" if _PYTHON.search(text) else "json_repair"]
    if not _quotes_close_cleanly(text):
        raise _AmbiguousQuotes
    try:
        value = json_repair.loads(text)
    except ValueError:
        return None, None
    if isinstance(value, dict | list) and value:
        return value, ["json_repair"]
    return None, None
