"""Against the real secure broker (SASL_SSL, SCRAM-SHA-512, ACLs: ``deploy/kafka-secure.sh``):
a run over SASL_SSL works; each wrong connection setting stops ``run`` at launch in a few
seconds with exactly one line naming the cause and the setting to check (and no
kafka-python log line); a user who may read but not write stops with exit 3.

The broker is started through the project's script when it is not running (``.ci/run``
starts it with ``deploy/services.sh start``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines import exit_codes
from tests.conftest import REPO
from tests.fault_server import FaultServer, Reply
from tests.integration.conftest import (
    CLI,
    KAFKA,
    MakeTask,
    closed_port_url,
    fault_provider,
    reviews,
)
from transforms.core.job import Job
from transforms.kafka.client import producer

PORT = int(os.environ.get("LLM_ENRICH_KAFKA_SECURE_PORT", "19094"))
SERVER = f"127.0.0.1:{PORT}"
CLIENT = Path(os.environ.get("LLM_ENRICH_STATE", REPO / ".local")) / "kafka-secure" / "client"
PASSWORD_ENV = "IT_KAFKA_PASSWORD"
LAUNCH_S = 10  # a launch check answers in a few seconds (kafka-python alone waited 30 s)


@dataclass(frozen=True)
class SecureBroker:
    server: str
    ca: Path

    def password(self, user: str) -> str:
        return (CLIENT / f"KAFKA_{user.upper()}_PASSWORD").read_text()


@pytest.fixture(scope="session")
def secure_broker() -> SecureBroker:
    started = subprocess.run(
        ["bash", str(REPO / "deploy" / "kafka-secure.sh"), "start"],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=180,
    )
    if started.returncode != 0:
        pytest.fail(f"deploy/kafka-secure.sh start failed: {started.stderr[-2000:]}")
    return SecureBroker(SERVER, CLIENT / "ca.pem")


def _client(broker: SecureBroker, user: str = "enricher", **changes: Any) -> dict[str, Any]:
    settings = {
        "security_protocol": "SASL_SSL",
        "ssl_cafile": str(broker.ca),
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": user,
        **changes,
    }
    return {k: v for k, v in settings.items() if v is not None}


@pytest.fixture
def secure_job(
    make_task: MakeTask,
    fault_server: Callable[..., FaultServer],
    secure_broker: SecureBroker,
    monkeypatch: pytest.MonkeyPatch,
) -> Job:
    """A task as the enricher over SASL_SSL, its topics created and 6 reviews in its input."""
    monkeypatch.setenv(PASSWORD_ENV, secure_broker.password("enricher"))
    server = fault_server(default=Reply.ok())
    job = make_task(
        [fault_provider(server, "fault")],
        kafka={
            "bootstrap_servers": secure_broker.server,
            "sasl_password_env": PASSWORD_ENV,
            "client": _client(secure_broker),
        },
    )
    writer = producer(job.task.kafka)
    for value in reviews(6):
        writer.send(job.task.kafka.input_topic, value=value)
    writer.flush(timeout=30)
    writer.close()
    return job


def _rewrite(job: Job, **kafka: Any) -> Path:
    path = job.task.source_path
    assert path is not None
    raw = yaml.safe_load(path.read_text())
    raw["kafka"].update(kafka)
    path.write_text(yaml.safe_dump(raw))
    return path


def _run(task: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        [*CLI, "run", "--task", str(task), "--no-progress", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done, time.monotonic() - started


def test_a_run_over_sasl_ssl_enriches_everything(secure_job: Job) -> None:
    assert secure_job.task.source_path is not None
    done, _ = _run(secure_job.task.source_path)
    assert done.returncode == exit_codes.OK, done.stderr
    assert "records read        6" in done.stdout
    assert "not settled         0" in done.stdout


@pytest.fixture(scope="session")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA that did not sign the broker's certificate."""
    folder = tmp_path_factory.mktemp("other-ca")
    key, cert = str(folder / "ca.key"), str(folder / "ca.pem")
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=some other CA", "-keyout", key, "-out", cert),
        ],
        check=True,
        capture_output=True,
    )
    return folder / "ca.pem"


# case: (the task's kafka settings that change, the password in the environment, the line)
WRONG: dict[str, Callable[[SecureBroker, Path], tuple[dict[str, Any], str | None, str]]] = {
    "wrong password": lambda broker, other_ca: (
        {},
        "not-the-password",
        "kafka: authentication failed for user 'enricher' (SCRAM-SHA-512): "
        "check kafka.client.sasl_plain_username and kafka.sasl_password_env",
    ),
    "wrong CA file": lambda broker, other_ca: (
        {"client": _client(broker, ssl_cafile=str(other_ca))},
        None,
        "kafka: TLS certificate verify failed (self-signed certificate in certificate chain): "
        "check kafka.client.ssl_cafile",
    ),
    "plaintext to the TLS listener": lambda broker, other_ca: (
        {"client": {}, "sasl_password_env": None},
        None,
        f"kafka: the broker at {SERVER} speaks TLS but kafka.client.security_protocol is "
        "PLAINTEXT: set SSL or SASL_SSL (and kafka.client.ssl_cafile)",
    ),
    "TLS without SASL": lambda broker, other_ca: (
        {
            "client": {"security_protocol": "SSL", "ssl_cafile": str(broker.ca)},
            "sasl_password_env": None,
        },
        None,
        f"kafka: the listener at {SERVER} wants SASL (SCRAM-SHA-512) but "
        "kafka.client.security_protocol is SSL: set SASL_SSL, kafka.client.sasl_mechanism, "
        "sasl_plain_username and kafka.sasl_password_env",
    ),
}


