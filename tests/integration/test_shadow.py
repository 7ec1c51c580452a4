"""Shadow providers against the real broker, with scripted providers: the primary's outputs
and offsets are what they are without a shadow; the shadow topic has the comparisons; a
slow or dead shadow changes nothing and is counted."""

from __future__ import annotations

import json
from typing import Any

from schemas import shadow_comparison_schema
from tests.fault_server import Reply
from tests.integration.conftest import (
    MakeTask,
    closed_port_url,
    committed_offsets,
    end_offsets,
    fault_provider,
    produce,
    reviews,
    run_job,
)
from transforms.core.calls.shadow_compare import sampled
from transforms.core.formats import framing
from transforms.core.job import Job
from transforms.kafka.admin import ensure_topics
from transforms.kafka.reader import read_range, snapshot_ranges

COUNT = 24


def _task(make_task: MakeTask, primary: Any, shadow: dict[str, Any] | None) -> Job:
    providers = [fault_provider(primary, "main")]
    overrides: dict[str, Any] = {}
    if shadow is not None:
        providers.append(shadow)
        overrides["kafka"] = {"shadow_topic": "it-shadow-placeholder"}
    job = make_task(providers, **overrides)
    if shadow is not None:  # a topic of this run's own
        topic = job.task.kafka.input_topic.removesuffix("-in") + "-shadow"
        kafka = job.task.kafka.model_copy(update={"shadow_topic": topic})
        job = Job(**{**job.__dict__, "task": job.task.model_copy(update={"kafka": kafka})})
        ensure_topics(kafka, {topic: 1})
    return job


def _outputs(job: Job) -> dict[tuple[int, int], dict[str, Any]]:
    kafka = job.task.kafka
    found = {}
    for range_ in snapshot_ranges(kafka, kafka.output_topic, None):
        for record in read_range(kafka, range_):
            value, _ = framing.decode(record.value or b"", job.output_schema, "single-object")
            headers = dict(record.headers)
            source = (int(headers["llm_enrich.source.partition"] or b""), record.offset)
            found[(source[0], int(headers["llm_enrich.source.offset"] or b""))] = value
    return found


def _comparisons(job: Job) -> list[dict[str, Any]]:
    kafka = job.task.kafka
    assert kafka.shadow_topic
    schema = shadow_comparison_schema()
    return [
        framing.decode(record.value or b"", schema, "single-object")[0]
        for range_ in snapshot_ranges(kafka, kafka.shadow_topic, None)
        for record in read_range(kafka, range_)
    ]


def _expected_sample(job: Job, name: str, share: float) -> set[tuple[int, int]]:
    from transforms.core.records import KafkaRecord

    topic = job.task.kafka.input_topic
    return {
        (p, o)
        for p, end in end_offsets(job).items()
        for o in range(end)
        if sampled(KafkaRecord(topic, p, o, None, None, None), name, share)
    }


def test_shadow_compares_without_changing_outputs_or_offsets(
    make_task: MakeTask, fault_server: Any
) -> None:
    baseline_server, primary, candidate = fault_server(), fault_server(), fault_server()
    baseline = _task(make_task, baseline_server, None)
    produce(baseline, reviews(COUNT))
    base_summary = run_job(baseline.task)

    shadow = fault_provider(
        candidate,
        "cand",
        shadow={"share": 0.5},
        pricing={"prompt_per_million": 1.0, "completion_per_million": 2.0},
    )
    job = _task(make_task, primary, shadow)
    produce(job, reviews(COUNT))
    summary = run_job(job.task)

    assert summary.get("written.output") == base_summary.get("written.output") == COUNT
    assert list(_outputs(job).values()) != [] and sorted(
        map(json.dumps, _outputs(job).values())
    ) == sorted(map(json.dumps, _outputs(baseline).values()))
    assert committed_offsets(job) == end_offsets(job)
    assert primary.stats.requests == COUNT  # the shadow's calls went elsewhere
    wanted = _expected_sample(job, "cand", 0.5)
    assert 0 < len(wanted) < COUNT and candidate.stats.requests == len(wanted)
    comparisons = _comparisons(job)
    assert {(c["source"]["partition"], c["source"]["offset"]) for c in comparisons} == wanted
    first = comparisons[0]
    assert first["shadow"]["provider"] == "cand" and first["shadow"]["outcome"] == "valid"
    assert first["primary"]["provider"] == "main" and first["agreement"] is not None
    assert first["shadow"]["cost_usd"] > 0 and first["prompt_hash"] == job.prompt.hash
    assert summary.get("shadow[cand].compared") == len(wanted)
    assert summary.get("shadow.written") == len(wanted)
    assert summary.get("cost_micro_usd") == 0  # the shadow's cost is not the run's
    text = "\n".join(summary.lines())
    assert "shadow cand" in text and "agreement" in text


def test_slow_or_dead_shadow_changes_nothing_and_is_counted(
    make_task: MakeTask, fault_server: Any
) -> None:
    primary, slow = fault_server(), fault_server(default=Reply.hang(30))
    shadows = [
        fault_provider(slow, "slow", timeout_s=20, shadow={"share": 1.0, "timeout_s": 2}),
        {"name": "dead", "base_url": closed_port_url(), "model": "x", "shadow": {"share": 1.0}},
    ]
    job = _task(make_task, primary, shadows[0])
    raw_task = job.task.model_copy(update={"providers": [*job.task.providers, _spec(shadows[1])]})
    produce(job, reviews(COUNT))

    summary = run_job(raw_task)

    assert summary.get("written.output") == COUNT and summary.get("written.dead_letter") == 0
    assert committed_offsets(job) == end_offsets(job)
    assert summary.exit_code == 0
    assert summary.get("shadow[dead].outcome.failed") == COUNT
    failed_slow = summary.get("shadow[slow].outcome.failed")
    busy = summary.get("shadow[slow].busy")
    assert failed_slow + busy == COUNT and failed_slow > 0  # 8 in flight at most
    assert summary.wall_time_s < 60
    outcomes = {(c["shadow"]["provider"] or "?", c["shadow"]["outcome"]) for c in _comparisons(job)}
    assert ("dead", "failed") in outcomes


def _spec(raw: dict[str, Any]) -> Any:
    from transforms.core.config.task import ProviderSpec

    return ProviderSpec.model_validate(raw)
