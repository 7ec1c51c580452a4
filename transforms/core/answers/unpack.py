"""Split a pack's answer into one answer per record, by the number each answer carries.

    the pack's answer                          read as
    {"answers": [{"i": 1, ...}, ...]}          the array under "answers"
    [{"i": 1, ...}, ...]                       the array itself
    {"i": 1, ...}                              an array of that one answer
    fenced, prose around it                    ``parse_answer``'s repairs, named on every
                                               answer taken from it
    broken inside, or cut off                  answer by answer: every complete object of
      (finish_reason "length")                 the array is read on its own (with its own
                                               repairs, ``parse_answer``'s); a broken one
                                               spoils no other; the rest are missing

Each answer is placed on the record its ``"i"`` names, never by its place in the array:

    "i" an integer 1..n (or such a string)     placed; the answer minus "i" goes to ``judge``
    no "i", not an integer, outside 1..n       stray: placed on no record
    two different answers for one number       that record has none (a guess either way)
    a record no answer names                   missing

A record with no answer is asked again alone (``transforms.core.calls.packs``); a placed
answer is judged like any single answer, so one bad answer never fails its neighbours.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from transforms.core.answers.repair import closed_value_end, parse_answer
from transforms.core.prompting.packing import ANSWERS, POSITION

__all__ = ["Element", "Unpacked", "unpack"]

_AROUND = frozenset({"strip_code_fence", "strip_surrounding_text"})  # text around the pack


@dataclass(frozen=True)
class Element:
    """One record's answer out of a pack."""

    text: str  # the answer without its number, as JSON: what ``judge`` reads
    repairs: tuple[str, ...] = ()  # what it took to read it out of the pack's answer
    chars: int = 0  # its length in the pack's answer (for apportioning completion tokens)


@dataclass(frozen=True)
class Unpacked:
    elements: dict[int, Element] = field(default_factory=dict)  # by record number, 1..n
    missing: dict[int, str] = field(default_factory=dict)  # record number -> why no answer
    stray: tuple[str, ...] = ()  # answers placed on no record: why


def unpack(raw: str, size: int, *, truncated: bool = False) -> Unpacked:
    """``size``: the records in the pack; ``truncated``: the answer was cut off at
    max_tokens (only complete answers are read)."""
    whole: list[tuple[Any, tuple[str, ...], int]] = []
    if not truncated:
        datum, repairs, errors = parse_answer(raw)
        array = None if errors else _array(datum)
        whole = [(item, tuple(repairs), len(json.dumps(item))) for item in array or []]
        if array is not None and set(repairs) <= _AROUND:
            return _place(whole, size, truncated=truncated)
    # Broken inside: each answer on its own, so that each names only its own repairs
    return _place(_one_by_one(raw) or whole, size, truncated=truncated)


def _array(datum: Any) -> list[Any] | None:
    if isinstance(datum, list):
        return datum
    if isinstance(datum, dict) and isinstance(datum.get(ANSWERS), list):
        return list(datum[ANSWERS])
    if isinstance(datum, dict) and POSITION in datum:
        return [datum]
    return None


def _one_by_one(raw: str) -> list[tuple[Any, tuple[str, ...], int]]:
    """Every complete object of the answer's array, each read on its own; an object that
    does not read is kept as None (a stray)."""
    start = _array_start(raw)
    items: list[tuple[Any, tuple[str, ...], int]] = []
    index = start
    while index is not None and index < len(raw):
        index = _skip_space(raw, index)
        if index >= len(raw) or raw[index] != "{":
            break
        end = closed_value_end(raw, index)
        if end is None:
            break  # cut off inside this object
        datum, repairs, errors = parse_answer(raw[index:end])
        items.append((None if errors else datum, tuple(repairs), end - index))
        index = _skip_space(raw, end)
        if index >= len(raw) or raw[index] != ",":
            break
        index += 1
    return items


def _array_start(raw: str) -> int | None:
    """Just after the ``[`` that opens the answers: after ``"answers"`` if named, else the
    first ``[``."""
    named = raw.find(f'"{ANSWERS}"')
    bracket = raw.find("[", named if named != -1 else 0)
    return None if bracket == -1 else bracket + 1


def _skip_space(text: str, index: int) -> int:
    while index < len(text) and text[index].isspace():
        index += 1
    return index


def _position(item: dict[str, Any]) -> tuple[int | None, str | None]:
    """(the record number an answer names, the repair it took), or (None, None)."""
    value = item.get(POSITION)
    if isinstance(value, int) and not isinstance(value, bool):
        return value, None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip()), f"numeric_string@$.{POSITION}"
    return None, None


def _place(
    items: list[tuple[Any, tuple[str, ...], int]], size: int, *, truncated: bool
) -> Unpacked:
    placed: dict[int, Element] = {}
    answers: dict[int, dict[str, Any]] = {}
    twice: set[int] = set()
    stray: list[str] = []
    for item, repairs, chars in items:
        if not isinstance(item, dict):
            stray.append("an answer that is not a JSON object")
            continue
        number, repair = _position(item)
        if number is None:
            stray.append(f'an answer without an integer "{POSITION}"')
            continue
        if not 1 <= number <= size:
            stray.append(f"an answer for record {number}, not one of the {size} records")
            continue
        answer = {k: v for k, v in item.items() if k != POSITION}
        if number in answers:
            if answers[number] != answer:
                twice.add(number)
            continue
        answers[number] = answer
        fixes = (*repairs, repair) if repair else repairs
        placed[number] = Element(json.dumps(answer), fixes, chars)
    missing: dict[int, str] = {}
    for number in range(1, size + 1):
        if number in twice:
            missing[number] = "the pack's answer holds two different answers for it"
        elif number not in placed:
            cut = " (the answer was cut off)" if truncated else ""
            missing[number] = f"the pack's answer holds no answer for it{cut}"
    elements = {n: e for n, e in placed.items() if n not in twice}
    return Unpacked(elements, missing, tuple(stray))
