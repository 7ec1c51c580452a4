"""Deterministic repair of a model's answer before it is judged invalid.

In order: strip code fences and prose around the JSON object, then let ``json-repair``
fix broken JSON (trailing commas, unbalanced brackets, single quotes). Each step that
changed something is named in the returned list, so outputs can say what was repaired.
"""

from __future__ import annotations

import json
import re
from typing import Any

import json_repair

from transforms.core.errors import FieldError

__all__ = ["parse_answer"]

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


def parse_answer(raw: str) -> tuple[Any, list[str], list[FieldError]]:
    """Return (datum, repairs applied, errors). ``errors`` is non-empty when nothing parsed."""
    try:
        return json.loads(raw), [], []
    except json.JSONDecodeError:
        pass
    repairs: list[str] = []
    text = raw
    fenced = _FENCE.search(text)
    if fenced:
        text, repairs = fenced.group(1), ["strip_code_fence"]
    text = text.strip()
    start, end = text.find("{"), text.rfind("}")
    if start != -1:
        trimmed = text[start : end + 1] if end > start else text[start:]
        if trimmed != text:
            text = trimmed
            repairs.append("strip_surrounding_text")
    try:
        return json.loads(text), repairs, []
    except json.JSONDecodeError:
        pass
    repaired = json_repair.loads(text)
    if isinstance(repaired, dict) and repaired:
        return repaired, [*repairs, "json_repair"], []
    return None, repairs, [FieldError("$", "the answer is not a JSON object")]