@pytest.mark.parametrize("case", list(WRONG))
def test_a_wrong_setting_is_one_line_at_launch(
    secure_job: Job,
    secure_broker: SecureBroker,
    other_ca: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
) -> None:
    changes, password, line = WRONG[case](secure_broker, other_ca)
    task = _rewrite(secure_job, **changes)
    if password is not None:
        monkeypatch.setenv(PASSWORD_ENV, password)
    done, seconds = _run(task)
    assert done.returncode == exit_codes.USAGE, done.stderr
    assert done.stderr.splitlines() == [f"llm-enrich: error: {task}: {line}"]
    assert seconds < LAUNCH_S
    assert done.stdout == ""


def test_nothing_listening_is_the_only_cannot_reach(secure_job: Job) -> None:
    port = closed_port_url().split(":")[2].split("/")[0]
    task = _rewrite(secure_job, bootstrap_servers=f"127.0.0.1:{port}")
    done, seconds = _run(task)
    assert done.returncode == exit_codes.USAGE
    assert done.stderr.splitlines() == [
        f"llm-enrich: error: {task}: kafka: cannot reach 127.0.0.1:{port} "
        "(connection refused): check kafka.bootstrap_servers and that the broker runs"
    ]
    assert seconds < LAUNCH_S


def test_a_user_who_may_read_but_not_write_stops_the_run(
    secure_job: Job, secure_broker: SecureBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, secure_broker.password("reader"))
    task = _rewrite(secure_job, client=_client(secure_broker, user="reader"))
    done, _ = _run(task)
    assert done.returncode == exit_codes.SYSTEMIC, done.stderr
    stopped = [line for line in done.stderr.splitlines() if line.startswith("llm-enrich: stop")]
    assert len(stopped) == 1
    assert stopped[0].startswith(
        f"llm-enrich: stopped: systemic: cannot write to {secure_job.task.kafka.output_topic}: "
        "ClusterAuthorizationFailedError: the broker refused our producer"
    )
    assert "STOPPED EARLY" in done.stdout
    assert "dead-lettered       0" in done.stdout  # the backlog is not dead-lettered


def test_tls_to_the_plaintext_broker_is_one_line(
    make_task: MakeTask, fault_server: Callable[..., FaultServer]
) -> None:
    job = make_task([fault_provider(fault_server(default=Reply.ok()), "fault")])
    task = _rewrite(job, client={"security_protocol": "SSL"})
    done, seconds = _run(task)
    assert done.returncode == exit_codes.USAGE
    assert done.stderr.splitlines() == [
        f"llm-enrich: error: {task}: kafka: the broker at {KAFKA} does not speak TLS but "
        "kafka.client.security_protocol is SSL: set PLAINTEXT or SASL_PLAINTEXT"
    ]
    assert seconds < LAUNCH_S


TLS_DRAINS = 10


def _committed_and_end(job: Job) -> tuple[dict[int, int | None], dict[int, int]]:
    from kafka import TopicPartition

    from transforms.kafka.client import consumer

    kafka = job.task.kafka
    client = consumer(kafka, job.task.consumer_group)
    try:
        tps = [TopicPartition(kafka.input_topic, p) for p in range(3)]
        committed = {tp.partition: client.committed(tp) for tp in tps}
        end = {tp.partition: offset for tp, offset in client.end_offsets(tps).items()}
        return committed, end
    finally:
        client.close(autocommit=False)


def test_many_small_drains_over_sasl_ssl_each_commit_every_offset(
    make_task: MakeTask,
    fault_server: Callable[..., FaultServer],
    secure_broker: SecureBroker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.integration.conftest import run_job

    monkeypatch.setenv(PASSWORD_ENV, secure_broker.password("enricher"))
    server = fault_server(default=Reply.ok())
    failed = []
    for index in range(TLS_DRAINS):
        job = make_task(
            [fault_provider(server, "instant")],
            kafka={
                "bootstrap_servers": secure_broker.server,
                "sasl_password_env": PASSWORD_ENV,
                "client": _client(secure_broker),
            },
        )
        writer = producer(job.task.kafka)
        for n, value in enumerate(reviews(31)):  # 11, 10, 10
            writer.send(job.task.kafka.input_topic, value=value, partition=n % 3)
        writer.flush(timeout=30)
        writer.close()
        summary = run_job(job.task)
        committed, end = _committed_and_end(job)
        if summary.exit_code != 0 or committed != end or sum(end.values()) != 31:
            failed.append((index, summary.exit_code, committed, end))
    assert not failed, f"{len(failed)} of {TLS_DRAINS} drains over SASL_SSL: {failed}"
