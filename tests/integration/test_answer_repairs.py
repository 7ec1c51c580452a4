"""Schema-aligned repair and partial acceptance over the real broker, with a scripted
provider: a repaired answer and a defaulted field reach the output topic with their
headers; an ambiguous answer is re-asked, then dead-lettered."""

from __future__ import annotations

import json
from typing import Any

from pipelines.topics import topic_records
from schemas import load_schema
from tests.conftest import SCHEMAS
from tests.fault_server import Reply
from tests.integration.conftest import (
    TEST_SCHEMAS,
    MakeTask,
    committed_offsets,
    end_offsets,
    fault_provider,
    produce,
    run_job,
)
from transforms.core.formats import framing

# What the scripted model answers to a review, chosen by a marker in the review's text.
ANSWERS = {
    "MARK-REPAIR": 'Sure!\n```json\n{"Sentiment": "Positive", "rating": "4", "note": "ok"}\n```',
    "MARK-DEFAULT": '{"sentiment": "negative", "rating": 2, "language": {"code": "en"}}',
    "MARK-AMBIGUOUS": '{"sentiment": "positive or mixed", "rating": 3}',
}


def _script(index: int, body: dict[str, Any]) -> Any:
    conversation = json.dumps(body["messages"])
    for marker, answer in ANSWERS.items():
        if marker in conversation:
            return Reply.text(answer)
    return Reply.status(500, "no marker in the prompt")


def _reviews() -> list[bytes]:
    schema = load_schema(SCHEMAS / "examples.reviews.Review.avsc")
    return [
        framing.encode(
            {
                "review_id": marker,
                "product": "Lamp",
                "text": f"{marker}: it is a lamp.",
                "submitted_at": 1767276083108,
            },
            schema,
            "single-object",
        )
        for marker in ANSWERS
    ]


def test_repaired_defaulted_and_ambiguous_answers(make_task: MakeTask, fault_server: Any) -> None:
    server = fault_server(script=_script)
    job = make_task(
        [fault_provider(server, "scripted")],
        output={
            "schema": str(TEST_SCHEMAS / "tests.ReviewVerdictLang.avsc"),
            "on_invalid": {"language": "null"},
        },
        policy={"attempts_per_provider": 1, "max_reasks": 1},
    )
    produce(job, _reviews())

    summary = run_job(job.task)

    outputs = {o["value"]["review_id"]: o for o in topic_records(job, dead_letters=False)}
    dead = [d["value"] for d in topic_records(job, dead_letters=True)]
    assert sorted(outputs) == ["MARK-DEFAULT", "MARK-REPAIR"]
    repaired = outputs["MARK-REPAIR"]
    assert repaired["value"] == {
        "review_id": "MARK-REPAIR",
        "sentiment": "positive",
        "rating": 4,
        "language": None,
    }
    assert repaired["headers"]["llm_enrich.repairs"].split(",") == [
        "strip_code_fence",
        "drop_unknown_field@$.note",
        "field_name@$.sentiment",
        "enum_case@$.sentiment",
        "numeric_string@$.rating",
        "default_for_missing@$.language",
    ]
    assert "llm_enrich.defaulted" not in repaired["headers"]
    defaulted = outputs["MARK-DEFAULT"]
    assert defaulted["value"]["language"] is None and defaulted["value"]["rating"] == 2
    assert defaulted["headers"]["llm_enrich.defaulted"] == "language"

    assert len(dead) == 1 and dead[0]["stage"] == "validate"
    assert dead[0]["original"]["value"] == _reviews()[2]
    assert dead[0]["last_raw_output"] == ANSWERS["MARK-AMBIGUOUS"]
    assert [e["path"] for e in dead[0]["validation_errors"]] == ["$.sentiment"]
    # one call each, and one re-ask for the ambiguous answer (max_reasks: 1)
    assert server.stats.requests == 4 and summary.get("llm_reasks") == 1

    assert summary.get("written.output") == 2 and summary.get("written.dead_letter") == 1
    assert summary.get("repair.enum_case") == 1 and summary.get("repair.field_name") == 1
    assert summary.get("defaulted") == 1 and summary.get("defaulted.language") == 1
    assert "defaulted fields    1 records  (by field: language=1)" in summary.lines()
    assert committed_offsets(job) == end_offsets(job)
