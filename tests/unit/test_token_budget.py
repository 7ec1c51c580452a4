"""policy.max_tokens_per_record: checked at compile, and before every call of a record
(scripted providers that report usage; pure: no network)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from tests.conftest import EXAMPLE_TASK
from transforms.core.calls.enricher import Enricher
from transforms.core.calls.providers import Completion
from transforms.core.config.task import load_task
from transforms.core.errors import Attempt, TaskConfigError
from transforms.core.job import Job, compile_job
from transforms.core.limits import estimate_tokens
from transforms.core.records import Enriched, Failure, KafkaRecord, Parsed

BASE = compile_job(load_task(EXAMPLE_TASK))
RECORD = Parsed(
    KafkaRecord("reviews", 0, 3, 0, None, b"v"),
    {"review_id": "r1", "product": "Lamp", "text": "Nice.", "submitted_at": 0},
    "examples.reviews.Review@x",
)
GOOD = json.dumps({"sentiment": "positive", "topics": ["x"], "summary": "Nice.", "rating": 5})
BAD = json.dumps({"sentiment": "positive", "topics": ["x"], "summary": "Nice.", "rating": 9})
MAX_TOKENS = BASE.task.generation.max_tokens
FIRST_PROMPT = estimate_tokens(BASE.prompt.messages(RECORD.fields))


class Metered:
    """Answers from a script and reports usage: the prompt's estimate, 30 completion tokens."""

    def __init__(self, name: str, script: Sequence[str]) -> None:
        self.spec = SimpleNamespace(name=name, model="m")
        self.script = list(script)
        self.calls = 0

    @staticmethod
    def systemic_reason(exc: BaseException) -> str | None:
        return None

    async def complete(self, messages: Any, schema: Any, *, kind: str) -> Completion:
        self.calls += 1
        prompt = estimate_tokens(list(messages))
        attempt = Attempt(
            self.spec.name, "m", kind, status=200, prompt_tokens=prompt, completion_tokens=30
        )
        return Completion(self.script.pop(0), "stop", (attempt,))


def _job(budget: int | None, max_reasks: int = 2) -> Job:
    policy = BASE.task.policy.model_copy(
        update={"max_tokens_per_record": budget, "max_reasks": max_reasks}
    )
    return compile_job(BASE.task.model_copy(update={"policy": policy}))


def _run(job: Job, *providers: Metered) -> Enriched | Failure:
    return asyncio.run(Enricher(job, providers).enrich(RECORD))  # type: ignore[arg-type]


def test_a_record_is_dead_lettered_when_the_next_reask_would_go_over() -> None:
    # room for the first call and not for a re-ask (a longer prompt, plus max_tokens)
    budget = FIRST_PROMPT + MAX_TOKENS + 40
    provider = Metered("a", [BAD, GOOD])
    result = _run(_job(budget), provider)
    assert isinstance(result, Failure)
    assert (result.stage, result.error_class) == ("budget", "OverBudget")
    assert provider.calls == 1 and len(result.attempts) == 1  # never re-asked
    assert "policy.max_tokens_per_record" in result.message
    assert result.raw_output == BAD and result.field_errors  # what it was re-asked for


def test_the_budget_spans_fallbacks_too() -> None:
    budget = FIRST_PROMPT + MAX_TOKENS + 40
    first, second = Metered("a", [BAD]), Metered("b", [GOOD])
    result = _run(_job(budget, max_reasks=0), first, second)
    assert isinstance(result, Failure) and result.stage == "budget"
    assert (first.calls, second.calls) == (1, 0)


def test_within_the_budget_nothing_changes() -> None:
    provider = Metered("a", [BAD, GOOD])
    result = _run(_job(10 * (FIRST_PROMPT + MAX_TOKENS)), provider)
    assert isinstance(result, Enriched) and provider.calls == 2
    unbounded = Metered("a", [BAD, GOOD])
    assert isinstance(_run(_job(None), unbounded), Enriched) and unbounded.calls == 2


def test_a_record_too_long_for_the_budget_is_never_sent() -> None:
    fixed = estimate_tokens([*BASE.prompt.fixed_messages, {"role": "user", "content": ""}])
    job = _job(fixed + MAX_TOKENS + 5)  # compiles: the fixed part and an answer fit
    long = Parsed(RECORD.source, {**RECORD.fields, "text": "word " * 400}, RECORD.input_schema)
    provider = Metered("a", [GOOD])
    result = asyncio.run(Enricher(job, [provider]).enrich(long))  # type: ignore[list-item]
    assert isinstance(result, Failure) and result.stage == "budget"
    assert provider.calls == 0 and result.attempts == ()


def test_a_budget_no_record_could_fit_is_a_config_error(tmp_path: Path) -> None:
    raw = yaml.safe_load(EXAMPLE_TASK.read_text())
    raw["policy"]["max_tokens_per_record"] = MAX_TOKENS + 10
    for key in ("input", "output"):
        raw[key]["schema"] = str((EXAMPLE_TASK.parent / raw[key]["schema"]).resolve())
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(TaskConfigError) as error:
        compile_job(load_task(path))
    message = str(error.value)
    assert str(path) in message and "policy.max_tokens_per_record" in message
    assert "generation.max_tokens (160)" in message
    raw["policy"]["max_tokens_per_record"] = 0
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(TaskConfigError, match="max_tokens_per_record"):
        load_task(path)
