"""The cascade with the two real local models: SmolLM2-135M (deploy/llm.sh) first, Gemma 3
270M (deploy/llm-gemma.sh) second. Few records: calibration on four golden reviews, then a
drain of three through the pipeline with the thresholds it wrote."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from pathlib import Path

import pytest
import yaml

from pipelines.topics import topic_records
from tests.integration.conftest import (
    CLI,
    LLM_URL,
    MakeTask,
    local_provider,
    produce,
    reviews,
    run_job,
    sample_reviews,
)
from transforms.core.config.task import load_task
from transforms.core.eval.calibrate import held_back
from transforms.core.job import compile_job

GEMMA_URL = os.environ.get("LLM_ENRICH_GEMMA_URL", "http://127.0.0.1:18085/v1")


@pytest.fixture(scope="session")
def gemma_server() -> None:
    health = GEMMA_URL.removesuffix("/v1") + "/health"
    try:
        urllib.request.urlopen(health, timeout=5).read()
        models = json.load(urllib.request.urlopen(GEMMA_URL + "/models", timeout=5))
    except Exception as exc:
        pytest.fail(f"no llama-server at {health} ({exc}); run deploy/llm-gemma.sh start")
    assert models["data"][0]["id"] == "gemma3-270m", f"not the Gemma server: {models}"


def test_the_two_local_models_as_a_cascade(
    make_task: MakeTask, llm_server: None, gemma_server: None, tmp_path: Path
) -> None:
    small = local_provider("smollm2", base_url=LLM_URL, timeout_s=180)
    large = local_provider("gemma3", base_url=GEMMA_URL, model="gemma3-270m", timeout_s=300)
    for provider, price in ((small, 0.1), (large, 0.2)):
        provider["pricing"] = {"prompt_per_million": price, "completion_per_million": 4 * price}
    job = make_task(
        [small, large],
        cascade={
            "thresholds": "thresholds.yaml",
            "top_logprobs": 50,
            "steps": [
                {"name": "small", "providers": ["smollm2"], "min_confidence": 0.99},
                {"name": "large", "providers": ["gemma3"]},
            ],
        },
    )
    assert job.task.source_path is not None
    golden = tmp_path / "golden.jsonl"
    # two reviews to calibrate on, two held back (the split is by each record's hash)
    pool = sample_reviews(40)
    rows = [r for r in pool if not held_back(r, 0.5)][:2] + [r for r in pool if held_back(r, 0.5)][
        :2
    ]
    golden.write_text(
        "".join(
            json.dumps({"input": row, "expected": {"sentiment": "mixed", "rating": 3}}) + "\n"
            for row in rows
        )
    )
    out = tmp_path / "calibration.json"
    options = ["--calibrate", "--target-within", "0.5", "--json", str(out)]
    done = subprocess.run(
        [*CLI, "eval", "--task", str(job.task.source_path), "--golden", str(golden), *options],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    cards = result["step_scorecards"]
    # both models loaded and answered through the JSON schema's grammar
    assert cards["small"]["valid_share"] > 0 and cards["large"]["valid_share"] > 0, cards
    thresholds = yaml.safe_load((tmp_path / "thresholds.yaml").read_text())
    assert thresholds["prompt_hash"] == job.prompt.hash
    assert set(thresholds["steps"]) == {"small", "large"}

    job = compile_job(load_task(job.task.source_path))  # with the thresholds written
    produce(job, reviews(3))
    summary = run_job(job.task)
    outputs = list(topic_records(job, dead_letters=False))
    dead = list(topic_records(job, dead_letters=True))
    assert len(outputs) + len(dead) == 3 and outputs
    assert job.task.cascade is not None
    active = [s.name for s in job.task.cascade.active]  # calibration may skip the small step
    threshold = job.task.cascade.active[0].min_confidence
    for output in outputs:
        mark = json.loads(output["headers"]["llm_enrich.cascade"])
        assert output["headers"]["llm_enrich.step"] == mark["step"] in active
        if mark["step"] == "small":  # the small model's log-probabilities were read
            assert threshold is not None and mark["confidence"] >= threshold
            assert mark["fields"].keys() == {"sentiment", "rating"}
        else:
            assert [step for step, _ in mark["escalated"]] == active[:-1]
    answered = sum(summary.get(f"cascade.answered.{i}.{name}") for i, name in enumerate(active))
    assert answered == len(outputs)
