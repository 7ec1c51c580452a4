"""``llm-enrich export`` after a real run (files accepted by the openai SDK's upload to a
local Files server; filters; other prompt versions skipped), and the progress line of
``llm-enrich run`` through a pseudo-terminal and through a pipe."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
from pathlib import Path
from typing import Any

import openai
import yaml

from tests.fault_server import Reply
from tests.files_server import FilesServer
from tests.integration.conftest import CLI, MakeTask, fault_provider, produce, reviews, run_job

COUNT = 12


def _export(task: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "export", "--task", str(task), "--out", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_export_after_a_run(make_task: MakeTask, fault_server: Any, tmp_path: Path) -> None:
    # every third answer in a markdown fence: repaired (llm_enrich.repairs)
    fenced = Reply.fenced({"sentiment": "positive", "rating": 4})
    server = fault_server(script=lambda i, body: fenced if i % 3 == 0 else Reply.ok())
    job = make_task([fault_provider(server, "main")])
    produce(job, reviews(COUNT))
    assert run_job(job.task).get("written.output") == COUNT
    task = job.task.source_path
    assert task is not None
    out = tmp_path / "train.jsonl"

    done = _export(task, out, "--validation-share", "0.3")

    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "train.jsonl.manifest.json").read_text())
    counts = manifest["counts"]
    # the sample reviews repeat: duplicates of a rendered record are dropped
    assert (
        counts.get("train", 0) + counts.get("validation", 0) + counts.get("duplicate", 0) == COUNT
    )
    assert counts.get("validation", 0) > 0 and manifest["prompt_hash"] == job.prompt.hash
    held_out = tmp_path / "train.validation.jsonl"
    with FilesServer() as files:
        client = openai.OpenAI(base_url=files.base_url, api_key="test", max_retries=0)
        for path in (out, held_out):
            created = client.files.create(file=path.open("rb"), purpose="fine-tune")
            assert created.purpose == "fine-tune"
        assert len(files.uploads) == 2
    line = json.loads(out.read_text().splitlines()[0])
    assert [m["role"] for m in line["messages"]] == ["system", "user", "assistant"]

    clean = _export(task, tmp_path / "clean.jsonl", "--clean-only", "--format", "golden")
    assert clean.returncode == 0, clean.stderr
    cleaned = json.loads((tmp_path / "clean.jsonl.manifest.json").read_text())["counts"]
    assert cleaned["repaired"] == COUNT // 3
    golden = json.loads((tmp_path / "clean.jsonl").read_text().splitlines()[0])
    assert set(golden) == {"input", "expected"} and "text" in golden["input"]

    other = _export(task, tmp_path / "none.jsonl", "--provider", "nobody")
    assert other.returncode == 1 and "provider=12" in other.stdout

    raw = yaml.safe_load(task.read_text())
    raw["prompt"]["system"] += " Be brief."
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(raw))
    stale = _export(changed, tmp_path / "stale.jsonl")
    assert stale.returncode == 1 and f"other_prompt={COUNT}" in stale.stdout


def _run_cli(task: Path, *extra: str, terminal: bool) -> tuple[int, str]:
    command = [*CLI, "run", "--task", str(task), *extra]
    if not terminal:
        done = subprocess.run(command, capture_output=True, text=True, timeout=240)
        return done.returncode, done.stderr
    leader, follower = pty.openpty()
    process = subprocess.Popen(command, stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    chunks, deadline = [], time.monotonic() + 240
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 1)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the terminal closed: the run ended
                break
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    os.close(leader)
    return process.wait(30), b"".join(chunks).decode(errors="replace")


def test_progress_line_on_a_terminal_and_off_it(make_task: MakeTask, fault_server: Any) -> None:
    server = fault_server(default=Reply.ok(delay_s=0.4))
    job = make_task([fault_provider(server, "main")], policy={"max_in_flight": 2})
    produce(job, reviews(COUNT))
    task = job.task.source_path
    assert task is not None

    code, screen = _run_cli(task, terminal=True)

    assert code == 0, screen
    assert "\x1b[" in screen  # drawn by rich: cursor and colour control sequences
    assert f"read {COUNT}" in screen and f"enriched {COUNT}" in screen
    assert "rec/s" in screen and "llm-enrich: progress:" not in screen

    produce(job, reviews(COUNT))
    code, stderr = _run_cli(task, "--progress-every", "0.5", terminal=False)

    assert code == 0, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("llm-enrich: progress:")]
    assert lines and "\x1b[" not in stderr
    assert any("%" in line and "enriched" in line for line in lines)


def test_the_progress_counts_each_write_as_it_is_acknowledged(
    make_task: MakeTask, fault_server: Any
) -> None:
    # every record fits in the reader's first slice, so one bundle holds them all: the
    # line must still move as each answer is written, not jump to the total at the end
    server = fault_server(default=Reply.ok(delay_s=0.5))
    job = make_task([fault_provider(server, "slow")], policy={"max_in_flight": 2})
    produce(job, reviews(COUNT))
    task = job.task.source_path
    assert task is not None
    code, stderr = _run_cli(task, "--progress-every", "0.5", terminal=False)
    assert code == 0, stderr
    enriched = [
        int(line.split("enriched ")[1].split()[0])
        for line in stderr.splitlines()
        if line.startswith("llm-enrich: progress:")
    ]
    assert enriched == sorted(enriched), enriched
    between = [n for n in enriched if 0 < n < COUNT]
    assert len(set(between)) >= 3, enriched  # seen moving, not 0 then 12
    rates = [
        line for line in stderr.splitlines() if "progress:" in line and "enriched 0" not in line
    ]
    assert all(" 0.0 rec/s" not in line for line in rates), rates
