from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import EXAMPLE_TASK, SCHEMAS
from transforms.core.config.task import load_task
from transforms.core.errors import TaskConfigError
from transforms.core.job import compile_job


def _write(tmp_path: Path, mutate: object) -> Path:
    raw = yaml.safe_load(EXAMPLE_TASK.read_text())
    raw["input"]["schema"] = str(EXAMPLE_TASK.parent / raw["input"]["schema"])
    raw["output"]["schema"] = str(EXAMPLE_TASK.parent / raw["output"]["schema"])
    mutate(raw)  # type: ignore[operator]
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_example_task_loads_and_resolves_paths() -> None:
    task = load_task(EXAMPLE_TASK)
    assert task.input.schema_path.is_absolute() and task.input.schema_path.is_file()
    assert task.consumer_group == "reviews-enrichment"
    assert task.generation.temperature == 0
    assert [p.name for p in task.providers] == ["local-smollm2", "local-smollm2-backup"]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda r: r.update(retries=3), "retries: unknown key"),
        (lambda r: r["kafka"].update(bootstrap="x"), "kafka.bootstrap: unknown key"),
        (lambda r: r["providers"][0].update(api_key="sk-x"), "providers.0.api_key: unknown key"),
        (lambda r: r["kafka"].pop("output_topic"), "kafka.output_topic: required key is missing"),
        (lambda r: r["input"].update(framing="xml"), "input.framing: Input should be"),
        (lambda r: r["generation"].update(temperature=5), "generation.temperature"),
        (lambda r: r.update(providers=[]), "providers: List should have at least 1 item"),
        (
            lambda r: r["providers"][0].update(prefix_cache="always"),
            "providers.0.prefix_cache: Input should be 'off' or 'exact'",
        ),
        (
            lambda r: r["input"].update(framing="confluent"),
            "input: Value error, framing 'confluent'",
        ),
    ],
)
def test_invalid_task_is_one_line_naming_the_key(
    tmp_path: Path, mutate: object, expected: str
) -> None:
    path = _write(tmp_path, mutate)
    with pytest.raises(TaskConfigError) as info:
        load_task(path)
    message = str(info.value)
    assert expected in message
    assert str(path) in message
    assert "\n" not in message


def test_unknown_kafka_client_property_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda r: r["kafka"].update(client={"enable_auto_commit": True}))
    with pytest.raises(TaskConfigError, match="unrecognized client properties.*enable_auto_commit"):
        load_task(path)


def test_missing_schema_file_names_key_and_path(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda r: r["output"].update(schema="nowhere.avsc"))
    with pytest.raises(TaskConfigError, match=r"output.schema: file not found: .*nowhere.avsc"):
        load_task(path)


def test_missing_task_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(TaskConfigError, match="task file not found"):
        load_task(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(TaskConfigError, match="not valid YAML"):
        load_task(bad)


def test_duplicate_provider_names_are_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda r: r["providers"][1].update(name=r["providers"][0]["name"]))
    with pytest.raises(TaskConfigError, match="provider names must be unique"):
        load_task(path)


def test_example_that_does_not_fit_the_output_schema_is_a_config_error(tmp_path: Path) -> None:
    def mutate(raw: dict) -> None:  # type: ignore[type-arg]
        raw["prompt"]["examples"][0]["output"]["sentiment"] = "happy"

    with pytest.raises(TaskConfigError, match=r"prompt.examples\[0\].output: \$.sentiment"):
        compile_job(load_task(_write(tmp_path, mutate)))


def test_template_syntax_error_is_a_config_error(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda r: r["prompt"].update(template="{{ text "))
    with pytest.raises(TaskConfigError, match="prompt.template"):
        compile_job(load_task(path))


def test_the_task_travels_whole_without_its_schema_files(tmp_path: Path) -> None:
    """Remote workers get the pickled task: the launcher's schema paths do not exist there."""
    import pickle
    import shutil

    folder = tmp_path / "job"
    shutil.copytree(EXAMPLE_TASK.parent, folder)
    (folder / "schemas").mkdir()
    for name in ("examples.reviews.Review.avsc", "examples.reviews.EnrichedReview.avsc"):
        shutil.copy(SCHEMAS / name, folder / "schemas" / name)
    text = (folder / "task.yaml").read_text().replace("../../../schemas", "schemas")
    (folder / "task.yaml").write_text(text)
    task = load_task(folder / "task.yaml")
    launcher = compile_job(task)

    shipped = pickle.dumps(task)
    shutil.rmtree(folder)  # the worker's file system has none of it
    worker = compile_job(pickle.loads(shipped))

    assert worker.output_schema.fingerprint == launcher.output_schema.fingerprint
    assert worker.prompt.hash == launcher.prompt.hash


def _with_schema(tmp_path: Path, section: str, schema: object, mutate: object = None) -> Path:
    path = tmp_path / f"{section}.avsc"
    path.write_text(json.dumps(schema))

    def change(raw: dict) -> None:  # type: ignore[type-arg]
        raw[section]["schema"] = str(path)
        if mutate:
            mutate(raw)  # type: ignore[operator]

    return _write(tmp_path, change)


@pytest.mark.parametrize(
    ("section", "schema", "expected"),
    [
        ("input", "string", r"input.schema input.avsc: is a string, not a record"),
        (
            "input",
            {"type": "record", "name": "t.Empty", "fields": []},
            r"input.schema t.Empty: is a record with no fields: every record would render",
        ),
        (
            "output",
            {"type": "record", "name": "t.Empty", "fields": []},
            r"output.schema t.Empty: is a record with no fields: there is nothing for the model",
        ),
        (
            "output",
            {"type": "array", "items": "string"},
            r"output.schema output.avsc: is an array, not a record",
        ),
        (
            "output",
            {"type": "record", "name": "t.Copy", "fields": [{"name": "text", "type": "string"}]},
            r"the output schema has no field for the model to generate",
        ),
    ],
)
def test_schemas_that_cannot_be_a_tasks_say_why(
    tmp_path: Path, section: str, schema: object, expected: str
) -> None:
    with pytest.raises(TaskConfigError, match=expected):
        compile_job(load_task(_with_schema(tmp_path, section, schema)))


def test_a_record_with_no_fields_inside_the_output_is_accepted(tmp_path: Path) -> None:
    """Valid Avro: the model answers ``{}`` for it, and nothing else is accepted there."""
    raw = json.loads((SCHEMAS / "examples.reviews.EnrichedReview.avsc").read_text())
    raw["fields"].append(
        {"name": "flags", "type": {"type": "record", "name": "Flags", "fields": []}}
    )

    def examples_answer_it(task: dict) -> None:  # type: ignore[type-arg]
        for example in task["prompt"]["examples"]:
            example["output"]["flags"] = {}

    job = compile_job(load_task(_with_schema(tmp_path, "output", raw, examples_answer_it)))
    flags = job.shape.json_schema["properties"]["flags"]
    assert flags == {
        "type": "object",
        "properties": {},
        "required": [],
        "additionalProperties": False,
    }
