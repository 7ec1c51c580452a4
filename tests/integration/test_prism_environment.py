"""The secrets of a run reach the SDK workers that need them, never Prism's job server.

Run through the CLI with ``--workers 2``, so both of the launcher's children exist: Prism
(which needs no secret) and the worker pool (whose SDK workers call the provider and Kafka).
Their environments are read from ``/proc/PID/environ`` while the run goes. Before Prism got
an allow-list (``pipelines.runner.prism_environment``) the first assertion failed: Prism had
the launcher's whole environment.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pipelines.runner import prism_environment, prism_location
from tests.fault_server import FaultServer, Reply
from tests.integration.conftest import CLI, MakeTask, fault_provider, produce, reviews

SECRETS = {"IT_PROVIDER_KEY": "sk-it-9f3c1e0b", "IT_SASL_PASSWORD": "scram-it-51d7a2c4"}


def _children(pid: int) -> dict[int, list[str]]:
    """The live children of ``pid``: their command lines."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                cmdline = (stat.parent / "cmdline").read_bytes().split(b"\0")
                found[int(stat.parent.name)] = [part.decode() for part in cmdline if part]
        except (OSError, IndexError, ValueError):
            continue  # it ended meanwhile
    return found


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.decode().split("=", 1) for item in raw.split(b"\0") if b"=" in item)


def test_prism_gets_no_secret_and_the_workers_get_them(
    make_task: MakeTask,
    fault_server: Callable[..., FaultServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    server = fault_server(default=Reply.ok(delay_s=0.05))
    job = make_task(
        [fault_provider(server, "fault", api_key_env="IT_PROVIDER_KEY")],
        kafka={"sasl_password_env": "IT_SASL_PASSWORD"},  # unused by a PLAINTEXT broker
    )
    produce(job, reviews(30))
    env = dict(os.environ)
    run = subprocess.Popen(
        [*CLI, "run", "--task", str(job.task.source_path), "--workers", "2", "--no-progress"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    prism = str(prism_location())
    environments: dict[str, dict[str, str]] = {}
    deadline = time.monotonic() + 300
    while run.poll() is None and len(environments) < 2 and time.monotonic() < deadline:
        for pid, cmdline in _children(run.pid).items():
            role = "prism" if cmdline[:1] == [prism] else None
            if "apache_beam.runners.worker.worker_pool_main" in cmdline:
                role = "pool"
            if role and role not in environments:
                environments[role] = _environ(pid)
        time.sleep(0.05)
    stdout, stderr = run.communicate(timeout=300)
    assert run.returncode == 0, stderr
    assert "records read        30" in stdout
    assert set(environments) == {"prism", "pool"}

    # (names only in the assertions: a failure must not print the launcher's environment)
    prism_env, pool_env = environments["prism"], environments["pool"]
    assert [name for name, value in SECRETS.items() if value in prism_env.values()] == []
    assert sorted(prism_env) == sorted(prism_environment(env))
    assert prism_env["PATH"] == env["PATH"]
    # the SDK workers' pool keeps them: its workers call the provider and Kafka
    assert [name for name, value in SECRETS.items() if pool_env.get(name) != value] == []
