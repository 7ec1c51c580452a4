"""Partial acceptance: ``output.on_invalid`` is checked at load and applied per field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from schemas import load_schema
from tests.conftest import EXAMPLE_TASK, REPO
from transforms.core.answers.judge import judge
from transforms.core.answers.partial import accept_partially
from transforms.core.config.task import load_task
from transforms.core.errors import FieldError, TaskConfigError
from transforms.core.job import compile_job
from transforms.core.prompting.response_schema import derive_response_shape

TAGGED = REPO / "tests" / "data" / "tests.TaggedReview.avsc"
SHAPE = derive_response_shape(load_schema(TAGGED).parsed, {"review_id", "product", "text"})
GOOD = {
    "sentiment": "positive",
    "priority": "high",
    "topics": ["battery"],
    "rating": 4,
    "confidence": 0.5,
    "is_spam": False,
    "language": "en",
}


def _task(tmp_path: Path, on_invalid: dict[str, Any]) -> Path:
    raw = yaml.safe_load(EXAMPLE_TASK.read_text())
    raw["input"]["schema"] = str(EXAMPLE_TASK.parent / raw["input"]["schema"])
    raw["output"] = {"schema": str(TAGGED), "on_invalid": on_invalid}
    raw["prompt"]["examples"] = []
    raw.pop("safety", None)  # its output rules name fields of the example's own schema
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_valid_on_invalid_compiles(tmp_path: Path) -> None:
    spec = {"language": "null", "priority": "default", "rating": "re-ask"}
    job = compile_job(load_task(_task(tmp_path, spec)))
    assert job.task.output.on_invalid == spec


@pytest.mark.parametrize(
    ("on_invalid", "expected"),
    [
        ({"language": "skip"}, "output.on_invalid.language: Input should be 're-ask'"),
        ({"rating": "default"}, "output.on_invalid.rating: 'default' needs an Avro default"),
        ({"priority": "null"}, "output.on_invalid.priority: 'null' needs a nullable field"),
        ({"review_id": "null"}, "output.on_invalid.review_id: not a field the model generates"),
        ({"colour": "default"}, "output.on_invalid.colour: not a field the model generates"),
    ],
)
def test_on_invalid_that_does_not_fit_the_schema_is_a_config_error(
    tmp_path: Path, on_invalid: dict[str, str], expected: str
) -> None:
    path = _task(tmp_path, on_invalid)
    with pytest.raises(TaskConfigError) as info:
        compile_job(load_task(path))
    assert expected in str(info.value) and str(path) in str(info.value)


def test_only_fields_declared_are_replaced_and_they_are_listed() -> None:
    answer = {**GOOD, "priority": "urgent", "language": {"code": "en"}}
    errors = [FieldError("$.priority", "bad"), FieldError("$.language", "bad")]
    on_invalid = {"priority": "default", "language": "null"}
    fixed, names = accept_partially(answer, errors, on_invalid, SHAPE.avro) or ({}, ())
    assert fixed == {**GOOD, "priority": "low", "language": None}
    assert names == ("priority", "language")
    assert (
        accept_partially(answer, [*errors, FieldError("$.rating", "bad")], on_invalid, SHAPE.avro)
        is None
    )
    assert (
        accept_partially(answer, [FieldError("$", "not an object")], on_invalid, SHAPE.avro) is None
    )


def test_a_nested_error_inside_a_defaultable_field_defaults_the_field() -> None:
    raw = '{"sentiment": "positive", "priority": ["high", "low"], "topics": ["a"], "rating": 2,'
    raw += ' "confidence": 0.1, "is_spam": true}'
    verdict = judge(raw, SHAPE.avro, on_invalid={"priority": "default"})
    assert verdict.errors == () and verdict.defaulted == ("priority",)
    assert verdict.answer["priority"] == "low"
    strict = judge(raw, SHAPE.avro)
    assert [e.path for e in strict.errors] == ["$.priority"] and strict.defaulted == ()
