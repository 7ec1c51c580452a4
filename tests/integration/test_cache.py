"""The response cache against the real broker, a real OpenAI-compatible HTTP server
(``tests/fault_server.py``, which counts the calls it gets) and the real Redis
(``deploy/redis.sh``): a rerun of the same records asks nobody; another prompt or output
schema asks again; ``--no-cache`` asks again; a cache missing at start stops the run
before anything is read; a Redis gone mid-run costs nothing but the savings."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from pipelines import exit_codes
from pipelines.summary import RunSummary
from tests.fault_server import FaultServer, Reply
from tests.integration.conftest import (
    CLI,
    TEST_SCHEMAS,
    MakeTask,
    closed_port_url,
    committed_offsets,
    end_offsets,
    fault_provider,
    produce,
    reviews,
    run_job,
    sample_reviews,
)
from transforms.cache.redis_store import PREFIX
from transforms.core.cache.answers import AnswerCache
from transforms.core.cache.entry import ENTRY_FIELDS
from transforms.core.config.task import TaskSpec
from transforms.core.records import KafkaRecord
from transforms.kafka.reader import read_range, snapshot_ranges

PRICING = {"prompt_per_million": 3.0, "completion_per_million": 15.0}
# what describes this run's calls, so differs between a miss and a hit of the same answer
PER_RUN = {"llm_enrich.cache", "llm_enrich.attempts", "llm_enrich.usage"}


def a_prompt() -> dict[str, str]:
    """A system message of this test's own, so no answer cached by an earlier test run
    (Redis keeps them) can be a hit here."""
    return {"system": f"Classify the review ({uuid.uuid4().hex}). Answer with JSON only."}


def cached_task(
    make_task: MakeTask,
    server: FaultServer,
    cache: dict[str, Any],
    provider: dict[str, Any] | None = None,
    **extra: Any,
) -> TaskSpec:
    provider = {**fault_provider(server, "fault", pricing=PRICING), **(provider or {})}
    return make_task([provider], cache=cache, prompt=a_prompt(), **extra).task


def again(task: TaskSpec, **updates: Any) -> TaskSpec:
    """The same task under a fresh consumer group: it reads the input topic again."""
    kafka = task.kafka.model_copy(update={"consumer_group": f"g-{uuid.uuid4().hex[:8]}"})
    return task.model_copy(update={"kafka": kafka, **updates})


def outputs(task: TaskSpec) -> list[KafkaRecord]:
    kafka = task.kafka
    ranges = snapshot_ranges(kafka, kafka.output_topic, None)
    return [record for range_ in ranges for record in read_range(kafka, range_)]


def by_source(records: list[KafkaRecord]) -> dict[bytes, list[KafkaRecord]]:
    grouped: dict[bytes, list[KafkaRecord]] = {}
    for record in records:
        headers = dict(record.headers)
        coordinates = b"/".join(
            headers[f"llm_enrich.source.{k}"] or b"" for k in ("partition", "offset")
        )
        grouped.setdefault(coordinates, []).append(record)
    return grouped


def assert_served_from_the_cache(first: RunSummary, second: RunSummary, count: int) -> None:
    assert first.get("written.output") == second.get("written.output") == count
    assert (first.get("cache_misses"), first.get("cache_hits")) == (count, 0)
    assert (second.get("cache_hits"), second.get("cache_misses")) == (count, 0)
    assert second.get("llm_calls") == 0 and second.get("cost_micro_usd") == 0
    assert second.get("cache_saved_calls") == first.get("llm_calls") == count
    tokens = first.get("prompt_tokens") + first.get("completion_tokens")
    assert second.get("cache_saved_tokens") == tokens > 0
    assert second.get("cache_saved_micro_usd") == first.get("cost_micro_usd") > 0
    assert second.exit_code == exit_codes.OK


def assert_same_outputs_but_the_cache_header(task: TaskSpec, count: int) -> None:
    grouped = by_source(outputs(task))
    assert len(grouped) == count
    for pair in grouped.values():  # the two runs' outputs may be in different partitions
        hit, miss = sorted(pair, key=lambda r: dict(r.headers)["llm_enrich.cache"] or b"")
        assert hit.value == miss.value and hit.key == miss.key
        marks = dict(miss.headers)["llm_enrich.cache"], dict(hit.headers)["llm_enrich.cache"]
        assert marks == (b"miss", b"hit")
        assert [h for h in miss.headers if h[0] not in PER_RUN] == [
            h for h in hit.headers if h[0] not in PER_RUN
        ]
        assert json.loads(dict(hit.headers)["llm_enrich.attempts"] or b"") == []


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_a_rerun_of_the_same_records_asks_no_provider(
    backend: str,
    make_task: MakeTask,
    fault_server: Any,
    tmp_path: Path,
    request: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = fault_server()
    sqlite = tmp_path / "answers.sqlite"
    cache: dict[str, Any] = {"backend": "sqlite", "path": str(sqlite), "ttl_s": 3600}
    if backend == "redis":
        cache = {"backend": "redis", "url": request.getfixturevalue("redis_url"), "ttl_s": 3600}
    secret = f"sk-test-{uuid.uuid4().hex}"
    monkeypatch.setenv("LLM_ENRICH_TEST_CACHE_KEY", secret)
    task = cached_task(make_task, server, cache, {"api_key_env": "LLM_ENRICH_TEST_CACHE_KEY"})
    produce_records(task, 12)

    first = run_job(task)
    assert server.stats.requests == 12
    second = run_job(again(task))

    assert server.stats.requests == 12  # not one call the second time
    assert_served_from_the_cache(first, second, 12)
    assert_same_outputs_but_the_cache_header(task, 12)
    lines = "\n".join(second.lines())
    assert "response cache      hits 12, misses 0" in lines
    assert f"saved by hits     calls 12, tokens {second.get('cache_saved_tokens')}" in lines
    stored = stored_values(backend, sqlite, task)
    assert len(stored) == 12  # the 12 reviews are 12 different questions
    assert all(secret.encode() not in value and b"Bearer" not in value for value in stored)
    assert all(set(json.loads(value)) == ENTRY_FIELDS for value in stored)


def stored_values(backend: str, sqlite: Path, task: TaskSpec) -> list[bytes]:
    """Every entry this test stored: the SQLite file's rows, or the Redis values under the
    keys of this test's 12 questions (their TTL checked)."""
    if backend == "sqlite":
        with sqlite3.connect(sqlite) as db:
            return [bytes(row[0]) for row in db.execute("SELECT value FROM answers")]
    job = compile(task)
    cache = AnswerCache(job, backend=None)  # type: ignore[arg-type]
    keys = [cache.keys(job.prompt.messages(review))[0] for review in sample_reviews(12)]
    client = redis.Redis.from_url(task.cache.url or "")
    for key in keys:
        assert 0 < client.pttl(PREFIX + key) <= 3_600_000
    return [v for v in client.mget([PREFIX + key for key in keys]) if isinstance(v, bytes)]


