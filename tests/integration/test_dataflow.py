"""The path to Dataflow, tested offline: the image's requirements install in a clean venv,
and the flex-template launcher translates the pipeline for the Dataflow runner (Beam's
``--dry_run``) with the task inside it and no secret in it. Dataflow itself is not called.

What Dataflow shares with the Flink cluster, where the stage runs for real
(``test_flink.py``): every step of the pipeline ``--runner flink`` builds is in the job
translated for Dataflow, but for how records reach the enrich step (Flink: keyed by slot,
``Process/Slot``, so that calls outlive their bundle; Dataflow: ``Spread``, a reshuffle,
and an enrich step whose bundles wait for their calls, which a retried bundle needs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from pipelines.enrich_pipeline import build_pipeline
from tests.conftest import EXAMPLE_TASK, REPO
from transforms.core.config.task import load_task

SCRIPT = """
import json, sys
from pipelines.launcher import build_from_template
pipeline, _ = build_from_template(sys.argv[1:])
result = pipeline.run()  # --dry_run: translated, not submitted
from google.protobuf import json_format
graph = json_format.MessageToJson(result.job.proto_pipeline)
print(json.dumps({"job": json.loads(result.job.json()), "graph": json.loads(graph)}))
"""


def test_the_launcher_translates_the_pipeline_for_dataflow_from_a_clean_install() -> None:
    python = subprocess.run(
        ["bash", str(REPO / "deploy/dataflow/check_image_requirements.sh")],
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    ).stdout.strip()
    secret = "sk-live-do-not-leak-0123456789"
    env = {**os.environ, "OPENAI_API_KEY": secret, "LLM_ENRICH_PRISM": "/nonexistent"}
    done = subprocess.run(
        [
            python,
            "-c",
            SCRIPT,
            f"--task={EXAMPLE_TASK}",
            "--follow=true",
            "--runner=DataflowRunner",
            "--project=demo-project",
            "--region=europe-west1",
            "--temp_location=gs://demo-bucket/tmp",
            "--sdk_location=container",
            "--sdk_container_image=europe-docker.pkg.dev/demo/llm-enrich/worker:0.1.0",
            "--dry_run=True",
        ],
        capture_output=True,
        text=True,
        cwd="/",  # the installed package, not this checkout
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    translated = json.loads(done.stdout.strip().splitlines()[-1])
    assert translated["job"]["type"] == "JOB_TYPE_STREAMING"
    names = {t["uniqueName"] for t in translated["graph"]["components"]["transforms"].values()}
    for step in ("Read/WatchPartitions", "Read/ReadPartitions", "Spread", "Process/Enrich"):
        assert f"Enrich[reviews-enrichment]/{step}" in names, step
    assert "Enrich[reviews-enrichment]/CommitOffsets/Commit" in names
    assert secret not in done.stdout + done.stderr
    flink = _flink_steps()
    assert "Enrich[reviews-enrichment]/Process/Slot" in flink
    assert flink - names == {"Enrich[reviews-enrichment]/Process/Slot"}, flink - names
    assert "Enrich[reviews-enrichment]/Spread" in names - flink


def _flink_steps() -> set[str]:
    """The steps (composites and DoFns, by name) of the pipeline ``llm-enrich run --runner
    flink --follow`` builds for the example task (``pipelines.runner.flink_workers``'s
    arguments; built, not submitted), but for the DoFns' inner names, which differ by class."""
    args = [
        "--runner=PortableRunner",
        "--job_endpoint=localhost:1",
        "--environment_type=PROCESS",
        '--environment_config={"command": "/bin/true"}',
        "--parallelism=4",
    ]
    pipeline, _ = build_pipeline(load_task(EXAMPLE_TASK), args, follow=True)
    transforms = pipeline.to_runner_api().components.transforms.values()
    return {
        t.unique_name
        for t in transforms
        if t.unique_name.startswith("Enrich[") and "(" not in t.unique_name.rsplit("/", 1)[-1]
    }


def test_a_bad_template_parameter_fails_before_submission() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.launcher", "--task=/nope.yaml", "--follow=maybe"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 2 and "expected true or false" in done.stderr
