"""The broken-answer corpus (tests/data/answer_corpus.yaml) run through the real judge.

    PYTHONPATH=. python -m tests.answer_corpus        # prints the shares and every miss

A case expecting ``accept`` is *unambiguous*; it counts as accepted without a re-ask when
the judge accepts exactly the expected value. A case expecting ``reask`` that the judge
accepts, or an unambiguous one accepted with another value, is *wrongly accepted*.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import yaml

from schemas import load_schema
from tests.conftest import REPO
from transforms.core.answers.judge import Judgement, judge
from transforms.core.prompting.response_schema import derive_response_shape

__all__ = ["CORPUS", "Case", "Report", "evaluate", "load_cases", "run_case"]

CORPUS = REPO / "tests" / "data" / "answer_corpus.yaml"
SCHEMA = REPO / "tests" / "data" / "tests.TaggedReview.avsc"
INPUT_FIELDS = {"review_id", "product", "text"}  # the reviews input: review_id is copied


@dataclass(frozen=True)
class Case:
    id: str
    raw: str
    expected: dict[str, Any] | None  # None: must be re-asked
    repairs: tuple[str, ...] = ()
    defaulted: tuple[str, ...] = ()
    on_invalid: dict[str, str] = field(default_factory=dict)
    reason: str = ""


def load_cases() -> list[Case]:
    document = yaml.safe_load(CORPUS.read_text(encoding="utf-8"))
    base = document["base"]
    cases = []
    for item in document["cases"]:
        accept = item.get("accept")
        cases.append(
            Case(
                id=item["id"],
                raw=item["raw"],
                expected=None if accept is None else {**base, **accept},
                repairs=tuple(item.get("repairs", ())),
                defaulted=tuple(item.get("defaulted", ())),
                on_invalid=item.get("on_invalid", {}),
                reason=item.get("reask", ""),
            )
        )
    return cases


def _shape() -> Any:
    return derive_response_shape(load_schema(SCHEMA).parsed, INPUT_FIELDS)


def run_case(case: Case, shape: Any = None) -> Judgement:
    shape = shape or _shape()
    reserved = frozenset(shape.copied_fields)
    return judge(case.raw, shape.avro, reserved=reserved, on_invalid=case.on_invalid)


@dataclass
class Report:
    unambiguous: int = 0
    accepted: list[str] = field(default_factory=list)  # unambiguous, accepted as expected
    missed: list[str] = field(default_factory=list)  # unambiguous, but re-asked
    wrongly_accepted: list[str] = field(default_factory=list)
    ambiguous: int = 0
    refused: list[str] = field(default_factory=list)  # ambiguous, re-asked (right)

    @property
    def accepted_share(self) -> float:
        return len(self.accepted) / self.unambiguous if self.unambiguous else 0.0

    def lines(self) -> list[str]:
        total = self.unambiguous + self.ambiguous
        return [
            f"corpus cases                        {total}"
            f"  ({self.unambiguous} unambiguous, {self.ambiguous} to re-ask)",
            f"accepted without re-ask (unambig.)  {len(self.accepted)}/{self.unambiguous}"
            f" = {self.accepted_share:.1%}",
            f"re-asked although unambiguous       {len(self.missed)}  {self.missed}",
            f"re-asked, as they must be           {len(self.refused)}/{self.ambiguous}",
            f"wrongly accepted                    {len(self.wrongly_accepted)}"
            f"  {self.wrongly_accepted}",
        ]


def evaluate(cases: list[Case]) -> Report:
    shape = _shape()
    report = Report()
    for case in cases:
        verdict = run_case(case, shape)
        accepted = not verdict.errors
        if case.expected is None:
            report.ambiguous += 1
            (report.wrongly_accepted if accepted else report.refused).append(case.id)
            continue
        report.unambiguous += 1
        if not accepted:
            report.missed.append(case.id)
        elif verdict.answer == case.expected:
            report.accepted.append(case.id)
        else:
            report.wrongly_accepted.append(case.id)
    return report


def main() -> int:
    report = evaluate(load_cases())
    print("\n".join(report.lines()))
    return 0 if report.accepted_share >= 0.95 and not report.wrongly_accepted else 1


if __name__ == "__main__":
    sys.exit(main())
