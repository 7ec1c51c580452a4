"""The job's safety policy, compiled from ``safety``: what the enricher asks of it.

before the call   injection_kinds(rendered record) -> kinds found; the action says
                  what they mean: off (never looked at), flag (header + counter),
                  dead_letter (``InjectionSuspected``, stage guard, no call made)
after validation  rule_problems(answer) -> FieldErrors: re-asked once, then
                  ``OutputRuleViolated`` (stage guard)
                  moderated_texts(answer) -> the strings a moderation endpoint screens
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from transforms.core.config.safety import SafetySpec
from transforms.core.errors import FieldError, InjectionSuspected
from transforms.core.safety.delimit import Delimiter
from transforms.core.safety.detect import InjectionDetector
from transforms.core.safety.rules import OutputRules, compile_rules, strings

__all__ = ["RULES_NOTE", "Screen", "compile_screen"]

RULES_NOTE = "Your answer breaks this task's output rules; keep to them."


@dataclass(frozen=True)
class Screen:
    action: str = "off"
    detector: InjectionDetector = field(default_factory=InjectionDetector)
    rules: OutputRules = field(default_factory=OutputRules)
    delimiter: Delimiter | None = None
    generated: tuple[str, ...] = ()

    def injection_kinds(self, rendered: str) -> tuple[str, ...]:
        """Kinds of injection marker in the rendered record (its delimited values only,
        when values are delimited: the template's own text is trusted). Raises
        ``InjectionSuspected`` when the action is ``dead_letter``."""
        if self.action == "off":
            return ()
        values = self.delimiter.values(rendered) if self.delimiter else [rendered]
        kinds = self.detector.scan(values)
        if kinds and self.action == "dead_letter":
            raise InjectionSuspected(
                "the record carries injection markers: " + ", ".join(kinds),
                field_errors=[FieldError("$record", f"injection marker: {k}") for k in kinds],
            )
        return kinds

    def rule_problems(self, output: Mapping[str, Any]) -> list[FieldError]:
        return self.rules.check(output)

    def moderated_texts(self, output: Mapping[str, Any]) -> list[str]:
        """The generated strings of an answer (copied fields are the input's own)."""
        return [text for name in self.generated for _, text in strings(output.get(name), name)]


def compile_screen(
    spec: SafetySpec, generated: Sequence[str], delimiter: Delimiter | None
) -> Screen:
    """Raises ``ValueError`` for a rule on a field the model does not generate."""
    injection = spec.injection
    return Screen(
        injection.action,
        InjectionDetector(injection.checks, injection.repeated_min_chars),
        compile_rules(spec.output_rules, generated),
        delimiter,
        tuple(generated),
    )
