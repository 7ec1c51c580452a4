"""The ``coordination:`` section and what the call path does with a coordination: the
budget one per run across guards, a lost store halting the run (never a dead letter, never
per-process limits). Pure: a fake budget and scripted providers; the Redis backend itself
is tested against the real Redis in ``tests/integration/test_coordination_redis.py``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import EXAMPLE_TASK
from tests.unit.test_enricher import GOOD, JOB, RECORD, Scripted
from transforms.core.calls.enricher import Enricher
from transforms.core.config.task import load_task
from transforms.core.coordination.in_process import InProcess
from transforms.core.coordination.interface import CoordinationLost
from transforms.core.errors import Attempt, TaskConfigError
from transforms.core.job import compile_job
from transforms.core.records import Enriched, Skipped
from transforms.core.run.guard import RunGuard


def _task(tmp_path: Path, coordination: dict[str, Any] | None) -> Path:
    raw = yaml.safe_load(EXAMPLE_TASK.read_text())
    for section in ("input", "output"):
        raw[section]["schema"] = str(EXAMPLE_TASK.parent / raw[section]["schema"])
    if coordination is not None:
        raw["coordination"] = coordination
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_without_the_section_every_process_coordinates_itself(tmp_path: Path) -> None:
    spec = load_task(_task(tmp_path, None)).coordination
    assert spec.backend == "process" and not spec.shared


def test_a_redis_section_is_read_whole(tmp_path: Path) -> None:
    raw = {
        "backend": "redis",
        "url": "redis://127.0.0.1:16379/0",
        "password_env": "REDIS_PASSWORD",
        "namespace": "reviews-prod",
        "timeout_s": 1.5,
    }
    spec = load_task(_task(tmp_path, raw)).coordination
    assert spec.shared and spec.model_dump() == raw


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"backend": "zookeeper"}, "coordination.backend: Input should be 'process' or 'redis'"),
        ({"backend": "redis"}, "backend 'redis' needs url"),
        ({"backend": "redis", "url": "http://127.0.0.1:16379"}, "url must be redis://"),
        (
            {"backend": "redis", "url": "redis://:hunter2-pass@127.0.0.1:16379/0"},
            "url must not hold a password",
        ),
        ({"url": "redis://127.0.0.1:16379/0"}, "'url' does not apply to backend 'process'"),
        ({"backend": "redis", "url": "redis://h/0", "ttl_s": 5}, "coordination.ttl_s"),
        ({"backend": "redis", "url": "redis://h/0", "namespace": "a b"}, "namespace"),
        ({"backend": "redis", "url": "redis://h/0", "timeout_s": 0}, "timeout_s"),
    ],
)
def test_a_wrong_section_is_a_one_line_error_naming_the_key(
    tmp_path: Path, section: dict[str, Any], expected: str
) -> None:
    with pytest.raises(TaskConfigError) as raised:
        load_task(_task(tmp_path, section))
    message = str(raised.value)
    assert expected in message and "\n" not in message
    assert "hunter2" not in message


class SharedBudget:
    """One spend for several guards (as Redis is for several workers); can be lost."""

    def __init__(self) -> None:
        self.total = 0.0
        self.lost = False

    async def add(self, cost_usd: float) -> float:
        if self.lost:
            raise CoordinationLost("coordination: budget gone")
        self.total += cost_usd
        return self.total

    async def spent(self) -> float:
        if self.lost:
            raise CoordinationLost("coordination: budget gone")
        return self.total


def test_a_budget_spent_by_one_worker_stops_the_other_before_its_next_record() -> None:
    shared = SharedBudget()
    one, other = (RunGuard(None, 10, 1.0, shared) for _ in range(2))

    async def go() -> list[str | None]:
        seen = [await other.check()]
        await one.observe(dead_lettered=False, cost_usd=0.6)
        seen.append(await other.check())
        await one.observe(
            dead_lettered=False, cost_usd=0.5
        )  # 1.1 of 1.0: the first worker trips ...
        seen.append(one.stop_reason)
        seen.append(await other.check())  # ... and the other sees it before starting
        return seen

    assert asyncio.run(go()) == [
        None,
        None,
        "budget: spent $1.1000 of policy.budget_usd $1.0000",
        "budget: spent $1.1000 of policy.budget_usd $1.0000",
    ]


def test_without_a_budget_nothing_is_asked_of_the_store() -> None:
    shared = SharedBudget()
    shared.lost = True  # would raise if asked
    guard = RunGuard(None, 10, None, shared)

    async def go() -> str | None:
        await guard.observe(dead_lettered=False, cost_usd=5.0)
        return await guard.check()

    assert asyncio.run(go()) is None


def _priced(name: str, cost: float, answers: int) -> Scripted:
    """A scripted provider whose every answer costs ``cost``."""
    provider = Scripted(name, [json.dumps(GOOD)] * answers)
    plain = provider.complete

    async def complete(messages: Any, schema: Any, *, kind: str) -> Any:
        completion = await plain(messages, schema, kind=kind)
        attempts = tuple(Attempt(**{**a.__dict__, "cost_usd": cost}) for a in completion.attempts)
        return type(completion)(completion.text, completion.finish_reason, attempts)

    provider.complete = complete  # type: ignore[method-assign]
    return provider


def _with_budget(budget_usd: float) -> Any:
    policy = JOB.task.policy.model_copy(update={"budget_usd": budget_usd})
    return compile_job(JOB.task.model_copy(update={"policy": policy}))


def test_a_lost_store_before_a_record_halts_the_run_as_a_systemic_fault() -> None:
    shared = SharedBudget()
    shared.lost = True
    enricher = Enricher(_with_budget(1.0), [_priced("a", 0.1, 3)], budget=shared)  # type: ignore[list-item]
    results = asyncio.run(enricher.enrich_all([RECORD] * 3))
    assert all(isinstance(r, Skipped) for r in results)  # not dead letters: read again
    assert (enricher.control.halted() or "").startswith("systemic: coordination: budget gone")


def test_a_lost_store_after_a_record_keeps_its_outcome_and_halts() -> None:
    shared = SharedBudget()
    enricher = Enricher(_with_budget(1.0), [_priced("a", 0.1, 3)], budget=shared)  # type: ignore[list-item]

    async def go() -> list[Any]:
        first = await enricher.enrich_one(RECORD)
        original = shared.add

        async def add_then_lose(cost_usd: float) -> float:
            shared.lost = True
            return await original(cost_usd)

        shared.add = add_then_lose  # type: ignore[method-assign]
        return [first, await enricher.enrich_one(RECORD), await enricher.enrich_one(RECORD)]

    first, second, third = asyncio.run(go())
    assert isinstance(first, Enriched) and isinstance(second, Enriched)  # answered and billed
    assert isinstance(third, Skipped)
    assert (enricher.control.halted() or "").startswith("systemic: ")


def test_a_lost_store_inside_a_call_is_never_the_records_dead_letter() -> None:
    class LostLimits(Scripted):
        async def complete(self, messages: Any, schema: Any, *, kind: str) -> Any:
            raise CoordinationLost("coordination.url redis://h/0: Redis failed (ping)")

    enricher = Enricher(JOB, [LostLimits("a", [])])  # type: ignore[list-item]
    results = asyncio.run(enricher.enrich_all([RECORD, RECORD]))
    assert all(isinstance(r, Skipped) for r in results)
    assert (enricher.control.halted() or "").startswith("systemic: coordination.url redis://h/0")


def test_the_in_process_default_needs_nothing() -> None:
    coordination = InProcess()
    asyncio.run(coordination.ping())
    assert coordination.name == "process"
