"""Moderation through a local OpenAI-compatible ``/v1/moderations`` server: flagged answers
are guard dead letters, a failing endpoint fails closed, a 401 stops the run."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from pipelines import exit_codes
from pipelines.topics import topic_records
from schemas import load_schema
from tests.conftest import EXAMPLE_TASK
from tests.fault_server import Action, FaultServer, Reply
from tests.integration.conftest import (
    SCHEMAS,
    MakeTask,
    committed_offsets,
    fault_provider,
    produce,
    run_job,
    sample_reviews,
)
from tests.moderation_server import ModerationServer
from transforms.core.config.safety import ModerationSpec
from transforms.core.errors import ModerationFailed
from transforms.core.formats import framing
from transforms.core.job import Job
from transforms.llm.moderation import Moderator

ENRICHED = SCHEMAS / "examples.reviews.EnrichedReview.avsc"
CLEAN = {"sentiment": "positive", "topics": ["value"], "summary": "Good value.", "rating": 5}
SCAM = {**CLEAN, "summary": "This seller runs a scam."}


def _answers(index: int, body: dict[str, Any]) -> Action:
    """The answer mentions a scam for records whose text does (review texts are data)."""
    record = body["messages"][-1]["content"]
    return Reply.ok(json.dumps(SCAM if "SCAM-REPORT" in record else CLEAN))


@pytest.fixture
def moderation() -> Iterator[Callable[..., ModerationServer]]:
    started: list[ModerationServer] = []

    def start(**kwargs: Any) -> ModerationServer:
        server = ModerationServer(**kwargs).__enter__()
        started.append(server)
        return server

    yield start
    for server in started:
        server.__exit__(None, None, None)


def _job(make_task: MakeTask, chat: FaultServer, mod: ModerationServer, count: int) -> Job:
    job = make_task(
        [fault_provider(chat, "chat")],
        output={"schema": str(ENRICHED)},
        prompt=yaml.safe_load(EXAMPLE_TASK.read_text())["prompt"],
        safety={"moderation": {"base_url": mod.base_url, "model": "mod-test", "attempts": 2}},
    )
    schema = load_schema(SCHEMAS / "examples.reviews.Review.avsc")
    rows = sample_reviews(count)
    for index, row in enumerate(rows):
        row["text"] += " SCAM-REPORT" if index % 2 else ""
    produce(job, [framing.encode(r, schema, "single-object") for r in rows])
    return job


def test_flagged_answers_are_guard_dead_letters_and_clean_ones_pass(
    make_task: MakeTask,
    fault_server: Callable[..., FaultServer],
    moderation: Callable[..., ModerationServer],
) -> None:
    mod = moderation(flag_words={"scam": "fraud"})
    job = _job(make_task, fault_server(script=_answers), mod, 6)

    summary = run_job(job.task)

    assert summary.exit_code == exit_codes.OK and summary.unaccounted == 0
    outputs = list(topic_records(job, dead_letters=False))
    letters = list(topic_records(job, dead_letters=True))
    assert [o["value"]["summary"] for o in outputs] == ["Good value."] * 3
    assert {(d["value"]["stage"], d["value"]["error_class"]) for d in letters} == {
        ("guard", "ModerationFlagged")
    }
    assert len(letters) == 3 and all("fraud" in d["value"]["error_message"] for d in letters)
    assert summary.grouped("safety.guarded.") == {"ModerationFlagged": 3}
    assert mod.requests == 6  # one call per answer, for all its generated strings
    review_ids = {r["review_id"] for r in sample_reviews(6)}
    assert "Good value." in mod.inputs and not review_ids & set(mod.inputs)  # copied: not sent


def test_a_failing_moderation_endpoint_fails_closed(
    make_task: MakeTask,
    fault_server: Callable[..., FaultServer],
    moderation: Callable[..., ModerationServer],
) -> None:
    mod = moderation(flag_words={}, fail_with=500)
    job = _job(make_task, fault_server(script=_answers), mod, 3)

    summary = run_job(job.task)

    assert summary.get("written.output") == 0 and summary.unaccounted == 0
    letters = list(topic_records(job, dead_letters=True))
    assert {d["value"]["error_class"] for d in letters} == {"ModerationFailed"}
    assert len(letters) == 3 and mod.requests == 6  # retried once (attempts: 2)
    assert all(d["value"]["last_raw_output"] for d in letters)


def test_a_moderation_endpoint_refusing_the_key_stops_the_run(
    make_task: MakeTask,
    fault_server: Callable[..., FaultServer],
    moderation: Callable[..., ModerationServer],
) -> None:
    mod = moderation(flag_words={}, fail_with=401)
    job = _job(make_task, fault_server(script=_answers), mod, 3)

    summary = run_job(job.task)

    assert summary.exit_code == exit_codes.SYSTEMIC
    assert any("moderation endpoint" in reason for reason in summary.stop_reasons)
    assert summary.get("written.output") == 0 and summary.get("written.dead_letter") == 0
    assert set(committed_offsets(job).values()) <= {None, 0}


def test_categories_narrow_what_counts_and_the_key_never_shows(
    moderation: Callable[..., ModerationServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = moderation(flag_words={"scam": "fraud", "idiot": "harassment"})
    spec = {"base_url": mod.base_url, "categories": ["harassment"], "api_key_env": "MOD_KEY"}
    monkeypatch.setenv("MOD_KEY", "sk-moderation-secret-123456")
    moderator = Moderator(ModerationSpec.model_validate(spec))
    assert asyncio.run(moderator.flagged(["a scam"])) == []  # fraud is not a chosen category
    assert asyncio.run(moderator.flagged(["what an idiot", "scam"])) == ["harassment"]
    assert asyncio.run(moderator.flagged([])) == [] and mod.requests == 2  # nothing to ask

    down = moderation(flag_words={}, fail_with=503)
    failing = Moderator(
        ModerationSpec.model_validate({**spec, "base_url": down.base_url, "attempts": 1})
    )
    with pytest.raises(ModerationFailed) as raised:
        asyncio.run(failing.flagged(["x"]))
    assert "503" in str(raised.value) and "sk-moderation" not in str(raised.value)
