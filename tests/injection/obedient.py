"""A scripted model that obeys injections: a ``FaultServer`` script answering each corpus
record with its ``obey`` answer, on the first call and on every re-ask."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from tests.fault_server import Action, Reply, Script
from tests.injection.corpus import Case

__all__ = ["obedient"]


def _case_in(content: str, cases: Sequence[Case]) -> Case | None:
    found = [c for c in cases if c.text in content and c.product in content]
    return max(found, key=lambda c: len(c.text) + len(c.product), default=None)


def obedient(cases: Sequence[Case]) -> Script:
    """The record is the last user message that holds a corpus text (a re-ask's own user
    message holds none); a prompt without one gets a 400, so a test cannot pass unseen."""

    def script(index: int, body: dict[str, Any]) -> Action:
        for message in reversed(body.get("messages", [])):
            if message.get("role") != "user":
                continue
            case = _case_in(message.get("content", ""), cases)
            if case is not None:
                return Reply.ok(json.dumps(case.obey, ensure_ascii=False))
        return Reply.status(400, "no corpus record in this prompt")

    return script
