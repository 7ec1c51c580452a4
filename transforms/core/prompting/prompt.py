"""Render the chat prompt: system message, few-shot examples as turns, then the record.

    system    prompt.system
    user      template(example.input)       } once per example: the few shots pin the
    assistant json(example.output)          } answer's format and style
    user      template(record)

With a ``Delimiter`` (``safety.delimit``, on by default) every ``{{ expression }}`` is
rendered inside the job's data boundary and the system message says that delimited text
is data (``transforms.core.safety.delimit``).

The prompt hash identifies the prompt's definition (system, template, examples, the
response schema, the data boundary and, with ``prompt.records_per_call`` > 1, the pack's
size and format), so every output and dead letter says which prompt produced it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from transforms.core.config.task import PromptSpec
from transforms.core.errors import FieldError, PromptError
from transforms.core.prompting.packing import pack_note
from transforms.core.prompting.response_schema import ResponseShape
from transforms.core.safety.delimit import Delimiter

__all__ = ["Message", "PromptRenderer", "prompt_definition", "reask_messages"]

Message = dict[str, str]


class PromptRenderer:
    def __init__(
        self, spec: PromptSpec, shape: ResponseShape, delimiter: Delimiter | None = None
    ) -> None:
        self._spec = spec
        self._shape = shape
        self.delimiter = delimiter
        env = ImmutableSandboxedEnvironment(
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            finalize=delimiter.wrap if delimiter else None,
        )
        try:
            self._template = env.from_string(spec.template)
        except jinja2.TemplateSyntaxError as exc:
            raise ValueError(f"prompt.template: {exc.message} (line {exc.lineno})") from None
        self._preamble = self._render_preamble()
        self.hash = _hash(spec, shape.json_schema, delimiter)

    def _render_preamble(self) -> list[Message]:
        system = self._spec.system
        if self.delimiter:
            system = f"{system}\n\n{self.delimiter.system_note}"
        messages: list[Message] = [{"role": "system", "content": system}]
        for index, example in enumerate(self._spec.examples):
            try:
                user = self._template.render(**example.input)
            except jinja2.TemplateError as exc:
                raise ValueError(f"prompt.examples[{index}].input: {exc}") from None
            answer = {k: v for k, v in example.output.items() if k in self._shape.generated_fields}
            messages.append({"role": "user", "content": user})
            messages.append({"role": "assistant", "content": json.dumps(answer)})
        return messages

    @property
    def fixed_messages(self) -> list[Message]:
        """What every record's conversation starts with: the system message and the few
        shots, byte-identical across records (so a provider's prefix cache can serve it)."""
        return list(self._preamble)

    def messages(self, record: Mapping[str, Any]) -> list[Message]:
        """The full conversation for one record; raises ``PromptError`` if it cannot render."""
        try:
            content = self._template.render(**record)
        except jinja2.TemplateError as exc:
            raise PromptError(f"template cannot render this record: {exc}") from None
        if len(content) > self._spec.max_prompt_chars:
            raise PromptError(
                f"rendered record is {len(content)} characters, over prompt.max_prompt_chars "
                f"({self._spec.max_prompt_chars})"
            )
        return [*self._preamble, {"role": "user", "content": content}]


def reask_messages(
    messages: Sequence[Message], raw_answer: str, errors: Sequence[FieldError], note: str = ""
) -> list[Message]:
    """Continue the conversation: quote the invalid answer's errors and ask again."""
    listed = "\n".join(f"- {error}" for error in errors)
    prefix = f"{note}\n" if note else ""
    return [
        *messages,
        {"role": "assistant", "content": raw_answer},
        {
            "role": "user",
            "content": f"{prefix}Your answer was not valid:\n{listed}\n"
            "Answer again with only the corrected JSON object.",
        },
    ]


def prompt_definition(spec: PromptSpec, json_schema: Mapping[str, Any]) -> str:
    """The prompt's definition as canonical JSON (what the data boundary derives from)."""
    definition = {
        "system": spec.system,
        "template": spec.template,
        "examples": [e.model_dump(mode="json") for e in spec.examples],
        "response_schema": json_schema,
    }
    return json.dumps(definition, sort_keys=True, separators=(",", ":"))


def _hash(spec: PromptSpec, json_schema: Mapping[str, Any], delimiter: Delimiter | None) -> str:
    canonical = prompt_definition(spec, json_schema)
    if delimiter:  # the boundary and the system note that explains it
        canonical += f"\0data-boundary:{delimiter.boundary}\0{delimiter.system_note}"
    if delimiter and spec.records_per_call > 1:  # packs: their size and format
        canonical += f"\0records-per-call:{spec.records_per_call}\0{pack_note(delimiter)}"
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
