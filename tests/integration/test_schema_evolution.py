"""Schema evolution over the real broker: mixed writer versions in, a new output version out."""

from __future__ import annotations

import io
import subprocess
import sys

from fastavro import schemaless_reader

from pipelines.topics import topic_records
from schemas import load_schema
from tests.conftest import REPO, SCHEMAS
from tests.fault_server import Reply
from tests.integration.conftest import (
    MakeTask,
    fault_provider,
    produce,
    raw_output_values,
    run_job,
    sample_reviews,
)
from transforms.core.formats import framing

EVOLUTION = REPO / "tests" / "data" / "evolution"
REVIEW_V1 = load_schema(SCHEMAS / "examples.reviews.Review.avsc")
REVIEW_V2 = load_schema(EVOLUTION / "review.v2.avsc")
VERDICT_V1 = load_schema(REPO / "tests" / "data" / "tests.ReviewVerdict.avsc")
VERDICT_V2 = load_schema(EVOLUTION / "verdict.v2.avsc")


def test_a_topic_with_v1_and_v2_input_records_is_processed_completely(
    make_task: MakeTask, fault_server: object
) -> None:
    server = fault_server(default=Reply.ok())  # type: ignore[operator]
    job = make_task(
        [fault_provider(server, "only")],
        input={
            "schema": str(EVOLUTION / "review.v2.avsc"),
            "previous_schemas": [str(SCHEMAS / "examples.reviews.Review.avsc")],
        },
    )
    rows = sample_reviews(40)
    values = [
        framing.encode(row, REVIEW_V1, "single-object")
        if i % 2
        else framing.encode({**row, "locale": "de"}, REVIEW_V2, "single-object")
        for i, row in enumerate(rows)
    ]
    produce(job, values)

    summary = run_job(job.task)

    assert summary.get("written.output") == 40 and summary.dead_by_stage == {}
    # v1 records were resolved to the v2 reader: the template saw the default locale
    assert {VERDICT_V1.identity} == {
        r["headers"]["llm_enrich.output_schema"] for r in topic_records(job, dead_letters=False)
    }


def test_output_schema_v2_is_followed_and_readable_by_v1_and_v2_consumers(
    make_task: MakeTask, fault_server: object
) -> None:
    server = fault_server(default=Reply.ok())  # type: ignore[operator]
    job = make_task(
        [fault_provider(server, "only")],
        output={
            "schema": str(EVOLUTION / "verdict.v2.avsc"),
            "previous_schemas": [str(REPO / "tests" / "data" / "tests.ReviewVerdict.avsc")],
        },
    )
    produce(job, [framing.encode(r, REVIEW_V1, "single-object") for r in sample_reviews(10)])

    run_job(job.task)

    # the model was asked for the new field, without any code change
    asked = server.stats.bodies[0]["response_format"]["json_schema"]["schema"]  # type: ignore[attr-defined]
    assert "mentions_delivery" in asked["required"]
    outputs = list(topic_records(job, dead_letters=False))
    assert len(outputs) == 10
    for output in outputs:
        assert output["headers"]["llm_enrich.output_schema"] == VERDICT_V2.identity
    raw = [v for v in raw_output_values(job) if v]
    for payload in raw:
        assert payload[2:10] == VERDICT_V2.fingerprint
        for reader in (VERDICT_V1, VERDICT_V2):
            datum = schemaless_reader(io.BytesIO(payload[10:]), VERDICT_V2.parsed, reader.parsed)
            assert datum["sentiment"] == "positive"
            assert ("mentions_delivery" in datum) == (reader is VERDICT_V2)


def test_schemas_check_names_each_incompatible_field_and_run_refuses(
    make_task: MakeTask, fault_server: object
) -> None:
    server = fault_server(default=Reply.ok())  # type: ignore[operator]
    job = make_task(
        [fault_provider(server, "only")],
        output={
            "schema": str(EVOLUTION / "verdict.broken.avsc"),
            "previous_schemas": [str(REPO / "tests" / "data" / "tests.ReviewVerdict.avsc")],
            "compatibility": "FULL",
        },
        prompt={"examples": []},
    )
    task = str(job.task.source_path)
    cli = [sys.executable, "-m", "pipelines.cli"]

    check = subprocess.run(
        [*cli, "schemas", "check", "--task", task], capture_output=True, text=True, timeout=120
    )
    assert check.returncode == 1, check.stdout + check.stderr
    report = check.stdout
    backward, forward = [line for line in report.splitlines() if "INCOMPATIBLE" in line]
    assert "BACKWARD: field rating, sentiment:" in backward
    assert "reader type: string not compatible with writer type: int" in backward  # type change
    assert "enum symbols the reader does not know: {'mixed'}" in backward  # renamed symbol
    assert "FORWARD: field rating, review_id, sentiment:" in forward
    # removed without a default: consumers on the previous version cannot read new outputs
    assert "the reader's field review_id is not written and has no default" in forward

    refused = subprocess.run(
        [*cli, "run", "--task", task], capture_output=True, text=True, timeout=120
    )
    assert refused.returncode == 2
    assert "is not FULL-compatible" in refused.stderr
    assert server.stats.requests == 0  # type: ignore[attr-defined]
