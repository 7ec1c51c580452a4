"""Providers that are down: fall back to the next; when all are down, lose nothing."""

from __future__ import annotations

from pipelines.topics import topic_records
from tests.integration.conftest import (
    MakeTask,
    committed_offsets,
    down_provider,
    end_offsets,
    local_provider,
    produce,
    reviews,
    run_job,
)


def test_connection_refused_falls_back_to_the_next_provider(
    make_task: MakeTask, llm_server: None
) -> None:
    job = make_task([down_provider("primary"), local_provider("fallback")])
    produce(job, reviews(24))

    summary = run_job(job.task)

    outputs = list(topic_records(job, dead_letters=False))
    dead = list(topic_records(job, dead_letters=True))
    assert len(outputs) + len(dead) == 24
    assert outputs, "the fallback enriched nothing"
    assert all(r["headers"]["llm_enrich.provider"] == "fallback" for r in outputs)
    assert not [d for d in dead if d["value"]["stage"] == "llm"]
    assert summary.get("llm_failed_calls") >= 24  # the primary refused every record
    assert committed_offsets(job) == end_offsets(job)


def test_all_providers_down_dead_letters_every_record_when_the_policy_says_so(
    make_task: MakeTask,
) -> None:
    # An outage is a systemic fault (test_systemic.py); this keeps the old behaviour.
    job = make_task(
        [down_provider("first"), down_provider("second")],
        policy={"on_systemic_fault": "dead_letter", "max_dead_letter_ratio": None},
    )
    produce(job, reviews(30))

    summary = run_job(job.task)

    assert list(topic_records(job, dead_letters=False)) == []
    dead = [d["value"] for d in topic_records(job, dead_letters=True)]
    assert len(dead) == 30 == summary.get("read")
    for letter in dead:
        assert letter["stage"] == "llm" and letter["error_class"] == "ProvidersExhausted"
        assert [a["provider"] for a in letter["attempts"]] == ["first", "second"]
        # refused connections, until the circuit opens and the provider is skipped
        errors = [a["error"] for a in letter["attempts"]]
        assert all("APIConnectionError" in e or "circuit open" in e for e in errors), errors
        assert letter["original"]["value"]  # the input, replayable
    offsets = {(d["original"]["partition"], d["original"]["offset"]) for d in dead}
    assert len(offsets) == 30
    assert summary.dead_by_stage == {"llm": 30}
    assert committed_offsets(job) == end_offsets(job)
