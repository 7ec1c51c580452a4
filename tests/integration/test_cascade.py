"""The cascade against scripted OpenAI-compatible servers whose answers and log-probabilities
the test chooses: ``eval --calibrate`` (the CLI), then a run with the thresholds it wrote.
Every expected figure (the split, the confidences, the chosen threshold, shares, scores,
costs) is computed here from the script, not by the code under test."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.topics import topic_records
from schemas import load_schema
from tests.conftest import SCHEMAS
from tests.fault_server import FaultServer, Ok, Reply
from tests.integration.conftest import CLI, MakeTask, fault_provider, produce, run_job
from transforms.core.config.task import load_task
from transforms.core.formats import framing
from transforms.core.job import compile_job

COUNT = 12
# the small model's confidence in record i (the same for both fields) and whether it is right
P = [0.99, 0.97, 0.95, 0.93, 0.91, 0.89, 0.87, 0.85, 0.83, 0.81, 0.79, 0.77]
RIGHT = [True, True, True, False, True, True, False, True, False, False, True, False]
SMALL_PRICE, LARGE_PRICE = 1.0, 10.0  # $ per million tokens, prompt and completion alike
PROMPT_TOKENS, PIECES = 100, 5  # every answer: 100 prompt tokens, 5 completion tokens
SMALL_COST = (PROMPT_TOKENS + PIECES) * SMALL_PRICE / 1e6
LARGE_COST = (PROMPT_TOKENS + PIECES) * LARGE_PRICE / 1e6
WITHIN, HOLDOUT = 0.25, 0.5


def review(i: int) -> dict[str, Any]:
    return {
        "review_id": f"r{i}",
        "product": "Lamp",
        "text": f"review number {i}: bright and sturdy",
        "submitted_at": 1767276083000 + i,
    }


def record_of(body: dict[str, Any]) -> int:
    found = re.search(r"review number (\d+)", body["messages"][-1]["content"])
    assert found, body["messages"][-1]
    return int(found.group(1))


def small_script(index: int, body: dict[str, Any]) -> Ok:
    i = record_of(body)
    p = P[i]
    sentiment, other = ('"positive"', '"negative"') if RIGHT[i] else ('"negative"', '"positive"')
    rating, other_rating = ("5", "4") if RIGHT[i] else ("1", "2")
    return Reply.tokens(
        [
            '{"sentiment": ',
            (sentiment, p, {other: 1 - p}),
            ', "rating": ',
            (rating, p, {other_rating: 1 - p}),
            "}",
        ],
        prompt_tokens=PROMPT_TOKENS,
    )


def large_script(index: int, body: dict[str, Any]) -> Ok:
    return Reply.tokens(
        ['{"sentiment": ', '"positive"', ', "rating": ', "5", "}"], prompt_tokens=PROMPT_TOKENS
    )


def held_back(i: int) -> bool:
    text = json.dumps(review(i), sort_keys=True, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64 < HOLDOUT


def play(ids: list[int], threshold: float | None) -> tuple[int, float, float]:
    """(answered by small, overall, cost per record) for these records, by hand."""
    small = [i for i in ids if threshold is not None and P[i] >= threshold]
    overall = (sum(1.0 for i in small if RIGHT[i]) + len(ids) - len(small)) / len(ids)
    cost = (len(ids) * SMALL_COST if threshold is not None else 0.0) + (
        len(ids) - len(small)
    ) * LARGE_COST
    return len(small), overall, cost / len(ids)


def best_threshold(ids: list[int]) -> float | None:
    """The cheapest threshold keeping the overall within WITHIN of the large model's (1.0
    on every record); on equal cost the better score, then the higher threshold."""
    options: list[float | None] = [None, 0.0, *(P[i] for i in ids)]
    feasible = [t for t in options if play(ids, t)[1] >= 1.0 - WITHIN - 1e-9]

    def key(t: float | None) -> tuple[float, float, float]:
        _, overall, cost = play(ids, t)
        return (round(cost, 12), -overall, -(2.0 if t is None else t))

    return min(feasible, key=key)


@pytest.fixture
def servers(fault_server: Callable[..., FaultServer]) -> tuple[FaultServer, FaultServer]:
    return fault_server(script=small_script), fault_server(script=large_script)


def cascade_task(make_task: MakeTask, small: FaultServer, large: FaultServer) -> Any:
    providers = [
        fault_provider(small, "small-1", pricing=_price(SMALL_PRICE)),
        fault_provider(large, "large-1", pricing=_price(LARGE_PRICE)),
    ]
    cascade = {
        "thresholds": "thresholds.yaml",
        "steps": [
            {"name": "small", "providers": ["small-1"], "min_confidence": 0.5},
            {"name": "large", "providers": ["large-1"]},
        ],
    }
    return make_task(providers, cascade=cascade)


def _price(usd: float) -> dict[str, float]:
    return {"prompt_per_million": usd, "completion_per_million": usd}


def test_calibration_chooses_the_cheapest_threshold_within_the_target_and_a_run_uses_it(
    make_task: MakeTask, servers: tuple[FaultServer, FaultServer], tmp_path: Path
) -> None:
    small, large = servers
    job = cascade_task(make_task, small, large)
    task_path = job.task.source_path
    golden = tmp_path / "golden.jsonl"
    golden.write_text(
        "".join(
            json.dumps({"input": review(i), "expected": {"sentiment": "positive", "rating": 5}})
            + "\n"
            for i in range(COUNT)
        )
    )
    out = tmp_path / "calibration.json"
    options = ["--target-within", str(WITHIN), "--holdout", str(HOLDOUT), "--json", str(out)]
    done = subprocess.run(
        [*CLI, "eval", "--task", str(task_path), "--golden", str(golden), "--calibrate", *options],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())

    kept = [i for i in range(COUNT) if held_back(i)]
    calibration = [i for i in range(COUNT) if not held_back(i)]
    assert result["split"]["held_back"] == len(kept) and kept and calibration
    # the small server was asked for log-probabilities, the large one not
    assert all(b.get("logprobs") is True and b["top_logprobs"] == 20 for b in small.stats.bodies)
    assert not any("logprobs" in b for b in large.stats.bodies)

    chosen = best_threshold(calibration)
    entry = result["steps"]["small"]
    if chosen is None:
        assert entry.get("skip") is True
    else:
        assert entry["min_confidence"] == pytest.approx(chosen, abs=1e-6)
    for part, ids in (("calibration_part", calibration), ("held_back_part", kept)):
        rows = result[part]["rows"]
        answered, overall, cost = play(ids, chosen)
        assert rows["cascade"]["answered"] == {"small": answered, "large": len(ids) - answered}
        assert rows["cascade"]["overall"] == pytest.approx(overall, abs=1e-4)
        assert rows["cascade"]["cost_per_record_usd"] == pytest.approx(cost, rel=1e-6)
        assert rows["strongest alone"]["overall"] == pytest.approx(1.0)
        assert rows["strongest alone"]["cost_per_record_usd"] == pytest.approx(LARGE_COST)
        right = sum(RIGHT[i] for i in ids) / len(ids)
        assert rows["small alone"]["overall"] == pytest.approx(right, abs=1e-4)
    assert "held-back part" in done.stdout and "thresholds:" in done.stdout
    for row in result["records"]:  # per record: the split and what each step did
        i = row["line"] - 1
        assert row["held_back"] == held_back(i)
        assert row["steps"]["small"]["confidence"] == pytest.approx(P[i], abs=1e-6)
        assert row["steps"]["small"]["score"] == (1.0 if RIGHT[i] else 0.0)
        assert row["steps"]["large"] == {
            "valid": True,
            "confidence": None,
            "score": 1.0,
            "cost_usd": pytest.approx(LARGE_COST),
        }

    # the run reads the thresholds file the calibration wrote
    job = compile_job(load_task(task_path))
    assert job.task.cascade.steps[0].min_confidence == entry.get("min_confidence")
    schema = load_schema(SCHEMAS / "examples.reviews.Review.avsc")
    produce(job, [framing.encode(review(i), schema, "single-object") for i in range(COUNT)])
    summary = run_job(job.task)

    outputs = list(topic_records(job, dead_letters=False))
    assert len(outputs) == COUNT
    expected_small = {f"r{i}" for i in range(COUNT) if chosen is not None and P[i] >= chosen}
    for output in outputs:
        headers, review_id = output["headers"], output["value"]["review_id"]
        step = "small" if review_id in expected_small else "large"
        assert headers["llm_enrich.step"] == step, review_id
        mark = json.loads(headers["llm_enrich.cascade"])
        if step == "small":
            assert mark["confidence"] == pytest.approx(P[int(review_id[1:])], abs=1e-6)
        else:
            assert mark["escalated"] == [["small", "low_confidence"]]
    answered_small = len(expected_small)
    assert summary.get("cascade.answered.0.small") == answered_small
    assert summary.get("cascade.answered.1.large") == COUNT - answered_small
    spent = COUNT * SMALL_COST + (COUNT - answered_small) * LARGE_COST
    assert summary.get("cascade.cost_micro_usd") == pytest.approx(spent * 1e6, abs=COUNT)
    all_large = COUNT * LARGE_COST  # the same tokens at the large step's prices
    assert summary.get("cascade.all_strong_micro_usd") == pytest.approx(all_large * 1e6, abs=COUNT)
    line = next(line for line in summary.lines() if line.startswith("cascade"))
    share = answered_small / COUNT
    assert f"small {answered_small} ({share:.1%})" in line


def test_calibrating_a_task_without_a_cascade_is_one_line(
    make_task: MakeTask, servers: tuple[FaultServer, FaultServer], tmp_path: Path
) -> None:
    job = make_task([fault_provider(servers[0], "only")])
    golden = tmp_path / "golden.jsonl"
    golden.write_text(
        json.dumps({"input": review(0), "expected": {"sentiment": "positive", "rating": 5}}) + "\n"
    )
    done = subprocess.run(
        [*CLI, "eval", "--task", str(job.task.source_path), "--golden", str(golden), "--calibrate"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert (
        done.stderr == "llm-enrich: error: the task has no cascade section: nothing to calibrate\n"
    )
    assert yaml.safe_load(Path(job.task.source_path).read_text()).get("cascade") is None


def test_a_split_that_leaves_nothing_to_calibrate_on_is_said_before_asking(
    make_task: MakeTask, servers: tuple[FaultServer, FaultServer], tmp_path: Path
) -> None:
    small, large = servers
    job = cascade_task(make_task, small, large)
    golden = tmp_path / "golden.jsonl"
    ids = [i for i in range(COUNT) if held_back(i)]  # HOLDOUT: only records held back
    golden.write_text(
        "".join(
            json.dumps({"input": review(i), "expected": {"sentiment": "positive", "rating": 5}})
            + "\n"
            for i in ids
        )
    )
    task = str(job.task.source_path)
    done = subprocess.run(
        [*CLI, "eval", "--task", task, "--golden", str(golden), "--calibrate", "--holdout", "0.5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "no record falls in the calibration part with --holdout 0.5" in done.stderr
    assert small.stats.requests == 0 and large.stats.requests == 0
    assert not (tmp_path / "thresholds.yaml").exists()
