"""Shadow providers, pure: sampling, field agreement, the comparison datum and the runner
(scripted providers; no network)."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import fastavro
import pytest

from pipelines.shadow_summary import shadow_lines
from schemas import shadow_comparison_schema
from tests.conftest import EXAMPLE_TASK
from transforms.core.calls.providers import Completion
from transforms.core.calls.shadow import ShadowRunner
from transforms.core.calls.shadow_compare import (
    bucket_percentile,
    comparison,
    comparison_counts,
    field_agreement,
    sampled,
)
from transforms.core.config.shadow import ShadowSpec
from transforms.core.config.task import load_task
from transforms.core.errors import Attempt, TaskConfigError
from transforms.core.job import compile_job
from transforms.core.records import Enriched, Failure, KafkaRecord, Parsed, Skipped

JOB = compile_job(load_task(EXAMPLE_TASK))
GOOD = {"sentiment": "positive", "topics": ["light"], "summary": "Nice lamp.", "rating": 5}
FIELDS = JOB.shape.generated_fields


def _parsed(offset: int = 3) -> Parsed:
    return Parsed(
        KafkaRecord("reviews", 0, offset, 0, b"k", b"v"),
        {"review_id": "r1", "product": "Lamp", "text": "Nice.", "submitted_at": 0},
        "examples.reviews.Review@x",
    )


def _primary(output: dict[str, Any] = GOOD) -> Enriched:
    attempt = Attempt("main", "m", status=200, latency_ms=80, prompt_tokens=10, cost_usd=0.001)
    return Enriched(_parsed().source, {**output}, "main", "m", (attempt,))


def test_sampling_is_deterministic_and_near_the_share() -> None:
    sources = [KafkaRecord("t", p, o, None, None, None) for p in range(3) for o in range(2000)]
    first = [sampled(s, "shadow", 0.1) for s in sources]
    assert first == [sampled(s, "shadow", 0.1) for s in sources]  # same on every run
    assert 0.08 < sum(first) / len(first) < 0.12
    assert all(sampled(s, "x", 1.0) for s in sources[:10])
    other = [sampled(s, "other", 0.1) for s in sources]
    assert other != first  # each shadow draws its own sample


def test_field_agreement_normalises_case_space_and_float_noise() -> None:
    a = {"sentiment": "Positive", "summary": "Nice  lamp.", "rating": 5, "topics": ["a"]}
    b = {"sentiment": "positive", "summary": "nice lamp.", "rating": 5.0000001, "topics": ["b"]}
    assert field_agreement(a, b, ["sentiment", "summary", "rating", "topics"]) == {
        "sentiment": True,
        "summary": True,
        "rating": True,
        "topics": False,
    }


def test_comparison_encodes_with_the_shipped_schema_and_counts() -> None:
    shadow = Enriched(
        _parsed().source,
        {**GOOD, "rating": 4},
        "cand",
        "c",
        (Attempt("cand", "c", status=200, latency_ms=300, cost_usd=0.002),),
        repairs=("enum_case",),
    )
    datum = comparison(
        source=_parsed().source,
        job_name="j",
        prompt_hash="h",
        output_schema="s",
        generated=FIELDS,
        primary=_primary(),
        shadow=shadow,
        shadow_error=None,
        compared_at_ms=1,
    )
    fastavro.validation.validate(datum, shadow_comparison_schema().parsed, raise_errors=True)
    assert {f["name"]: f["agree"] for f in datum["fields"]}["rating"] is False
    assert datum["agreement"] == 0.75 and datum["shadow"]["repairs"] == ["enum_case"]
    counts = comparison_counts("cand", datum)
    assert counts["shadow[cand].agree.sentiment"] == 1
    assert counts["shadow[cand].disagree.rating"] == 1
    assert counts["shadow[cand].latency_le.500"] == 1
    assert counts["shadow[cand].primary_latency_le.100"] == 1
    lines = "\n".join(shadow_lines(counts))
    assert "rating=0.00" in lines and "sentiment=1.00" in lines and "p50 <= 500 ms" in lines


def test_failed_shadow_and_dead_lettered_primary_compare_no_fields() -> None:
    primary = Failure(_parsed().source, "validate", "OutputInvalid", "bad")
    datum = comparison(
        source=_parsed().source,
        job_name="j",
        prompt_hash="h",
        output_schema="s",
        generated=FIELDS,
        primary=primary,
        shadow=None,
        shadow_error="shadow.timeout_s (1s) exceeded",
        compared_at_ms=1,
    )
    fastavro.validation.validate(datum, shadow_comparison_schema().parsed, raise_errors=True)
    assert datum["primary"]["outcome"] == "invalid" and datum["shadow"]["outcome"] == "failed"
    assert datum["fields"] == [] and datum["agreement"] is None


def test_percentile_from_buckets() -> None:
    assert bucket_percentile({}, 0.5) is None
    assert bucket_percentile({"100": 9, "5000": 1}, 0.5) == "100"
    assert bucket_percentile({"100": 9, "5000": 1}, 0.95) == "5000"


class Slow:
    """A shadow provider answering after ``delay`` seconds (or failing)."""

    def __init__(self, delay: float, answer: str | None = json.dumps(GOOD), share: float = 1):
        self.spec = SimpleNamespace(
            name="cand", model="c", shadow=ShadowSpec(share=share, max_in_flight=2, timeout_s=0.5)
        )
        self.delay, self.answer, self.calls = delay, answer, 0

    @staticmethod
    def systemic_reason(exc: BaseException) -> str | None:
        return None

    async def complete(self, messages: Any, schema: Any, *, kind: str) -> Completion:
        self.calls += 1
        await asyncio.sleep(self.delay)
        assert self.answer is not None
        attempt = Attempt("cand", "c", kind, status=200, latency_ms=self.delay * 1000)
        return Completion(self.answer, "stop", (attempt,))


class ListSink:
    def __init__(self, count: Any) -> None:
        self.data: list[dict[str, Any]] = []

    def put(self, datum: dict[str, Any], key: bytes | None) -> bool:
        self.data.append(datum)
        return True

    def flush(self, timeout_s: float) -> None:
        return None


def test_runner_never_waits_bounds_in_flight_and_times_out() -> None:
    provider = Slow(delay=5)  # far over timeout_s

    async def scenario() -> tuple[float, ShadowRunner]:
        runner = ShadowRunner(JOB, [provider], ListSink)  # type: ignore[list-item]
        loop = asyncio.get_running_loop()
        started = loop.time()
        for offset in range(5):
            runner.offer(_parsed(offset), _primary())
        runner.offer(_parsed(9), Skipped(_parsed(9).source, "stopped"))  # never shadowed
        offered_in = loop.time() - started
        await runner.wait_in_flight()
        return offered_in, runner

    offered_in, runner = asyncio.run(scenario())
    assert offered_in < 0.05  # fire and forget
    counts = runner.take_counts()
    assert counts["shadow[cand].sampled"] == 5
    assert counts["shadow[cand].busy"] == 3 and provider.calls == 2  # max_in_flight 2
    assert counts["shadow[cand].outcome.failed"] == 2
    sink = runner.sink
    assert isinstance(sink, ListSink)
    assert len(sink.data) == 2
    assert all("shadow.timeout_s" in d["shadow"]["error_message"] for d in sink.data)
    assert runner.take_counts() == {}  # taken once


def test_runner_validates_and_repairs_the_shadow_answer() -> None:
    provider = Slow(delay=0, answer=json.dumps({**GOOD, "sentiment": "POSITIVE"}))

    async def scenario() -> ShadowRunner:
        runner = ShadowRunner(JOB, [provider], ListSink)  # type: ignore[list-item]
        runner.offer(_parsed(), _primary())
        await runner.wait_in_flight()
        return runner

    runner = asyncio.run(scenario())
    (datum,) = runner.sink.data  # type: ignore[attr-defined]
    assert datum["shadow"]["outcome"] == "valid" and datum["shadow"]["repairs"]
    assert datum["agreement"] == 1.0


def test_task_shadow_settings_are_checked(tmp_path: Any) -> None:
    import yaml

    raw = yaml.safe_load(EXAMPLE_TASK.read_text())
    raw["providers"].append({**raw["providers"][0], "name": "cand", "shadow": {"share": 0.1}})
    for key in ("schema",):
        raw["input"][key] = str((EXAMPLE_TASK.parent / raw["input"][key]).resolve())
        raw["output"][key] = str((EXAMPLE_TASK.parent / raw["output"][key]).resolve())
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(TaskConfigError, match="shadow_topic is required"):
        load_task(path)
    raw["kafka"]["shadow_topic"] = "shadows"
    path.write_text(yaml.safe_dump(raw))
    task = load_task(path)
    assert [p.name for p in task.chain] == [p["name"] for p in raw["providers"][:-1]]
    assert [p.name for p in task.shadows] == ["cand"]
    raw["providers"][-1]["shadow"] = {"share": 0.1, "sample": 3}
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(TaskConfigError, match="shadow.sample: unknown key"):
        load_task(path)
    raw["providers"][-1]["shadow"] = {"share": 0}
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(TaskConfigError, match="share"):
        load_task(path)
