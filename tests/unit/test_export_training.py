"""Fine-tuning export, pure: filters, formats, dedupe, split; the lines against the openai
SDK's message types and a Files API server checking them as OpenAI does."""

from __future__ import annotations

import io
import json
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from pydantic import TypeAdapter

from tests.conftest import EXAMPLE_TASK
from tests.files_server import FilesServer, line_problem
from transforms.core.config.task import load_task
from transforms.core.export.training import Exporter, ExportFilter, OutputRecord, reason_to_skip
from transforms.core.job import compile_job

JOB = compile_job(load_task(EXAMPLE_TASK))
GOOD = {"sentiment": "positive", "topics": ["light"], "summary": "Nice lamp.", "rating": 5}
FIELDS = {"review_id": "r1", "product": "Lamp", "text": "Nice.", "submitted_at": 0}


def _record(**headers: str) -> OutputRecord:
    base = {
        "llm_enrich.source.topic": "in",
        "llm_enrich.source.partition": "0",
        "llm_enrich.source.offset": "4",
        "llm_enrich.prompt_hash": JOB.prompt.hash,
        "llm_enrich.provider": "local",
        "llm_enrich.model": "m",
        "llm_enrich.attempts": '[{"provider":"local","kind":"call"}]',
    }
    return OutputRecord(0, 1, 1_000, {**base, **headers}, {"review_id": "r1", **GOOD})


@pytest.mark.parametrize(
    ("headers", "selection", "reason"),
    [
        ({}, ExportFilter(), None),
        ({"llm_enrich.prompt_hash": "old"}, ExportFilter(), "other_prompt"),
        ({"llm_enrich.source.offset": "x"}, ExportFilter(), "no_source_headers"),
        ({}, ExportFilter(since_ms=1_001), "before_since"),
        ({}, ExportFilter(until_ms=1_000), "after_until"),
        ({}, ExportFilter(providers=frozenset({"other"})), "provider"),
        ({}, ExportFilter(models=frozenset({"other"})), "model"),
        ({"llm_enrich.repairs": "enum_case"}, ExportFilter(clean_only=True), "repaired"),
        ({"llm_enrich.repairs": "enum_case"}, ExportFilter(), None),
        (
            {"llm_enrich.attempts": '[{"kind":"call"},{"kind":"reask"}]'},
            ExportFilter(clean_only=True),
            "reasked",
        ),
        ({"llm_enrich.attempts": "{broken"}, ExportFilter(clean_only=True), "reasked"),
    ],
)
def test_filters(headers: dict[str, str], selection: ExportFilter, reason: str | None) -> None:
    assert reason_to_skip(_record(**headers), selection, JOB.prompt.hash) == reason


def test_chat_line_shape_matches_the_sdk_types_and_dedupes() -> None:
    exporter = Exporter(JOB)
    made = exporter.line(FIELDS, {"review_id": "r1", **GOOD})
    assert made is not None
    line, validation = made
    body = json.loads(line)
    messages = body["messages"]
    TypeAdapter(list[ChatCompletionMessageParam]).validate_python(messages)
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]
    assert "Nice." in messages[1]["content"]
    assert json.loads(messages[2]["content"]) == GOOD  # generated fields only
    assert not validation and line_problem(line.encode()) is None
    assert exporter.line(FIELDS, {"review_id": "r1", **GOOD}) is None
    assert exporter.counts == {"train": 1, "duplicate": 1}


def test_golden_line_and_unrenderable_record() -> None:
    exporter = Exporter(JOB, "golden")
    made = exporter.line(FIELDS, {**GOOD})
    assert made is not None
    assert json.loads(made[0]) == {"input": FIELDS, "expected": GOOD}
    assert exporter.line({"review_id": "r2"}, GOOD) is None  # the template needs text
    assert exporter.counts["prompt_error"] == 1


def test_validation_split_is_deterministic_and_near_the_share() -> None:
    def split() -> list[bool]:
        exporter = Exporter(JOB, validation_share=0.2)
        made = [exporter.line({**FIELDS, "text": f"t{i}"}, GOOD) for i in range(500)]
        return [m[1] for m in made if m is not None]

    first = split()
    assert first == split() and 0.14 < sum(first) / len(first) < 0.26


def _upload(server: FilesServer, content: bytes) -> Any:
    client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
    return client.files.create(file=("train.jsonl", io.BytesIO(content)), purpose="fine-tune")


def test_files_api_accepts_the_export_and_refuses_a_bad_line() -> None:
    exporter = Exporter(JOB)
    lines = [exporter.line({**FIELDS, "text": f"t{i}"}, GOOD) for i in range(3)]
    content = "".join(f"{m[0]}\n" for m in lines if m is not None).encode()
    with FilesServer() as server:
        created = _upload(server, content)
        assert created.purpose == "fine-tune" and server.uploads == [("fine-tune", content)]
        bad = json.dumps({"messages": [{"role": "user", "content": "x"}]}).encode()
        with pytest.raises(openai.BadRequestError, match="line 2"):
            _upload(server, content.splitlines()[0] + b"\n" + bad + b"\n")
