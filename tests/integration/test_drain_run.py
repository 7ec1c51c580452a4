"""A full drain run on the real broker and the real local model."""

from __future__ import annotations

import os
from collections import Counter

from pipelines.topics import topic_records
from schemas import load_schema
from tests.conftest import SCHEMAS
from tests.integration.conftest import (
    MakeTask,
    committed_offsets,
    end_offsets,
    local_provider,
    produce,
    reviews,
    run_job,
    sample_reviews,
)
from transforms.core.formats import framing

REVIEW = load_schema(SCHEMAS / "examples.reviews.Review.avsc")


def _poison() -> list[bytes]:
    good = framing.encode(sample_reviews(1)[0], REVIEW, "single-object")
    return [
        os.urandom(40),  # random bytes
        b"\xc3\x01" + bytes(8) + good[10:],  # a fingerprint nobody knows
        good[: len(good) // 2],  # truncated Avro
    ]


def test_every_offset_ends_in_exactly_one_output_or_dead_letter(
    make_task: MakeTask, llm_server: None
) -> None:
    job = make_task([local_provider()])
    values = reviews(90)  # about 2.4 s each on 2 cores with the default delimited prompt
    poison = _poison()
    values[30:30] = poison
    produce(job, values)

    summary = run_job(job.task)

    outputs = list(topic_records(job, dead_letters=False))
    dead = list(topic_records(job, dead_letters=True))
    assert summary.get("read") == len(values) == 93

    def coords(headers: dict[str, str]) -> tuple[int, int]:
        return int(headers["llm_enrich.source.partition"]), int(headers["llm_enrich.source.offset"])

    settled = Counter(coords(r["headers"]) for r in outputs + dead)
    assert all(n == 1 for n in settled.values()), "an input offset was settled twice"
    expected = {(p, o) for p, end in end_offsets(job).items() for o in range(end)}
    assert set(settled) == expected, "an input offset has neither output nor dead letter"
    assert len(outputs) + len(dead) == 93
    assert summary.unaccounted == 0

    # outputs decoded against the output schema (topic_records decodes them) and carry
    # what a consumer needs to trace them
    for record in outputs:
        assert set(record["value"]) == {"review_id", "sentiment", "rating"}
        assert record["headers"]["llm_enrich.provider"] == "local"
        assert record["headers"]["llm_enrich.prompt_hash"] == job.prompt.hash

    # the three poison records are decode dead letters, with their original bytes
    decode_dead = [d["value"] for d in dead if d["value"]["stage"] == "decode"]
    assert sorted(d["original"]["value"] for d in decode_dead) == sorted(poison)
    assert all(d["error_class"] == "DecodeError" and d["error_message"] for d in decode_dead)
    assert summary.dead_by_stage.get("decode") == 3
    for d in dead:
        assert d["headers"]["__connect.errors.stage"] == d["value"]["stage"]

    # offsets are committed to the end of what was read...
    assert committed_offsets(job) == end_offsets(job)
    # ...so a second run on the same group reads nothing new
    again = run_job(job.task)
    assert again.get("read") == 0
    assert len(list(topic_records(job, dead_letters=False))) == len(outputs)
