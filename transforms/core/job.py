"""A compiled task: schemas parsed, response shape derived, prompt checked. Built once per
process (launcher and each worker) from the picklable ``TaskSpec``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from fastavro.schema import SchemaParseException

from schemas import AvroSchema, load_schema, parse_schema
from transforms.core.answers.partial import on_invalid_problems
from transforms.core.answers.validation import validate
from transforms.core.config.feedback import feedback_problems
from transforms.core.config.task import TaskSpec
from transforms.core.errors import TaskConfigError
from transforms.core.eval.kinds import eval_problems, field_kinds
from transforms.core.ledger.budget import budget_problem
from transforms.core.prompting.copied import copy_problems
from transforms.core.prompting.packing import POSITION, PackPrompt
from transforms.core.prompting.prompt import PromptRenderer, prompt_definition
from transforms.core.prompting.response_schema import ResponseShape, derive_response_shape
from transforms.core.safety.delimit import Delimiter, derive_boundary
from transforms.core.safety.screen import Screen, compile_screen

__all__ = ["Job", "compile_job", "product_version"]


def product_version() -> str:
    try:
        return version("llm-enrich")
    except PackageNotFoundError:
        return "0+unknown"


@dataclass(frozen=True)
class Job:
    task: TaskSpec
    input_schema: AvroSchema
    output_schema: AvroSchema
    shape: ResponseShape
    prompt: PromptRenderer
    input_previous: tuple[AvroSchema, ...] = ()
    output_previous: tuple[AvroSchema, ...] = ()
    screen: Screen = field(default_factory=Screen)
    # the prompt of a call shared by several records (prompt.records_per_call > 1)
    packing: PackPrompt | None = None

    @property
    def output_writers(self) -> dict[bytes, AvroSchema]:
        return {s.fingerprint: s for s in (*self.output_previous, self.output_schema)}

    @property
    def input_writers(self) -> dict[bytes, AvroSchema]:
        """Schemas input records may be written with, by single-object fingerprint."""
        return {s.fingerprint: s for s in (*self.input_previous, self.input_schema)}

    @property
    def name(self) -> str:
        return self.task.name

    @property
    def version(self) -> str:
        return product_version()


def _schema(task: TaskSpec, path: Path) -> AvroSchema:
    """The schema as read when the task was loaded (on a remote worker the file is not
    there), else from the file."""
    text = task.schema_text(path)
    if text is None:
        return load_schema(path)
    try:
        return parse_schema(json.loads(text))
    except (ValueError, SchemaParseException) as exc:
        raise ValueError(f"{path}: not a valid Avro schema: {exc}") from None


def _top_level_problem(section: str, schema: AvroSchema) -> str | None:
    """Why a schema cannot be a task's input or output, or None. Records with no fields are
    fine anywhere inside a schema; at the top they leave nothing to ask or to generate."""
    kind = schema.parsed.get("type") if isinstance(schema.parsed, dict) else schema.parsed
    if kind != "record":
        return (
            f"is {'an' if str(kind)[0] in 'aeiou' else 'a'} {kind}, not a record: the prompt "
            "shows a record's fields and the model answers them; make it a field of a record"
        )
    if schema.fields:
        return None
    if section == "input":
        return (
            "is a record with no fields: every record would render the same prompt, so "
            "there is nothing to enrich (the prompt shows only the value's fields)"
        )
    return "is a record with no fields: there is nothing for the model to generate"


def compile_job(task: TaskSpec) -> Job:
    where = task.source_path or "task"
    try:
        input_schema = _schema(task, task.input.schema_path)
        output_schema = _schema(task, task.output.schema_path)
        input_previous = tuple(_schema(task, p) for p in task.input.previous_schemas)
        output_previous = tuple(_schema(task, p) for p in task.output.previous_schemas)
    except ValueError as exc:
        raise TaskConfigError(str(exc)) from None
    for section, schema in (("input", input_schema), ("output", output_schema)):
        problem = _top_level_problem(section, schema)
        if problem:
            named = isinstance(schema.parsed, dict) and "name" in schema.parsed
            label = schema.fullname if named else getattr(task, section).schema_path.name
            raise TaskConfigError(f"{where}: {section}.schema {label}: {problem}")
    try:
        shape = derive_response_shape(
            output_schema.parsed, {f["name"] for f in input_schema.fields}
        )
        problems = copy_problems(input_schema.parsed, output_schema.parsed, shape.copied_fields)
        if problems:
            raise ValueError(problems[0])
        delimiter = _delimiter(task, shape)
        prompt = PromptRenderer(task.prompt, shape, delimiter)
        screen = compile_screen(task.safety, shape.generated_fields, delimiter)
    except ValueError as exc:
        raise TaskConfigError(f"{where}: {exc}") from None
    problems = (
        _calibration_problems(task, prompt.hash)
        + on_invalid_problems(shape.avro, task.output.on_invalid)
        + eval_problems(task.eval, field_kinds(shape.avro))
        + feedback_problems(
            task.feedback, list(shape.generated_fields), [f["name"] for f in output_schema.fields]
        )
    )
    budget = budget_problem(
        prompt.fixed_messages, task.generation.max_tokens, task.policy.max_tokens_per_record
    )
    if budget:
        problems.append(budget)
    if problems:
        raise TaskConfigError(f"{where}: {problems[0]}")
    for index, example in enumerate(task.prompt.examples):
        answer = {k: v for k, v in example.output.items() if k in shape.generated_fields}
        errors = validate(answer, shape.avro)
        if errors:
            raise TaskConfigError(
                f"{where}: prompt.examples[{index}].output: {errors[0]} "
                f"(examples must fit the output schema)"
            )
    return Job(
        task,
        input_schema,
        output_schema,
        shape,
        prompt,
        input_previous,
        output_previous,
        screen,
        _packing(task, shape, prompt),
    )


def _calibration_problems(task: TaskSpec, prompt_hash: str) -> list[str]:
    """Thresholds calibrated under another prompt say nothing about this one."""
    calibrated = task.cascade.calibrated_prompt if task.cascade else None
    if calibrated is None or calibrated == prompt_hash:
        return []
    return [
        f"cascade.thresholds: calibrated for prompt {calibrated}, the task's prompt is "
        f"{prompt_hash}: run llm-enrich eval --calibrate again"
    ]


def _packing(task: TaskSpec, shape: ResponseShape, prompt: PromptRenderer) -> PackPrompt | None:
    if task.prompt.records_per_call == 1:
        return None
    where = task.source_path or "task"
    if POSITION in shape.generated_fields:
        raise TaskConfigError(
            f"{where}: prompt.records_per_call > 1: the output field {POSITION!r} is generated, "
            "but packed answers use that key for the record's number; rename the field"
        )
    assert prompt.delimiter is not None, "the task checks that packs are delimited"
    return PackPrompt.build(prompt.fixed_messages, shape.json_schema, prompt.delimiter)


def _delimiter(task: TaskSpec, shape: ResponseShape) -> Delimiter | None:
    if not task.safety.delimit:
        return None
    definition = prompt_definition(task.prompt, shape.json_schema)
    return Delimiter(derive_boundary(task.safety.boundary_seed, definition))
