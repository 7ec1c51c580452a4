"""Batch mode against the real broker and the local Files + Batches server
(``tests/batch_server.py``), driven by the real ``openai`` SDK: one batch for a drain,
invalid and expired items falling back to a synchronous provider (the fault server), and a
restart while a batch is pending that resumes polling the same batch."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipelines.topics import topic_records
from tests.batch_server import BatchServer, Item
from tests.fault_server import FaultServer, Reply
from tests.integration.conftest import (
    CLI,
    MakeTask,
    committed_offsets,
    end_offsets,
    fault_provider,
    produce,
    reviews,
    run_job,
    servers_on_demand,
)
from transforms.core.job import Job

COUNT = 12


@pytest.fixture
def batch_server() -> Iterator[Callable[..., BatchServer]]:
    yield from servers_on_demand(BatchServer)


def batch_provider(server: BatchServer, state: Path, **batch: Any) -> dict[str, Any]:
    return {
        "name": "cheap",
        "mode": "batch",
        "base_url": server.base_url,
        "model": "batch-model",
        "timeout_s": 10,
        "pricing": {"prompt_per_million": 1.0, "completion_per_million": 2.0},
        "batch": {
            "max_records": COUNT,
            "max_wait_s": 3,
            "poll_interval_s": 0.5,
            "state_path": str(state),
            **batch,
        },
    }


def _outputs(job: Job) -> list[dict[str, Any]]:
    return list(topic_records(job, dead_letters=False))


def _pending_rows(state: Path) -> int:
    with sqlite3.connect(state) as db:
        return int(db.execute("SELECT COUNT(*) FROM pending").fetchone()[0])


def test_a_drain_through_a_batch_provider_submits_one_batch_and_commits(
    make_task: MakeTask, batch_server: Callable[..., BatchServer], tmp_path: Path
) -> None:
    server = batch_server(delay_s=1.0)
    state = tmp_path / "pending.sqlite"
    job = make_task([batch_provider(server, state)], policy={"max_in_flight": 32})
    produce(job, reviews(COUNT))

    started = time.monotonic()
    summary = run_job(job.task)
    took = time.monotonic() - started

    outputs = _outputs(job)
    assert summary.exit_code == 0, summary.lines()
    assert len(outputs) == COUNT and not list(topic_records(job, dead_letters=True))
    assert {o["headers"]["llm_enrich.provider"] for o in outputs} == {"cheap"}
    assert server.stats.batches_created == 1 and server.stats.requests == COUNT
    assert server.stats.files_uploaded == 1 and server.stats.downloads == 1
    assert committed_offsets(job) == end_offsets(job)
    assert summary.get("batches_submitted") == 1 and summary.get("batch_answers") == COUNT
    assert summary.get("cost_micro_usd") > 0  # at the batch price
    assert _pending_rows(state) == 0  # settled: forgotten
    print(f"batch drain: {COUNT} records in 1 batch, {took:.1f}s; {summary.lines()[-3:]}")


def test_invalid_and_expired_batch_items_fall_back_to_the_sync_provider(
    make_task: MakeTask,
    batch_server: Callable[..., BatchServer],
    fault_server: Callable[..., FaultServer],
    tmp_path: Path,
) -> None:
    decided: dict[str, str] = {}

    def script(custom_id: str, body: dict[str, Any]) -> Item:
        index = len(decided)
        kind = decided.setdefault(custom_id, ["ok", "invalid", "expire", "fail"][index % 4])
        if kind == "invalid":
            return Item.ok(json.dumps({"sentiment": "thrilled", "rating": 11}))
        return {"ok": Item.ok(), "expire": Item.expire(), "fail": Item.fail(500)}[kind]

    server = batch_server(delay_s=0.5, script=script)
    sync = fault_server(default=Reply.ok())
    state = tmp_path / "pending.sqlite"
    job = make_task(
        [batch_provider(server, state), fault_provider(sync, "sync")],
        policy={"max_in_flight": 32},
    )
    produce(job, reviews(COUNT))

    summary = run_job(job.task)

    outputs = _outputs(job)
    assert summary.exit_code == 0, summary.lines()
    assert len(outputs) == COUNT and not list(topic_records(job, dead_letters=True))
    by_provider = [o["headers"]["llm_enrich.provider"] for o in outputs]
    assert by_provider.count("cheap") == COUNT // 4
    assert by_provider.count("sync") == COUNT - COUNT // 4
    assert server.stats.batches_created == 1  # re-asks and fallbacks never make a batch
    bodies = sync.stats.bodies
    assert len(bodies) == COUNT - COUNT // 4
    reasks = [b for b in bodies if "thrilled" in json.dumps(b["messages"])]
    assert len(reasks) == COUNT // 4  # the invalid answers, quoted back to the sync provider
    assert summary.get("batch_failed") == COUNT // 2  # expired and failed items
    assert _pending_rows(state) == 0


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "kill-9"])
def test_a_restart_while_a_batch_is_pending_resumes_the_same_batch(
    make_task: MakeTask,
    batch_server: Callable[..., BatchServer],
    tmp_path: Path,
    stop: signal.Signals,
) -> None:
    server = batch_server(delay_s=3600.0)  # pending until the test ends it
    state = tmp_path / "pending.sqlite"
    # one group of COUNT records is the norm; a slow machine may still send two batches
    job = make_task([batch_provider(server, state, max_wait_s=30)], policy={"max_in_flight": 32})
    produce(job, reviews(COUNT))
    assert job.task.source_path is not None

    first = subprocess.Popen(
        [*CLI, "run", "--task", str(job.task.source_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while server.stats.batches_created == 0 or server.stats.retrieves == 0:
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "run 1 submitted no batch"
            time.sleep(0.2)
        if stop == signal.SIGKILL:
            os.killpg(first.pid, signal.SIGKILL)
        else:
            first.send_signal(signal.SIGINT)
        stdout, stderr = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    if stop == signal.SIGINT:
        assert first.returncode == 0, stderr
        assert f"abandoned on stop   {COUNT}" in stdout, stdout
    assert not _outputs(job)
    assert all(not offset for offset in committed_offsets(job).values())
    assert _pending_rows(state) == COUNT  # the batch id survived the stop
    batch_ids = list(server.stats.batch_ids)
    assert batch_ids

    server.delay_s = 0.0
    for batch_id in batch_ids:
        server.finish(batch_id)
    summary = run_job(job.task)

    assert summary.exit_code == 0, summary.lines()
    assert server.stats.batch_ids == batch_ids  # run 2 created none: it resumed them
    assert summary.get("batches_resumed") == len(batch_ids)
    assert summary.get("batches_submitted") == 0
    assert len(_outputs(job)) == COUNT
    assert committed_offsets(job) == end_offsets(job)
    assert _pending_rows(state) == 0