def produce_records(task: TaskSpec, count: int) -> None:
    from transforms.core.job import compile_job

    produce(compile_job(task), reviews(count))


def test_another_prompt_or_output_schema_asks_again(
    make_task: MakeTask, fault_server: Any, tmp_path: Path
) -> None:
    """Never an answer produced under another prompt or schema; the old entries stay."""
    server = fault_server()
    task = cached_task(
        make_task, server, {"backend": "sqlite", "path": str(tmp_path / "answers.sqlite")}
    )
    produce_records(task, 8)
    run_job(task)
    assert server.stats.requests == 8

    reworded = task.prompt.model_copy(update={"template": "Review text: {{ text }}"})
    summary = run_job(again(task, prompt=reworded))
    assert server.stats.requests == 16 and summary.get("cache_misses") == 8

    schema = json.loads((TEST_SCHEMAS / "tests.ReviewVerdict.avsc").read_text())
    schema["fields"].append({"name": "confident", "type": "boolean", "default": False})
    path = tmp_path / "tests.ReviewVerdict.v2.avsc"
    path.write_text(json.dumps(schema))
    output = task.output.model_copy(update={"schema_path": path})
    summary = run_job(again(task, output=output))
    assert server.stats.requests == 24 and summary.get("cache_hits") == 0

    summary = run_job(again(task))  # the first task's answers are still there
    assert server.stats.requests == 24 and summary.get("cache_hits") == 8


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=600)


