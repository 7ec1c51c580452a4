"""End to end: the ``llm-enrich`` command as a user runs it."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from tests.conftest import EXAMPLE_TASK, SCHEMAS
from tests.integration.conftest import (
    CLI,
    MakeTask,
    committed_offsets,
    end_offsets,
    local_provider,
    produce,
    reviews,
)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=600)


def test_run_prints_a_summary_and_commits(make_task: MakeTask, llm_server: None) -> None:
    job = make_task([local_provider()])
    produce(job, reviews(12))
    assert job.task.source_path is not None

    done = _cli("run", "--task", str(job.task.source_path), "--show", "2")

    assert done.returncode == 0, done.stderr
    assert "records read        12" in done.stdout
    assert "not settled         0" in done.stdout
    assert "== first 2 enriched records" in done.stdout
    shown = done.stdout.split("== first 2 enriched records\n", 1)[1].splitlines()
    assert "(none)" not in shown and [json.loads(line)["review_id"] for line in shown[:2]]
    assert committed_offsets(job) == end_offsets(job)


def test_unknown_key_exits_2_before_touching_kafka(tmp_path: Path) -> None:
    text = EXAMPLE_TASK.read_text().replace(
        "bootstrap_servers: 127.0.0.1:19092", "bootstrap_servers: 127.0.0.1:1\n  bootstrap: x"
    )
    task = tmp_path / "task.yaml"
    task.write_text(text.replace("../../../schemas", str(SCHEMAS)))
    started = time.monotonic()
    done = _cli("run", "--task", str(task))
    assert done.returncode == 2
    assert done.stderr.strip() == f"llm-enrich: error: {task}: kafka.bootstrap: unknown key"
    assert time.monotonic() - started < 20  # no broker connection was attempted
    assert done.stdout == ""


def test_missing_task_file_exits_2(tmp_path: Path) -> None:
    done = _cli("run", "--task", str(tmp_path / "nope.yaml"))
    assert done.returncode == 2
    assert "task file not found" in done.stderr


def test_an_output_record_with_no_fields_exits_2_saying_why(tmp_path: Path) -> None:
    schema = tmp_path / "t.Nothing.avsc"
    schema.write_text(json.dumps({"type": "record", "name": "t.Nothing", "fields": []}))
    text = EXAMPLE_TASK.read_text().replace("../../../schemas", str(SCHEMAS))
    task = tmp_path / "task.yaml"
    task.write_text(
        text.replace(str(SCHEMAS / "examples.reviews.EnrichedReview.avsc"), str(schema))
    )
    assert str(schema) in task.read_text()
    done = _cli("run", "--task", str(task))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"llm-enrich: error: {task}: output.schema t.Nothing: is a record with no fields: "
        "there is nothing for the model to generate"
    )
