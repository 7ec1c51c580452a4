"""Integration fixtures: the real broker and the real local model, started by deploy/.

``.ci/run`` starts both (deploy/kafka.sh start, deploy/llm.sh start). Run by hand the same
way; these tests fail, not skip, when a service is missing.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest
import yaml
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient

from pipelines.enrich_pipeline import build_pipeline
from pipelines.execute import execute
from pipelines.summary import RunSummary
from schemas import load_schema
from tests.conftest import REPO, SCHEMAS
from tests.fault_server import FaultServer
from transforms.core.config.task import TaskSpec, load_task
from transforms.core.formats import framing
from transforms.core.job import Job, compile_job
from transforms.kafka.admin import ensure_topics
from transforms.kafka.reader import read_range, snapshot_ranges

KAFKA = os.environ.get("LLM_ENRICH_KAFKA", "127.0.0.1:19092")
CLI = [sys.executable, "-m", "pipelines.cli"]  # ``llm-enrich`` as a user runs it
LLM_URL = os.environ.get("LLM_ENRICH_LLM_URL", "http://127.0.0.1:18080/v1")
TEST_SCHEMAS = REPO / "tests" / "data"

logging.getLogger("kafka").setLevel(logging.ERROR)

# A follow run's outage: each call tried once, a provider's circuit opens after two
# failures and probes again after a second (test_streaming on Prism, test_flink).
OUTAGE_POLICY = {
    "attempts_per_provider": 1,
    "circuit_failure_threshold": 2,
    "circuit_cooldown_s": 1,
    "max_in_flight": 4,
}


@pytest.fixture(scope="session", autouse=True)
def kafka_broker() -> None:
    try:
        KafkaAdminClient(bootstrap_servers=KAFKA, request_timeout_ms=5000).close()
    except Exception as exc:
        pytest.fail(f"no Kafka broker at {KAFKA} ({exc}); run deploy/kafka.sh start")


@pytest.fixture(scope="session")
def llm_server() -> None:
    health = LLM_URL.removesuffix("/v1") + "/health"
    try:
        urllib.request.urlopen(health, timeout=5).read()
    except Exception as exc:
        pytest.fail(f"no llama-server at {health} ({exc}); run deploy/llm.sh start")


REDIS = os.environ.get("LLM_ENRICH_REDIS", "redis://127.0.0.1:16379/0")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The shared Redis (``deploy/redis.sh``); the tests fail, not skip, without it."""
    import redis

    try:
        redis.Redis.from_url(REDIS, socket_connect_timeout=5).ping()
    except redis.RedisError as exc:
        pytest.fail(f"no Redis at {REDIS} ({exc}); run deploy/redis.sh start")
    return REDIS


def start_redis(folder: Path, password: str | None = None) -> tuple[str, subprocess.Popen[bytes]]:
    """A redis-server of a test's own (the shared one must never be killed): its URL (no
    password in it) and its process."""
    import shutil

    import redis

    binary = shutil.which("redis-server")
    assert binary, "redis-server is not installed; run deploy/redis.sh install"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
    command += ["--dir", str(folder), *(["--requirepass", password] if password else [])]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, password=password)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            return url, process
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)


def flink_sh(action: str) -> subprocess.CompletedProcess[str]:
    """``deploy/flink.sh <action>`` (its ports and state from the environment)."""
    env = dict(os.environ, PYTHON=sys.executable)
    script = REPO / "deploy" / "flink.sh"
    return subprocess.run(
        ["bash", str(script), action], env=env, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="session")
def flink_cluster() -> Iterator[None]:
    """The local Flink cluster (``deploy/flink.sh start``), stopped at the end if this
    session started it; the tests fail, not skip, when it cannot start."""
    already = flink_sh("status").returncode == 0
    started = time.monotonic()
    done = flink_sh("start")
    if done.returncode != 0:
        pytest.fail(f"deploy/flink.sh start failed:\n{done.stdout}\n{done.stderr}")
    print(f"\nflink cluster ready in {time.monotonic() - started:.1f} s: {done.stdout.strip()}")
    yield
    if not already:
        flink_sh("stop")


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server of this test's own, killed at the end."""
    url, process = start_redis(tmp_path)
    yield url, process
    process.kill()
    process.wait()


