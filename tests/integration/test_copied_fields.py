"""Copied fields of every Avro kind go from input to output unchanged, through the broker."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from pipelines.topics import topic_records
from schemas import load_schema
from tests.fault_server import FaultServer, Reply
from tests.integration.conftest import (
    TEST_SCHEMAS,
    MakeTask,
    fault_provider,
    produce,
    run_job,
)
from transforms.core.formats import framing

EVENT = TEST_SCHEMAS / "tests.kinds.Event.avsc"
ENRICHED = TEST_SCHEMAS / "tests.kinds.EnrichedEvent.avsc"


def _event(index: int) -> dict[str, Any]:
    return {
        "id": f"e{index}",
        "text": "Works great." if index % 2 else "Broke at once.",
        "created_at": dt.datetime(2026, 11, 27, 10, index, tzinfo=dt.UTC),
        "seen_at": dt.datetime(2026, 11, 27, 10, 0, 0, 123456 + index, tzinfo=dt.UTC),
        "day": dt.date(2026, 1, 1 + index),
        "at": dt.time(9, 30, index),
        "price": Decimal("1234567.89") + index,
        "uid": uuid.UUID(int=index + 1),
        "channel": "APP" if index % 2 else "WEB",
        "digest": bytes([index, 1, 2, 3]),
        "maybe": None if index % 3 == 0 else (2**62 + index if index % 3 == 1 else "x"),
        "author": {"name": f"a{index}", "karma": -index},
        "tags": [f"t{index}", "common"],
        "scores": {"q": index / 3, "r": 1e300},
        "count": 2**31 - 1 - index,
    }


def test_copied_fields_of_every_kind_round_trip(
    make_task: MakeTask, fault_server: Callable[..., FaultServer]
) -> None:
    server = fault_server(default=Reply.ok())
    job = make_task(
        [fault_provider(server, "p")],
        input={"schema": str(EVENT)},
        output={"schema": str(ENRICHED)},
    )
    events = [_event(i) for i in range(12)]
    schema = load_schema(EVENT)
    produce(job, [framing.encode(e, schema, "single-object") for e in events])

    summary = run_job(job.task)

    assert summary.exit_code == 0
    assert summary.get("written.output") == 12 and summary.dead_by_stage == {}
    outputs = {r["value"]["id"]: r["value"] for r in topic_records(job, dead_letters=False)}
    assert len(outputs) == 12
    for event in events:
        output = outputs[event["id"]]
        for name, value in event.items():
            if name != "text":  # not in the output schema
                assert output[name] == value, name
        assert output["sentiment"] in {"positive", "negative", "neutral", "mixed"}
