from __future__ import annotations

import json

from tests.conftest import EXAMPLE_TASK
from transforms.core.config.task import load_task
from transforms.core.envelope import dead_letter_envelope, output_envelope, read_dead_letter
from transforms.core.errors import Attempt, FieldError
from transforms.core.formats import framing
from transforms.core.job import compile_job
from transforms.core.records import Enriched, Failure, KafkaRecord

JOB = compile_job(load_task(EXAMPLE_TASK))
SOURCE = KafkaRecord("reviews", 2, 41, 1767276083108, b"r1", b"\x00garbage", (("trace", b"t1"),))
ATTEMPT = Attempt("local", "smollm2", status=503, error="InternalServerError (transient): down")


def _headers(envelope: object) -> dict[str, str]:
    return {k: v.decode() for k, v in envelope.headers}  # type: ignore[attr-defined]


def test_dead_letter_holds_the_original_and_the_whole_story() -> None:
    failure = Failure(
        SOURCE,
        "validate",
        "OutputInvalid",
        "bad answer",
        (ATTEMPT,),
        '{"rating": 9}',
        (FieldError("$.rating", "must be <= 5"),),
        "examples.reviews.Review@abc",
        1767276090000,
    )
    envelope = dead_letter_envelope(JOB, failure)
    value = read_dead_letter(envelope.value)
    assert value["original"]["value"] == b"\x00garbage"
    assert value["original"]["key"] == b"r1"
    assert value["original"]["headers"] == [{"key": "trace", "value": b"t1"}]
    assert (value["original"]["topic"], value["original"]["partition"]) == ("reviews", 2)
    assert value["original"]["offset"] == 41
    assert value["stage"] == "validate" and value["error_class"] == "OutputInvalid"
    assert value["attempts"][0]["status"] == 503
    assert value["last_raw_output"] == '{"rating": 9}'
    assert value["validation_errors"] == [{"path": "$.rating", "message": "must be <= 5"}]
    assert value["prompt_hash"] == JOB.prompt.hash
    assert value["output_schema"] == JOB.output_schema.identity
    assert value["job_name"] == "reviews-enrichment" and value["replay_count"] == 0
    headers = _headers(envelope)
    assert headers["__connect.errors.topic"] == "reviews"
    assert headers["__connect.errors.partition"] == "2"
    assert headers["__connect.errors.offset"] == "41"
    assert headers["__connect.errors.stage"] == "validate"
    assert headers["__connect.errors.exception.class.name"] == "OutputInvalid"
    assert headers["__connect.errors.exception.message"] == "bad answer"
    assert envelope.key == b"r1"


def test_output_carries_source_coordinates_provider_and_prompt_hash() -> None:
    output = {
        "review_id": "r1",
        "product": "Lamp",
        "sentiment": "positive",
        "topics": ["light"],
        "summary": "Good.",
        "rating": 5,
    }
    envelope = output_envelope(JOB, Enriched(SOURCE, output, "local", "smollm2", (ATTEMPT,)))
    decoded, writer = framing.decode(envelope.value, JOB.output_schema, "single-object")
    assert decoded == output and writer.identity == JOB.output_schema.identity
    headers = _headers(envelope)
    assert headers["llm_enrich.source.topic"] == "reviews"
    assert headers["llm_enrich.source.partition"] == "2"
    assert headers["llm_enrich.source.offset"] == "41"
    assert headers["llm_enrich.provider"] == "local"
    assert headers["llm_enrich.model"] == "smollm2"
    assert headers["llm_enrich.prompt_hash"] == JOB.prompt.hash
    assert json.loads(headers["llm_enrich.attempts"]) == [
        {
            "provider": "local",
            "kind": "call",
            "status": 503,
            "error": "InternalServerError",
            "latency_ms": 0.0,
            "prompt_tokens": 0,
            "cached_tokens": 0,
            "completion_tokens": 0,
            "cost_usd": 0.0,
            "lane": "sync",
        }
    ]
    assert json.loads(headers["llm_enrich.usage"]) == {
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "cost_usd": 0.0,
        "calls": 1,
        "cached_prompt_tokens": 0,
        "uncached_prompt_tokens": 0,
        "reasoning_tokens": 0,
        "estimated_calls": 0,
    }


def test_dead_letters_written_with_the_v1_schema_stay_readable() -> None:
    from schemas import SCHEMA_DIR, load_schema

    v1 = load_schema(SCHEMA_DIR / "history" / "llm_enrich.DeadLetter.v1.avsc")
    failure = Failure(SOURCE, "llm", "ProvidersExhausted", "down", (ATTEMPT,), None, (), None, 5)
    current = dead_letter_envelope(JOB, failure)
    old_value = read_dead_letter(current.value)
    for attempt in old_value["attempts"]:
        for name in ("cost_usd", *V3_ATTEMPT_FIELDS):
            del attempt[name]  # v1 had no cost
    old_bytes = framing.encode(old_value, v1, "single-object")
    assert old_bytes[2:10] == v1.fingerprint != current.value[2:10]  # v1 is not current
    decoded = read_dead_letter(old_bytes)
    assert decoded["attempts"][0]["cost_usd"] == 0.0  # filled from the reader's default
    assert decoded["original"]["value"] == SOURCE.value and decoded["stage"] == "llm"


V3_ATTEMPT_FIELDS = ("cached_tokens", "reasoning_tokens", "usage_estimated", "lane", "shared_by")


def test_dead_letters_written_with_the_v2_schema_read_with_ledger_defaults() -> None:
    from schemas import SCHEMA_DIR, load_schema

    v2 = load_schema(SCHEMA_DIR / "history" / "llm_enrich.DeadLetter.v2.avsc")
    costly = Attempt("p", "m", status=200, prompt_tokens=2000, cached_tokens=1024, cost_usd=0.5)
    failure = Failure(SOURCE, "llm", "ProvidersExhausted", "down", (costly,), None, (), None, 5)
    current = read_dead_letter(dead_letter_envelope(JOB, failure).value)
    assert current["attempts"][0]["cached_tokens"] == 1024
    for attempt in current["attempts"]:
        for name in V3_ATTEMPT_FIELDS:
            del attempt[name]
    decoded = read_dead_letter(framing.encode(current, v2, "single-object"))
    attempt = decoded["attempts"][0]
    assert (attempt["prompt_tokens"], attempt["cost_usd"]) == (2000, 0.5)
    assert (attempt["cached_tokens"], attempt["lane"], attempt["shared_by"]) == (0, "sync", 1)
    assert attempt["usage_estimated"] is False
