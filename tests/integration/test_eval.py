"""``llm-enrich eval`` as a user runs it: exact scores against a scripted server, the gate's
exit codes, the baseline, bad input, and determinism against the real local model."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import EXAMPLE_TASK
from tests.fault_server import Action, FaultServer, Reply
from tests.integration.conftest import (
    CLI,
    MakeTask,
    closed_port_url,
    fault_provider,
    sample_reviews,
)

# (expected, what the scripted model answers) per golden record; None: garbage, twice
CASES: list[tuple[dict[str, Any], dict[str, Any] | None]] = [
    ({"sentiment": "positive", "rating": 5}, {"sentiment": "positive", "rating": 5}),
    ({"sentiment": "negative", "rating": 1}, {"sentiment": "negative", "rating": 3}),
    ({"sentiment": "mixed", "rating": 4}, {"sentiment": "positive", "rating": 3}),
    ({"sentiment": "neutral", "rating": 3}, None),
]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=900)


def _golden(path: Path) -> Path:
    rows = sample_reviews(len(CASES))
    lines = [json.dumps({"input": r, "expected": e}) for r, (e, _) in zip(rows, CASES, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _scripted(server: FaultServer) -> None:
    answers = {r["text"]: a for r, (_, a) in zip(sample_reviews(len(CASES)), CASES, strict=True)}

    def script(index: int, body: dict[str, Any]) -> Action:
        asked = json.dumps(body["messages"])
        for text, answer in answers.items():
            if json.dumps(text)[1:-1] in asked:
                if answer is None:
                    return Reply.text("I would rather not say.")
                if answer["rating"] == 5:
                    return Reply.fenced(answer)  # repaired: the fence is taken off
                return Reply.ok(answer)
        return Reply.status(500, "unknown record")

    server.set_script(script)


def test_exact_scores_gate_and_baseline(
    make_task: MakeTask, fault_server: Any, tmp_path: Path
) -> None:
    server = fault_server()
    _scripted(server)
    job = make_task(
        [fault_provider(server, "scripted")],
        eval={"min_scores": {"sentiment": 0.5, "overall": 0.6}, "tolerance": {"rating": 1}},
    )
    task, golden = str(job.task.source_path), str(_golden(tmp_path / "golden.jsonl"))
    out, html = tmp_path / "eval.json", tmp_path / "eval.html"

    done = _cli(
        "eval", "--task", task, "--golden", golden, "--json", str(out), "--report", str(html)
    )

    assert done.returncode == 1, done.stderr  # overall 0.5 < 0.6
    assert "gate: MISSED overall 0.500 < 0.600" in done.stdout
    card = json.loads(out.read_text())["providers"]["scripted"]
    assert card["fields"] == {
        "sentiment": {"kind": "exact", "score": 0.5},  # 1, 1, 0, 0 (no answer)
        "rating": {"kind": "integer", "score": 0.5, "abs_error": 1.0},  # 1, 0 (off by 2), 1, 0
    }
    assert card["overall"] == 0.5
    assert (card["valid_share"], card["repaired_share"], card["reask_share"]) == (0.75, 0.25, 0.25)
    assert card["failed_by_stage"] == {"validate": 1}
    assert card["gate"] == {"passed": False, "missed": ["overall 0.500 < 0.600"]}
    assert server.stats.requests == 5  # one each, and a re-ask for the garbage answer
    assert html.read_text().count('class="mark"') >= 5

    again = _cli(
        "eval",
        "--task",
        task,
        "--golden",
        golden,
        "--baseline",
        str(out),
        "--json",
        str(tmp_path / "again.json"),
    )
    assert again.returncode == 1
    assert "[same +0.000 vs 0.500]" in again.stdout
    compared = json.loads((tmp_path / "again.json").read_text())["baseline"]["scripted"]
    assert {v["verdict"] for v in compared.values()} == {"same"}


def test_bad_input_is_one_line_and_exit_2_or_3(
    make_task: MakeTask, fault_server: Any, tmp_path: Path
) -> None:
    server = fault_server()
    _scripted(server)
    job = make_task([fault_provider(server, "scripted")])
    task, golden = str(job.task.source_path), _golden(tmp_path / "golden.jsonl")

    unknown = _cli("eval", "--task", task, "--golden", str(golden), "--provider", "nope")
    assert unknown.returncode == 2
    assert (
        unknown.stderr
        == "llm-enrich: error: no provider 'nope' in the task (providers: scripted)\n"
    )

    broken = tmp_path / "broken.jsonl"
    lines = golden.read_text().splitlines()
    broken.write_text("\n".join([lines[0], lines[1][:-5], lines[2]]) + "\n")
    bad = _cli("eval", "--task", task, "--golden", str(broken))
    assert bad.returncode == 2 and bad.stderr.startswith(
        f"llm-enrich: error: {broken}:2: not valid JSON"
    )
    assert len(bad.stderr.splitlines()) == 1

    lacking = tmp_path / "lacking.jsonl"
    row = json.loads(lines[0])
    del row["expected"]["rating"]
    lacking.write_text(json.dumps(row) + "\n")
    missing = _cli("eval", "--task", task, "--golden", str(lacking))
    assert missing.returncode == 2 and "lacks the generated field(s) rating" in missing.stderr

    baseline = tmp_path / "old.json"
    baseline.write_text("[]")
    wrong = _cli("eval", "--task", task, "--golden", str(golden), "--baseline", str(baseline))
    assert wrong.returncode == 2 and "not an llm-enrich eval result" in wrong.stderr
    assert server.stats.requests == 0  # nothing was asked before the input was checked

    down = make_task(
        [{"name": "down", "base_url": closed_port_url(), "model": "x", "timeout_s": 5}]
    )
    unreachable = _cli("eval", "--task", str(down.task.source_path), "--golden", str(golden))
    assert unreachable.returncode == 3, unreachable.stderr
    assert unreachable.stderr.startswith(
        "llm-enrich: error: provider 'down' answered none of the 4"
    )


def test_local_model_is_deterministic(llm_server: None, tmp_path: Path) -> None:
    """Temperature 0 and a seed on the real model: two runs give the same answers and scores
    (the example task's golden set, a small subset)."""
    golden = EXAMPLE_TASK.parent / "golden.jsonl"
    results = []
    for run in ("first", "second"):
        out = tmp_path / f"{run}.json"
        done = _cli(
            "eval",
            "--task",
            str(EXAMPLE_TASK),
            "--golden",
            str(golden),
            "--provider",
            "local-smollm2",
            "--limit",
            "3",
            "--json",
            str(out),
        )
        assert done.returncode == 0, done.stdout + done.stderr
        results.append(json.loads(out.read_text())["providers"]["local-smollm2"])
    first, second = results
    assert first["records"] == 3 and first["valid_share"] > 0  # the model did answer
    for key in ("fields", "overall", "valid_share", "repaired_share", "reask_share"):
        assert first[key] == second[key], key
    assert [r["answer"] for r in first["results"]] == [r["answer"] for r in second["results"]]


def test_example_job_passes_its_gate_and_its_report_renders(
    llm_server: None, tmp_path: Path
) -> None:
    """CI's eval of the example job on the local model: a subset of the shipped golden set,
    the task's (low) gate, and the HTML report drawn by a real headless Chromium."""
    from tests.browser import measure

    golden, report = EXAMPLE_TASK.parent / "golden.jsonl", tmp_path / "eval.html"
    assert sum(1 for line in golden.read_text().splitlines() if line.strip()) >= 50
    done = _cli(
        "eval",
        "--task",
        str(EXAMPLE_TASK),
        "--golden",
        str(golden),
        "--provider",
        "local-smollm2",
        "--limit",
        "12",
        "--report",
        str(report),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "eval of 12 golden records" in done.stdout and "gate: passed" in done.stdout
    charts = {c["label"]: c for c in measure(report, tmp_path)}
    assert charts["scores per field per provider"]["marks"] >= 1
    assert charts["records per latency bin"]["marks"] >= 1
