"""Systemic faults stop the run instead of dead-lettering the backlog; a plain rerun after
the fix enriches everything. Launch checks refuse what can be known wrong up front."""

from __future__ import annotations

import http.server
import subprocess
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from pipelines import exit_codes
from pipelines.topics import topic_records
from tests.fault_server import FaultServer, Reply
from tests.integration.conftest import (
    CLI,
    MakeTask,
    closed_port_url,
    committed_offsets,
    end_offsets,
    fault_provider,
    produce,
    reviews,
    run_job,
)
from transforms.core.job import Job


def _run(job: Job, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    assert job.task.source_path is not None
    return subprocess.run(
        [*CLI, "run", "--task", str(job.task.source_path)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def _counts(job: Job) -> tuple[int, int]:
    return len(list(topic_records(job, dead_letters=False))), len(
        list(topic_records(job, dead_letters=True))
    )


@pytest.fixture
def html_server() -> Iterator[str]:
    """A web server that is not an OpenAI-compatible API: every POST gets an HTML page."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = b"<html><body>Welcome to nginx!</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


@pytest.mark.parametrize(
    ("reply", "cause"),
    [
        (Reply.status(401), "authentication failed (401)"),
        (Reply.status(403), "permission denied (403)"),
        (Reply.status(404, "The model `gpt-9` does not exist"), "not found (404)"),
    ],
)
def test_every_provider_refusing_us_stops_the_run_and_a_rerun_after_the_fix_does_it_all(
    make_task: MakeTask,
    fault_server: Callable[..., FaultServer],
    reply: Any,
    cause: str,
) -> None:
    primary = fault_server(default=reply)
    fallback = fault_server(default=Reply.status(401))
    job = make_task([fault_provider(primary, "primary"), fault_provider(fallback, "fallback")])
    produce(job, reviews(40))

    stopped = _run(job)

    assert stopped.returncode == exit_codes.SYSTEMIC, stopped.stderr
    assert f"llm-enrich: stopped: systemic: every provider failed: primary: {cause}" in (
        stopped.stderr
    )
    assert "STOPPED EARLY" in stopped.stdout
    assert _counts(job) == (0, 0), "nothing is dead-lettered because of a systemic fault"
    assert all(v in (None, 0) for v in committed_offsets(job).values())
    assert primary.stats.requests < 40, "the run stopped instead of trying every record"

    primary.set_default(Reply.ok())  # the fault is fixed: a plain rerun enriches it all
    done = _run(job)
    assert done.returncode == exit_codes.OK, done.stderr
    assert _counts(job) == (40, 0)
    assert committed_offsets(job) == end_offsets(job)


def test_a_provider_that_is_not_an_openai_api_stops_the_run(
    make_task: MakeTask, html_server: str
) -> None:
    job = make_task([{"name": "web", "base_url": html_server, "model": "m", "timeout_s": 5}])
    produce(job, reviews(10))
    stopped = _run(job)
    assert stopped.returncode == exit_codes.SYSTEMIC, stopped.stderr
    assert "not an OpenAI-compatible chat completions endpoint" in stopped.stderr
    assert _counts(job) == (0, 0)


def test_every_circuit_open_stops_a_drain_run_without_dead_lettering_the_backlog(
    make_task: MakeTask, fault_server: Callable[..., FaultServer]
) -> None:
    down = fault_server(default=Reply.status(503))
    job = make_task(
        [fault_provider(down, "down")],
        policy={"circuit_failure_threshold": 2, "circuit_cooldown_s": 600, "max_in_flight": 4},
    )
    produce(job, reviews(60))
    summary = run_job(job.task)
    outputs, dead = _counts(job)
    assert summary.exit_code == exit_codes.SYSTEMIC
    assert any(r.startswith("outage: every provider failed") for r in summary.reasons)
    # only the records in flight before the circuit opened failed on their own
    assert outputs == 0 and dead < 2  # fewer than circuit_failure_threshold
    assert sum(v or 0 for v in committed_offsets(job).values()) <= dead


def test_the_old_behaviour_is_one_policy_key_away(
    make_task: MakeTask, fault_server: Callable[..., FaultServer]
) -> None:
    refusing = fault_server(default=Reply.status(401))
    job = make_task(
        [fault_provider(refusing, "refusing")],
        policy={"on_systemic_fault": "dead_letter", "max_dead_letter_ratio": None},
    )
    produce(job, reviews(12))
    summary = run_job(job.task)
    assert summary.exit_code == exit_codes.OK
    assert _counts(job) == (0, 12)
    assert committed_offsets(job) == end_offsets(job)


def _rewrite(job: Job, **kafka: Any) -> None:
    assert job.task.source_path is not None
    raw = yaml.safe_load(job.task.source_path.read_text())
    raw["kafka"].update(kafka)
    job.task.source_path.write_text(yaml.safe_dump(raw))


def test_launch_checks_exit_2_in_one_line_before_reading(
    make_task: MakeTask, fault_server: Callable[..., FaultServer]
) -> None:
    server = fault_server(default=Reply.ok())
    job = make_task([fault_provider(server, "p", api_key_env="LLM_ENRICH_TEST_KEY")])
    produce(job, reviews(5))

    no_key = _run(job, env={"PATH": "/usr/bin:/bin"})
    assert no_key.returncode == exit_codes.USAGE
    lines = no_key.stderr.strip().splitlines()
    assert len(lines) == 1 and "LLM_ENRICH_TEST_KEY is not set" in lines[0]

    _rewrite(job, output_topic=job.task.kafka.output_topic + "-missing")
    env = {"PATH": "/usr/bin:/bin", "LLM_ENRICH_TEST_KEY": "sk-test-123456789"}
    missing = _run(job, env=env)
    assert missing.returncode == exit_codes.USAGE
    assert "kafka.output_topic: topic" in missing.stderr and "does not exist" in missing.stderr
    assert server.stats.requests == 0
    assert all(v is None for v in committed_offsets(job).values())

    _rewrite(job, create_topics=True)
    created = _run(job, env=env)
    assert created.returncode == exit_codes.OK, created.stderr
    assert "sk-test-123456789" not in created.stdout + created.stderr
    assert server.stats.requests == 5


def test_an_unreachable_registry_is_a_launch_error(make_task: MakeTask) -> None:
    job = make_task(
        [{"name": "p", "base_url": closed_port_url(), "model": "m"}],
        input={"framing": "confluent", "registry_url": closed_port_url()},
    )
    done = _run(job)
    assert done.returncode == exit_codes.USAGE
    assert "does not answer" in done.stderr and len(done.stderr.strip().splitlines()) == 1