def _with_group(task: TaskSpec, group: str) -> str:
    """Rewrite the task file under another consumer group; its path."""
    assert task.source_path is not None
    raw = yaml.safe_load(task.source_path.read_text())
    raw["kafka"]["consumer_group"] = group
    task.source_path.write_text(yaml.safe_dump(raw))
    return str(task.source_path)


def test_no_cache_asks_the_providers_and_leaves_the_cache_alone(
    make_task: MakeTask, fault_server: Any, tmp_path: Path
) -> None:
    server = fault_server()
    sqlite = tmp_path / "answers.sqlite"
    task = cached_task(make_task, server, {"backend": "sqlite", "path": str(sqlite)})
    produce_records(task, 6)
    run_job(task)
    assert server.stats.requests == 6

    done = _cli("run", "--task", _with_group(task, "g-no-cache"), "--no-cache")
    assert done.returncode == 0, done.stderr
    assert server.stats.requests == 12 and "response cache" not in done.stdout

    done = _cli("run", "--task", _with_group(task, "g-cached"))
    assert done.returncode == 0, done.stderr
    assert server.stats.requests == 12
    assert "response cache      hits 6, misses 0" in done.stdout


def test_redis_down_at_start_is_a_launch_error_naming_it(
    make_task: MakeTask, fault_server: Any
) -> None:
    server = fault_server()
    url = closed_port_url().replace("http", "redis").removesuffix("/v1") + "/0"
    task = cached_task(make_task, server, {"backend": "redis", "url": url, "timeout_s": 1})
    produce_records(task, 3)
    done = _cli("run", "--task", str(task.source_path))
    assert done.returncode == exit_codes.USAGE
    assert f"cache.url {url}: Redis does not answer (ConnectionError" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert server.stats.requests == 0


def test_a_worker_that_cannot_reach_its_cache_stops_the_run_before_any_call(
    make_task: MakeTask, fault_server: Any
) -> None:
    """What a worker does when the launch check passed and the cache went away since."""
    server = fault_server()
    url = closed_port_url().replace("http", "redis").removesuffix("/v1") + "/0"
    task = cached_task(make_task, server, {"backend": "redis", "url": url, "timeout_s": 1})
    produce_records(task, 6)
    summary = run_job(task)
    assert summary.exit_code == exit_codes.SYSTEMIC
    assert any("Redis does not answer" in reason for reason in summary.stop_reasons)
    assert server.stats.requests == 0 and summary.get("written.output") == 0
    assert summary.get("written.dead_letter") == 0
    assert all(offset in (None, 0) for offset in committed_offsets(compile(task)).values())


def compile(task: TaskSpec) -> Any:
    from transforms.core.job import compile_job

    return compile_job(task)


def test_redis_killed_mid_run_costs_only_the_savings(
    make_task: MakeTask,
    private_redis: tuple[str, subprocess.Popen[bytes]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, process = private_redis
    server = FaultServer(Reply.ok(delay_s=0.05))
    server.start()
    try:
        task = cached_task(
            make_task,
            server,
            {"backend": "redis", "url": url, "timeout_s": 1},
            policy={"max_in_flight": 2},
        )
        produce_records(task, 40)

        def kill_when_busy() -> None:
            while server.stats.requests < 10:
                time.sleep(0.01)
            process.kill()

        killer = threading.Thread(target=kill_when_busy, daemon=True)
        killer.start()
        summary = run_job(task)
        killer.join(timeout=30)
    finally:
        server.stop()

    assert process.poll() is not None  # it was killed while records were being enriched
    assert summary.exit_code == exit_codes.OK
    assert summary.get("written.output") == 40 and server.stats.requests == 40
    assert summary.get("cache_errors") >= 1 and summary.get("cache_hits") == 0
    assert committed_offsets(compile(task)) == end_offsets(compile(task))
    warnings = [r for r in caplog.records if r.name == "llm_enrich.cache"]
    assert len(warnings) == 1 and "going on without it" in warnings[0].getMessage()