def closed_port_url() -> str:
    """An OpenAI base URL on which nothing listens: connection refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def local_provider(name: str = "local", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "base_url": LLM_URL,
        "model": "smollm2-135m",
        "timeout_s": 60,
        "max_concurrency": 4,
        **extra,
    }


def down_provider(name: str = "down") -> dict[str, Any]:
    return {"name": name, "base_url": closed_port_url(), "model": "none", "timeout_s": 5}


MakeTask = Callable[..., Job]


def new_task(folder: Path, providers: Sequence[dict[str, Any]], **overrides: Any) -> Job:
    """A task on fresh topics (unique names) with the small verdict output schema; its file
    is written to ``folder``. ``overrides`` merge into the task's sections."""
    run = uuid.uuid4().hex[:8]
    raw: dict[str, Any] = {
        "name": f"it-{run}",
        "kafka": {
            "bootstrap_servers": KAFKA,
            "input_topic": f"it-{run}-in",
            "output_topic": f"it-{run}-out",
            "dead_letter_topic": f"it-{run}-dlq",
        },
        "input": {"format": "avro", "schema": str(SCHEMAS / "examples.reviews.Review.avsc")},
        "output": {"schema": str(TEST_SCHEMAS / "tests.ReviewVerdict.avsc")},
        "prompt": {
            "system": "Classify the review. Answer with JSON only.",
            "template": "Review: {{ text }}",
            "examples": [
                {
                    "input": {"text": "Broke after a day. Refunded."},
                    "output": {"sentiment": "negative", "rating": 1},
                },
                {
                    "input": {"text": "Works great, love it."},
                    "output": {"sentiment": "positive", "rating": 5},
                },
            ],
        },
        "providers": list(providers),
        "generation": {"temperature": 0, "seed": 7, "max_tokens": 40},
        "policy": {"attempts_per_provider": 1, "max_reasks": 1, "max_in_flight": 16},
        # off unless a test is about it: other tests count the calls of repeated runs
        "cache": {"backend": "off"},
    }
    for key, value in overrides.items():
        raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
    path = folder / f"task-{run}.yaml"
    path.write_text(yaml.safe_dump(raw))
    job = compile_job(load_task(path))
    kafka = job.task.kafka
    ensure_topics(kafka, {kafka.input_topic: 3, kafka.output_topic: 3, kafka.dead_letter_topic: 1})
    return job


@pytest.fixture
def make_task(tmp_path: Path) -> MakeTask:
    """A task on fresh topics (unique names) with the small verdict output schema."""

    def make(providers: Sequence[dict[str, Any]], **overrides: Any) -> Job:
        return new_task(tmp_path, providers, **overrides)

    return make


def produce(job: Job, values: Sequence[bytes], partition: int | None = None) -> None:
    """Write to the input topic: round-robin over partitions 0-2, or to ``partition``."""
    producer = KafkaProducer(bootstrap_servers=KAFKA, acks="all")
    for index, value in enumerate(values):
        target = index % 3 if partition is None else partition
        producer.send(job.task.kafka.input_topic, value=value, partition=target)
    producer.flush(timeout=30)
    producer.close()


def sample_reviews(count: int) -> list[dict[str, Any]]:
    path = REPO / "pipelines" / "examples" / "reviews" / "reviews.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [rows[i % len(rows)] for i in range(count)]


def run_job(task: TaskSpec) -> RunSummary:
    """Run the drain pipeline in-process on the DirectRunner, as ``llm-enrich run`` does."""
    return execute(build_pipeline(task)[0])


def committed_offsets(job: Job) -> dict[int, int | None]:
    kafka = job.task.kafka
    consumer = KafkaConsumer(
        bootstrap_servers=KAFKA, group_id=job.task.consumer_group, enable_auto_commit=False
    )
    try:
        partitions = sorted(consumer.partitions_for_topic(kafka.input_topic) or [])
        return {p: consumer.committed(TopicPartition(kafka.input_topic, p)) for p in partitions}
    finally:
        consumer.close(autocommit=False)


def end_offsets(job: Job) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=KAFKA)
    try:
        topic = job.task.kafka.input_topic
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        return {tp.partition: offset for tp, offset in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


Server = TypeVar("Server", bound="_Startable")


class _Startable(Protocol):
    def start(self) -> object: ...

    def stop(self) -> None: ...


def servers_on_demand(make: Callable[..., Server]) -> Iterator[Callable[..., Server]]:
    """A fixture body: start servers made by ``make`` on demand; stop them all at the end."""
    started: list[Server] = []

    def start(**kwargs: Any) -> Server:
        server = make(**kwargs)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def fault_server() -> Iterator[Callable[..., FaultServer]]:
    """Start fault servers on demand; all are stopped at the end of the test."""
    yield from servers_on_demand(FaultServer)


def fault_provider(server: FaultServer, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "base_url": server.base_url,
        "model": "fault",
        "timeout_s": 5,
        "max_concurrency": 64,
        **extra,
    }


def reviews(count: int) -> list[bytes]:
    schema = load_schema(SCHEMAS / "examples.reviews.Review.avsc")
    return [framing.encode(r, schema, "single-object") for r in sample_reviews(count)]


REGISTRY = os.environ.get("LLM_ENRICH_REGISTRY", "http://127.0.0.1:18081/apis/ccompat/v7")


@pytest.fixture(scope="session")
def registry_url() -> str:
    try:
        urllib.request.urlopen(REGISTRY + "/subjects", timeout=5).read()
    except Exception as exc:
        pytest.fail(f"no schema registry at {REGISTRY} ({exc}); run deploy/registry.sh start")
    return REGISTRY


def raw_output_values(job: Job) -> list[bytes | None]:
    """The output topic's values exactly as written (framing included)."""
    kafka = job.task.kafka
    return [
        record.value
        for range_ in snapshot_ranges(kafka, kafka.output_topic, None)
        for record in read_range(kafka, range_)
    ]


def start_run(job: Job, *args: str) -> subprocess.Popen[str]:
    """``llm-enrich run --task ...`` as a user starts it, in a process group of its own (so
    that kill -9 takes its Prism with it)."""
    assert job.task.source_path is not None
    return subprocess.Popen(
        [*CLI, "run", "--task", str(job.task.source_path), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Poll ``condition`` until it holds; how long that took. Fails after ``timeout_s``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.1)
    return time.monotonic() - started
