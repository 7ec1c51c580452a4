"""A slow call holds back only its own record: the records read after it are enriched,
written and committed meanwhile (no bundle waits for its slowest call)."""

from __future__ import annotations

import json
from typing import Any

from pipelines.topics import topic_records
from schemas import load_schema
from tests.conftest import SCHEMAS
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
from transforms.core.formats import framing

SLOW_S = 8.0


def test_records_read_after_a_slow_call_are_written_before_it_answers(
    make_task: MakeTask, fault_server: Any
) -> None:
    rows = sample_reviews(40)
    rows[1] = {**rows[1], "text": "SLOW: this one takes a while to answer."}

    def script(index: int, body: dict[str, Any]) -> Any:
        slow = "SLOW:" in json.dumps(body.get("messages", [])[-1:])
        return Reply.ok(delay_s=SLOW_S) if slow else Reply.ok()

    server = fault_server(script=script)
    # two in flight: a reader's slice (a bundle) is 4 records, so with a bundle barrier
    # at most the 3 others of the slow record's slice could be written before it
    job = make_task([fault_provider(server, "only", timeout_s=30)], policy={"max_in_flight": 2})
    schema = load_schema(SCHEMAS / "examples.reviews.Review.avsc")
    produce(job, [framing.encode(r, schema, "single-object") for r in rows], partition=0)

    summary = run_job(job.task)

    outputs = list(topic_records(job, dead_letters=False))
    assert summary.exit_code == 0 and len(outputs) == 40
    slow = next(o for o in outputs if o["headers"]["llm_enrich.source.offset"] == "1")
    before = [o for o in outputs if o["timestamp_ms"] < slow["timestamp_ms"]]
    assert len(before) >= 30, f"only {len(before)} of 39 records were written before the slow one"
    assert committed_offsets(job)[0] == end_offsets(job)[0] == 40
