from __future__ import annotations

import json

import pytest

from tests.conftest import EXAMPLE_TASK
from transforms.core.config.task import load_task
from transforms.core.errors import FieldError, PromptError, TaskConfigError
from transforms.core.job import compile_job
from transforms.core.prompting.prompt import reask_messages

JOB = compile_job(load_task(EXAMPLE_TASK))
RECORD = {"review_id": "r9", "product": "Kettle", "text": "Boils fast.", "submitted_at": 0}


def test_generated_fields_are_the_output_fields_the_input_lacks() -> None:
    assert JOB.shape.generated_fields == ("sentiment", "topics", "summary", "rating")
    assert JOB.shape.copied_fields == ("review_id", "product")


def test_json_schema_follows_the_avro_schema() -> None:
    schema = JOB.shape.json_schema
    assert schema["required"] == ["sentiment", "topics", "summary", "rating"]
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    assert props["sentiment"]["enum"] == ["positive", "negative", "neutral", "mixed"]
    assert props["topics"] == {
        "type": "array",
        "items": {"type": "string"},
        "maxItems": 4,
        "description": "What the review talks about, as short lowercase tags.",
    }
    assert props["rating"]["type"] == "integer"
    assert (props["rating"]["minimum"], props["rating"]["maximum"]) == (1, 5)


def test_messages_are_system_then_example_turns_then_the_record() -> None:
    messages = JOB.prompt.messages(RECORD)
    roles = [m["role"] for m in messages]
    assert roles == ["system"] + ["user", "assistant"] * 3 + ["user"]
    data = JOB.prompt.delimiter
    assert data is not None  # safety.delimit is on by default: values are wrapped
    assert messages[-1]["content"] == (
        f"Product: {data.open}Kettle{data.close}\nReview: {data.open}Boils fast.{data.close}"
    )
    first_answer = json.loads(messages[2]["content"])
    assert set(first_answer) == {"sentiment", "topics", "summary", "rating"}


def test_prompt_hash_is_stable_and_changes_with_the_prompt() -> None:
    again = compile_job(load_task(EXAMPLE_TASK))
    assert again.prompt.hash == JOB.prompt.hash and len(JOB.prompt.hash) == 16
    changed = JOB.task.prompt.model_copy(update={"system": "Be terse."})
    other = compile_job(JOB.task.model_copy(update={"prompt": changed}))
    assert other.prompt.hash != JOB.prompt.hash


def test_missing_field_and_oversized_record_are_prompt_errors() -> None:
    with pytest.raises(PromptError, match="'text' is undefined"):
        JOB.prompt.messages({"product": "Kettle"})
    with pytest.raises(PromptError, match="over prompt.max_prompt_chars"):
        JOB.prompt.messages({**RECORD, "text": "x" * 30_000})


def test_record_text_is_data_and_the_template_is_sandboxed() -> None:
    injected = JOB.prompt.messages({**RECORD, "product": "{{ ''.__class__ }}"})
    assert injected[-1]["content"].startswith(
        f"Product: {JOB.prompt.delimiter.open}{{{{ ''.__class__ }}}}"
    )
    sneaky = JOB.task.prompt.model_copy(update={"template": "{{ text.__class__.__mro__ }}"})
    with pytest.raises(TaskConfigError, match="unsafe"):
        compile_job(JOB.task.model_copy(update={"prompt": sneaky}))


def test_reask_quotes_the_answer_and_the_errors() -> None:
    messages = reask_messages(
        [{"role": "user", "content": "q"}],
        '{"rating": 9}',
        [FieldError("$.rating", "must be <= 5")],
    )
    assert messages[1] == {"role": "assistant", "content": '{"rating": 9}'}
    assert "- $.rating: must be <= 5" in messages[2]["content"]
