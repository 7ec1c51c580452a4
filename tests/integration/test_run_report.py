"""``run --report`` on a real drain (real broker, scripted server), rendered in a real
headless Chromium: the charts are drawn, with the numbers of this run only."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from PIL import Image

from tests.browser import measure, screenshot
from tests.fault_server import Action, Reply
from tests.integration.conftest import (
    CLI,
    MakeTask,
    fault_provider,
    produce,
    reviews,
    sample_reviews,
)

RECORDS = 20


def _script(texts: list[str]) -> Any:
    """Every fifth record gets garbage twice (a dead letter, stage validate); every fifth
    but one a fenced answer (repaired); the rest a valid answer."""

    def script(index: int, body: dict[str, Any]) -> Action:
        asked = json.dumps(body["messages"])
        number = next(i for i, t in enumerate(texts) if json.dumps(t)[1:-1] in asked)
        if number % 5 == 0:
            return Reply.text("no idea", delay_s=0.05)
        if number % 5 == 1:
            return Reply.fenced({"sentiment": "mixed", "rating": 3}, delay_s=0.3)
        return Reply.ok(delay_s=0.05)

    return script


def test_run_report_draws_this_runs_charts(
    make_task: MakeTask, fault_server: Any, tmp_path: Path
) -> None:
    texts = [r["text"] for r in sample_reviews(RECORDS)]
    assert len(set(texts)) == RECORDS
    server = fault_server(script=_script(texts))
    job = make_task([fault_provider(server, "scripted")])
    task = str(job.task.source_path)
    produce(job, reviews(RECORDS))
    first = subprocess.run([*CLI, "run", "--task", task], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    produce(job, reviews(RECORDS)[:5])  # the second run reads only these
    report = tmp_path / "report.html"

    done = subprocess.run(
        [*CLI, "run", "--task", task, "--report", str(report)], capture_output=True, text=True
    )

    assert done.returncode == 0, done.stderr
    assert f"report: {report}" in done.stdout
    page = report.read_text()
    assert "<script" not in page and "http://127" not in page  # no script, no provider URL
    assert "4 outputs and 1 dead letters read back" in page  # this run's, not the first's
    assert "enriched: 4</title>" in page and "dead letter: validate: 1</title>" in page
    assert "fence" in page  # repairs by kind
    assert "validate: OutputInvalid: 1</title>" in page

    charts = {c["label"]: c for c in measure(report, tmp_path)}
    for label, marks in {
        "records written over time": 1,
        "outcomes by stage": 2,
        "latency of scripted": 1,
        "calls per provider": 1,  # all answered (garbage is an answer)
        "repairs by kind": 1,
        "dead letters by error": 1,
    }.items():
        chart = charts[label]
        assert chart["width"] > 0 and chart["height"] > 0, label
        assert chart["marks"] >= marks, (label, chart)

    png = screenshot(report, tmp_path / "report.png", tmp_path)
    colors = Image.open(png).convert("RGB").getcolors(maxcolors=1 << 20) or []
    blue = sum(count for count, rgb in colors if rgb == (0x3B, 0x6F, 0xB6))
    assert blue > 500  # the bars were painted, not only laid out
