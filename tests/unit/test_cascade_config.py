"""The cascade section at load and compile: steps, thresholds, the thresholds file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import EXAMPLE_TASK, REPO
from transforms.core.config.task import load_task
from transforms.core.errors import TaskConfigError
from transforms.core.job import compile_job

EXAMPLES = REPO / "pipelines" / "examples" / "reviews"


def provider(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "base_url": "http://127.0.0.1:9/v1", "model": f"{name}-m", **extra}


def write(folder: Path, cascade: dict[str, Any] | None, providers: list[dict[str, Any]]) -> Path:
    raw = yaml.safe_load(EXAMPLE_TASK.read_text())
    for section in ("input", "output"):
        raw[section]["schema"] = str((EXAMPLES / raw[section]["schema"]).resolve())
    raw["providers"] = providers
    if cascade is not None:
        raw["cascade"] = cascade
    path = folder / "task.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


TWO = [provider("a"), provider("b"), provider("c")]
STEPS = [
    {"name": "small", "providers": ["a"], "min_confidence": 0.8},
    {"name": "large", "providers": ["b", "c"]},
]


def error(tmp_path: Path, cascade: dict[str, Any], providers: list[dict[str, Any]] = TWO) -> str:
    with pytest.raises(TaskConfigError) as caught:
        compile_job(load_task(write(tmp_path, cascade, providers)))
    return str(caught.value)


def test_a_cascade_loads_with_its_steps(tmp_path: Path) -> None:
    task = load_task(write(tmp_path, {"steps": STEPS}, TWO))
    assert task.cascade is not None
    assert [(s.name, s.providers, s.min_confidence) for s in task.cascade.steps] == [
        ("small", ["a"], 0.8),
        ("large", ["b", "c"], None),
    ]
    assert task.cascade.top_logprobs == 20 and task.cascade.repair_factor == 0.5


@pytest.mark.parametrize(
    ("cascade", "expected"),
    [
        ({"steps": STEPS, "tresholds": "x"}, "cascade.tresholds: unknown key"),
        ({"steps": [{**STEPS[0], "colour": 1}, STEPS[1]]}, "cascade.steps.0.colour: unknown key"),
        (
            {"steps": [{**STEPS[0], "min_confidence": 1.5}, STEPS[1]]},
            "cascade.steps.0.min_confidence: Input should be less than or equal to 1",
        ),
        ({"steps": [STEPS[1]]}, "cascade.steps: List should have at least 2 items"),
        ({"steps": [STEPS[0], {**STEPS[1], "min_confidence": 0.5}]}, "takes no min_confidence"),
        ({"steps": [STEPS[0], {**STEPS[1], "name": "small"}]}, "step names must be unique"),
        (
            {"steps": [STEPS[0], {**STEPS[1], "providers": ["a", "b", "c"]}]},
            "a provider belongs to one step only, repeated: ['a']",
        ),
        ({"steps": [{**STEPS[0], "min_confidence": None}, STEPS[1]]}, "no min_confidence"),
        ({"steps": [STEPS[0], {**STEPS[1], "providers": ["b"]}]}, "provider 'c' is in no step"),
        ({"steps": [STEPS[0], {**STEPS[1], "providers": ["b", "c", "z"]}]}, "no provider 'z'"),
        ({"steps": STEPS, "repair_factor": -0.1}, "cascade.repair_factor"),
        ({"steps": STEPS, "top_logprobs": 0}, "cascade.top_logprobs"),
    ],
)
def test_mistakes_are_one_line_naming_the_key(
    tmp_path: Path, cascade: dict[str, Any], expected: str
) -> None:
    message = error(tmp_path, cascade)
    assert expected in message and "\n" not in message


def test_a_batch_provider_only_in_the_last_step(tmp_path: Path) -> None:
    batch = [provider("a", mode="batch", batch={"max_records": 8}), provider("b"), provider("c")]
    assert "is mode: batch; only the last step may be" in error(tmp_path, {"steps": STEPS}, batch)


def _thresholds(folder: Path, steps: dict[str, Any], prompt_hash: str = "p") -> None:
    (folder / "t.yaml").write_text(
        yaml.safe_dump(
            {
                "format": "llm-enrich.cascade-thresholds/1",
                "task": "x",
                "prompt_hash": prompt_hash,
                "steps": steps,
            }
        )
    )


def test_the_thresholds_file_wins_and_is_checked_against_the_prompt(tmp_path: Path) -> None:
    prompt = compile_job(load_task(write(tmp_path, {"steps": STEPS}, TWO))).prompt.hash
    path = write(tmp_path, {"steps": STEPS, "thresholds": "t.yaml"}, TWO)
    _thresholds(
        tmp_path,
        {
            "small": {"min_confidence": 0.42, "providers": ["a=a-m"]},
            "large": {"last": True, "providers": ["b=b-m", "c=c-m"]},
        },
        prompt,
    )
    job = compile_job(load_task(path))
    assert job.task.cascade is not None and job.task.cascade.steps[0].min_confidence == 0.42
    _thresholds(tmp_path, {"small": {"min_confidence": 0.42}, "large": {}}, "stale")
    with pytest.raises(TaskConfigError, match="calibrated for prompt stale"):
        compile_job(load_task(path))


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ({"small": {"min_confidence": 0.4}}, "the thresholds are for steps ['small']"),
        ({"small": {}, "large": {}}, "steps.small: no min_confidence and not skip"),
        ({"small": {"skip": True}, "large": {"min_confidence": 0.3}}, "takes no threshold"),
        ({"small": {"min_confidence": 2}, "large": {}}, "steps.small.min_confidence"),
        (
            {"small": {"min_confidence": 0.4, "providers": ["a=other"]}, "large": {}},
            "calibrated for ['a=other'], the step has ['a=a-m']",
        ),
    ],
)
def test_a_wrong_thresholds_file_is_one_line(
    tmp_path: Path, steps: dict[str, Any], expected: str
) -> None:
    _thresholds(tmp_path, steps)
    message = error(tmp_path, {"steps": STEPS, "thresholds": "t.yaml"})
    assert expected in message and "\n" not in message


def test_a_missing_thresholds_file_needs_the_steps_own(tmp_path: Path) -> None:
    no_threshold = [{**STEPS[0], "min_confidence": None}, STEPS[1]]
    message = error(tmp_path, {"steps": no_threshold, "thresholds": "t.yaml"})
    assert "cascade.thresholds: file not found" in message and "eval --calibrate" in message
    # with the step's own threshold it loads; calibration loads it without any
    path = write(tmp_path, {"steps": STEPS, "thresholds": "t.yaml"}, TWO)
    assert load_task(path).cascade is not None
    path = write(tmp_path, {"steps": no_threshold, "thresholds": "t.yaml"}, TWO)
    assert load_task(path, calibrating=True).cascade is not None


def test_a_skipped_step_leaves_the_cascade(tmp_path: Path) -> None:
    _thresholds(tmp_path, {"small": {"skip": True}, "large": {}})
    task = load_task(write(tmp_path, {"steps": STEPS, "thresholds": "t.yaml"}, TWO))
    assert task.cascade is not None and [s.name for s in task.cascade.active] == ["large"]


def test_the_example_cascade_extends_the_example_task() -> None:
    task = load_task(EXAMPLES / "cascade.yaml", calibrating=True)
    base = load_task(EXAMPLE_TASK)
    assert task.name == "reviews-cascade" and task.prompt == base.prompt
    assert task.kafka.input_topic == base.kafka.input_topic
    assert task.kafka.output_topic != base.kafka.output_topic
    assert task.cascade is not None and [s.name for s in task.cascade.steps] == ["small", "large"]


def test_extends_names_a_task_in_the_same_folder(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text("extends: ../task.yaml\nname: x\n")
    with pytest.raises(TaskConfigError, match="extends: a task file in the same folder"):
        load_task(tmp_path / "t.yaml")
    (tmp_path / "t.yaml").write_text("extends: nope.yaml\nname: x\n")
    with pytest.raises(TaskConfigError, match="extends: task file not found"):
        load_task(tmp_path / "t.yaml")
