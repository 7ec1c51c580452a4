"""Many records in one call: the prompt of a pack and the shape of its answer.

With ``prompt.records_per_call: K`` (K > 1) up to K records share one chat call:

    system     prompt.system, the data boundary's note, then PACK_NOTE
    user       the few-shot inputs, packed:   <record-B i="1">...</record-B> ...   } once: the
    assistant  {"answers": [{"i": 1, ...}, {"i": 2, ...}, ...]}                   } format shown
    user       the n records (n <= K), packed the same way, numbered 1..n

A record's block is its ordinary rendering (the template, every value inside the data
boundary, ``transforms.core.safety.delimit``) between ``<record-B i="N">`` and
``</record-B>``, B the job's boundary. Values have the boundary escaped, so no record can
close its own block or open another's; the blocks and their numbers come from here, never
from a record. Everything before the last user turn is the same for every call, so it is
one byte-identical prefix (prefix caches, ``prefix_cache: exact``).

The answer is an object ``{"answers": [...]}`` (OpenAI's strict structured outputs want an
object at the root, so the array sits under one key). Its JSON Schema: exactly n items,
each the task's answer object with a leading ``"i"`` (an integer, 1..n: the number of the
record it answers). The number, not the order, says which record an answer belongs to
(``transforms.core.answers.unpack``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from transforms.core.safety.delimit import Delimiter

__all__ = ["ANSWERS", "POSITION", "PackPrompt", "pack_note"]

ANSWERS = "answers"  # the key holding the array of answers
POSITION = "i"  # the key of an answer saying which record (1..n) it answers
Message = dict[str, str]


def pack_note(delimiter: Delimiter) -> str:
    """What the system message adds for packs (part of the prompt hash)."""
    return (
        f'Several records come in one message, each between <record-{delimiter.boundary} i="N">'
        f" and </record-{delimiter.boundary}>, numbered from 1. Answer with one JSON object "
        f'{{"{ANSWERS}": [...]}} holding one answer per record, in the same order: each '
        f'answer is the JSON object this task asks for, with "{POSITION}" set to the number '
        "of the record it answers."
    )


@dataclass(frozen=True)
class PackPrompt:
    """The fixed part of every pack's conversation and the pack's response schema, built
    once per job from the single-record prompt (``PromptRenderer.preamble``)."""

    delimiter: Delimiter
    answer_schema: Mapping[str, Any]  # one record's answer (the response shape's schema)
    preamble: tuple[Message, ...]
    _schemas: dict[int, dict[str, Any]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(
        cls, single: Sequence[Message], answer_schema: Mapping[str, Any], delimiter: Delimiter
    ) -> PackPrompt:
        """``single``: the single-record preamble (system, then user/assistant example
        turns, the assistant's content one answer as JSON)."""
        system, *turns = single
        messages: list[Message] = [
            {"role": "system", "content": f"{system['content']}\n\n{pack_note(delimiter)}"}
        ]
        inputs = [turn["content"] for turn in turns[0::2]]
        answers = [json.loads(turn["content"]) for turn in turns[1::2]]
        if inputs:
            numbered = [{POSITION: n, **a} for n, a in enumerate(answers, 1)]
            messages.append({"role": "user", "content": records_block(delimiter, inputs)})
            messages.append({"role": "assistant", "content": json.dumps({ANSWERS: numbered})})
        return cls(delimiter, answer_schema, tuple(messages))

    def messages(self, contents: Sequence[str]) -> list[Message]:
        """The call's conversation for these records (each its rendered user content)."""
        return [*self.preamble, {"role": "user", "content": self.block(contents)}]

    def block(self, contents: Sequence[str]) -> str:
        return records_block(self.delimiter, contents)

    def schema(self, size: int) -> dict[str, Any]:
        """The response schema of a pack of ``size`` records (the same object each time, so
        a provider encodes its request head once per size)."""
        schema = self._schemas.get(size)
        if schema is None:
            schema = self._schemas[size] = _pack_schema(self.answer_schema, size)
        return schema


def records_block(delimiter: Delimiter, contents: Sequence[str]) -> str:
    """The records, numbered from 1, each inside its record tags."""
    tag = f"record-{delimiter.boundary}"
    return "\n".join(
        f'<{tag} {POSITION}="{n}">\n{content}\n</{tag}>' for n, content in enumerate(contents, 1)
    )


def _pack_schema(answer: Mapping[str, Any], size: int) -> dict[str, Any]:
    position = {"type": "integer", "minimum": 1, "maximum": size}
    item = {
        "type": "object",
        "properties": {POSITION: position, **answer["properties"]},
        "required": [POSITION, *answer["required"]],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            ANSWERS: {"type": "array", "items": item, "minItems": size, "maxItems": size}
        },
        "required": [ANSWERS],
        "additionalProperties": False,
    }
