"""Malformed and oversized records end as dead letters; the run completes and commits."""

from __future__ import annotations

import json
from typing import Any

from pipelines.topics import topic_records
from tests.fault_server import Reply
from tests.integration.conftest import (
    MakeTask,
    committed_offsets,
    end_offsets,
    fault_provider,
    produce,
    run_job,
    sample_reviews,
)


def test_bad_json_records_are_dead_lettered_and_the_run_goes_on(
    make_task: MakeTask, fault_server: Any
) -> None:
    server = fault_server(default=Reply.ok())
    job = make_task([fault_provider(server, "only")], input={"format": "json"})
    good = [json.dumps(r).encode() for r in sample_reviews(6)]
    row = sample_reviews(1)[0]
    bad = {
        "oversized": json.dumps({**row, "text": "x" * 1_040_000}).encode(),
        "lone surrogate key": json.dumps({**row, "\ud800": 1}).encode(),
        "deeply nested": b"[" * 100_000,
        "huge integer": b'{"review_id": ' + b"9" * 5000 + b"}",
        "not json": b"\x00\xff garbage",
        "wrong types": json.dumps({**row, "submitted_at": "yesterday"}).encode(),
    }
    produce(job, good + list(bad.values()))

    summary = run_job(job.task)

    assert summary.get("written.output") == 6
    assert summary.dead_by_stage == {"decode": len(bad)}
    assert summary.unaccounted == 0
    dead = {d["offset"]: d for d in topic_records(job, dead_letters=True)}
    assert len(dead) == len(bad)
    messages = " | ".join(d["value"]["error_message"] for d in dead.values())
    assert "over input.max_bytes" in messages
    assert "original value of" in messages  # too large to carry: coordinates kept instead
    assert "\\ud800" in messages  # the lone surrogate, escaped rather than crashing
    assert "RecursionError" in messages
    assert "submitted_at" in messages
    assert committed_offsets(job) == end_offsets(job)
