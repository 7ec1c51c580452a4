"""A coordination store that cannot be used is an environmental fault: at launch a one-line
error (exit 2, nothing read); mid-run the run stops (exit 3, nothing dead-lettered for it),
never going on with per-process limits. Against a redis-server of the test's own."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable

import pytest

from pipelines import exit_codes
from pipelines.topics import topic_records
from tests.fault_server import FaultServer, Reply
from tests.integration.conftest import (
    CLI,
    MakeTask,
    closed_port_url,
    committed_offsets,
    fault_provider,
    produce,
    reviews,
    run_job,
)


def _launch(task_path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "run", "--task", task_path, "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_redis_down_at_launch_is_a_one_line_error_naming_coordination_url(
    make_task: MakeTask, fault_server: Callable[..., FaultServer]
) -> None:
    url = closed_port_url().replace("http", "redis").removesuffix("/v1") + "/0"
    job = make_task(
        [fault_provider(fault_server(), "p")],
        coordination={"backend": "redis", "url": url, "timeout_s": 1},
    )
    produce(job, reviews(3))
    assert job.task.source_path is not None
    done = _launch(str(job.task.source_path))
    assert done.returncode == exit_codes.USAGE, done.stderr
    assert f"coordination.url {url}: Redis failed (ping: ConnectionError" in done.stderr
    assert committed_offsets(job) == {0: None, 1: None, 2: None}  # nothing read


def test_a_missing_password_variable_is_named_at_launch(
    make_task: MakeTask,
    fault_server: Callable[..., FaultServer],
    private_redis: tuple[str, subprocess.Popen[bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("IT_COORDINATION_PASSWORD", raising=False)
    job = make_task(
        [fault_provider(fault_server(), "p")],
        coordination={
            "backend": "redis",
            "url": private_redis[0],
            "password_env": "IT_COORDINATION_PASSWORD",
        },
    )
    assert job.task.source_path is not None
    done = _launch(str(job.task.source_path))
    assert done.returncode == exit_codes.USAGE
    assert "coordination.password_env: IT_COORDINATION_PASSWORD is not set" in done.stderr


def test_redis_killed_mid_run_stops_the_run_as_a_systemic_fault(
    make_task: MakeTask,
    fault_server: Callable[..., FaultServer],
    private_redis: tuple[str, subprocess.Popen[bytes]],
) -> None:
    url, process = private_redis
    server = fault_server(default=Reply.ok(delay_s=0.05))
    in_flight = 4
    job = make_task(
        [fault_provider(server, "p", rpm=6000)],
        coordination={"backend": "redis", "url": url, "timeout_s": 1},
        policy={"max_in_flight": in_flight},
    )
    records = 200
    produce(job, reviews(records))

    killed_at: list[int] = []

    def kill_when_busy() -> None:
        while server.stats.requests < 10:
            time.sleep(0.01)
        process.kill()
        killed_at.append(server.stats.requests)

    killer = threading.Thread(target=kill_when_busy, daemon=True)
    killer.start()
    summary = run_job(job.task)
    killer.join(timeout=30)

    assert killed_at, "the run ended before Redis was killed"
    assert summary.exit_code == exit_codes.SYSTEMIC
    reason = " ".join(summary.stop_reasons)
    assert f"coordination.url {url}: Redis failed" in reason, reason
    # no call went out on per-process limits: only those already admitted when it died
    assert server.stats.requests <= killed_at[0] + in_flight
    assert list(topic_records(job, dead_letters=True)) == []  # nothing dead-lettered for it
    written = len(list(topic_records(job, dead_letters=False)))
    assert written < records
    assert sum(offset or 0 for offset in committed_offsets(job).values()) <= written
