"""Confluent framing against a real schema registry (Apicurio's Confluent-compatible API)."""

from __future__ import annotations

import uuid
from typing import Any

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
from transforms.registry.client import RegistryClient, topic_subject

REVIEW_V1 = load_schema(SCHEMAS / "examples.reviews.Review.avsc")
REVIEW_V2 = load_schema(REPO / "tests" / "data" / "evolution" / "review.v2.avsc")
VERDICT = load_schema(REPO / "tests" / "data" / "tests.ReviewVerdict.avsc")


def test_registry_client_registers_and_looks_up(registry_url: str) -> None:
    client = RegistryClient(registry_url)
    subject = f"client-{uuid.uuid4().hex[:8]}-value"
    first = client.register(subject, REVIEW_V1)
    assert client.register(subject, REVIEW_V1) == first  # cached, and idempotent upstream
    second = client.register(subject, REVIEW_V2)
    assert client.versions(subject) == [1, 2]
    version, latest_id, latest = client.latest(subject)
    assert (version, latest_id) == (2, second) and latest.fingerprint == REVIEW_V2.fingerprint
    fresh = RegistryClient(registry_url)  # no cache: from the registry itself
    assert fresh.schema_by_id(first).fingerprint == REVIEW_V1.fingerprint


def test_confluent_framed_input_and_output_through_the_pipeline(
    make_task: MakeTask, fault_server: Any, registry_url: str
) -> None:
    server = fault_server(default=Reply.ok())
    job = make_task(
        [fault_provider(server, "only")],
        input={
            "schema": str(REPO / "tests/data/evolution/review.v2.avsc"),
            "framing": "confluent",
            "registry_url": registry_url,
        },
        output={"framing": "confluent", "registry_url": registry_url},
    )
    registry = RegistryClient(registry_url)
    subject = topic_subject(job.task.kafka.input_topic)
    v1_id = registry.register(subject, REVIEW_V1)
    v2_id = registry.register(subject, REVIEW_V2)
    rows = sample_reviews(20)
    values = [
        framing.encode(row, REVIEW_V1, "confluent", v1_id)
        if i % 2
        else framing.encode({**row, "locale": "fr"}, REVIEW_V2, "confluent", v2_id)
        for i, row in enumerate(rows)
    ]
    values.append(b"\x00\x7f\xff\xff\xff" + values[0][5:])  # an id the registry never issued
    produce(job, values)

    summary = run_job(job.task)

    assert summary.get("written.output") == 20
    assert summary.dead_by_stage == {"decode": 1}
    [dead] = [d["value"] for d in topic_records(job, dead_letters=True)]
    assert "schema id 2147483647" in dead["error_message"]
    # outputs are framed with the id the output schema got under <output_topic>-value
    _, output_id, output_schema = registry.latest(topic_subject(job.task.kafka.output_topic))
    assert output_schema.fingerprint == VERDICT.fingerprint
    outputs = list(topic_records(job, dead_letters=False))
    assert len(outputs) == 20
    assert {o["value"]["sentiment"] for o in outputs} == {"positive"}
    raw = raw_output_values(job)
    assert {v[:5] for v in raw if v} == {b"\x00" + output_id.to_bytes(4, "big")}
