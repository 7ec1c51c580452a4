"""Beam options the launcher adds: Prism by default, and a job-stream deadline long
enough for any run (Beam's default of 300 s ends every longer run in DEADLINE_EXCEEDED);
with ``--runner flink``, the local Flink job server and PROCESS workers."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import PortableOptions, StandardOptions

from pipelines.runner import (
    FLINK_PARALLELISM,
    JOB_STREAM_DEADLINE_S,
    FlinkNotReady,
    flink_workers,
    fused,
    in_one_process,
    pipeline_options,
)
from transforms.core.run.control import CONTROL_DIR_ENV


def test_defaults_and_a_deadline_longer_than_any_run() -> None:
    options = pipeline_options([], streaming=True, job_endpoint="localhost:1")
    assert options.view_as(StandardOptions).runner == "PrismRunner"
    assert options.view_as(StandardOptions).streaming is True
    timeout = options.view_as(PortableOptions).job_server_timeout
    assert timeout == JOB_STREAM_DEADLINE_S and timeout > 365 * 24 * 3600


def test_a_users_deadline_and_runner_are_kept() -> None:
    options = pipeline_options(
        ["--runner=DirectRunner", "--job_server_timeout=60"], streaming=False
    )
    assert options.view_as(StandardOptions).runner == "DirectRunner"
    assert options.view_as(PortableOptions).job_server_timeout == 60


@contextlib.contextmanager
def _job_server(
    monkeypatch: pytest.MonkeyPatch, boot: Path, boot_script: str
) -> Iterator[socket.socket]:
    """A port listening where the launcher looks for Flink's job server, and a stand-in for
    Beam's boot program."""
    boot.write_text(boot_script)
    boot.chmod(0o755)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setenv("LLM_ENRICH_BEAM_BOOT", str(boot))
        monkeypatch.setenv("LLM_ENRICH_STATE", str(boot.parent / "state"))
        monkeypatch.setenv("LLM_ENRICH_FLINK_JOB_PORT", str(server.getsockname()[1]))
        yield server


def test_flink_workers_point_at_the_job_server_with_process_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--runner flink``: the local job server, a parallelism over both TaskManagers, and
    PROCESS workers whose script puts this interpreter and checkout first and names the
    control folder (stop and halt reach the workers through it)."""
    boot = tmp_path / "boot"
    with _job_server(monkeypatch, boot, '#!/bin/sh\necho "$@"\n') as server:
        with flink_workers() as args:
            options = pipeline_options(args, streaming=True)
            portable = options.view_as(PortableOptions)
            assert options.view_as(StandardOptions).runner == "PortableRunner"
            assert portable.job_endpoint == f"127.0.0.1:{server.getsockname()[1]}"
            assert portable.environment_type == "PROCESS"
            assert f"--parallelism={FLINK_PARALLELISM}" in args
            assert not fused(options) and not in_one_process(options)
            script = Path(json.loads(portable.environment_config)["command"])
            assert "--job_name=llm-enrich:run:task:" + script.parent.name in args  # found by REST
            text = script.read_text()
            assert f'PATH="{Path(sys.executable).parent}:' in text
            assert f'{CONTROL_DIR_ENV}="{script.parent}"' in text
            boot.write_text('#!/bin/sh\necho "$(pwd) $@"\n')
            ran = subprocess.run([str(script), "--id=1"], capture_output=True, text=True)
            scratch = ran.stdout.split()[0]  # its own working folder, inside the run's
            assert Path(scratch).parent == script.parent and scratch != str(script.parent)
            assert ran.stdout.split()[1] == f"--semi_persist_dir={scratch}"
            assert ran.stdout.rstrip().endswith("--id=1")
        assert not script.parent.exists()
        with flink_workers(["--parallelism=2", "--job_name=mine"]) as args:
            assert not any(a.startswith(("--parallelism", "--job_name")) for a in args)


def test_a_flink_worker_stops_when_its_taskmanager_dies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A TaskManager killed with -9 leaves its SDK workers running (Beam's boot program even
    restarts a Python worker that lost its runner): the worker script sees its parent go
    and stops the boot program."""
    stopped = tmp_path / "stopped"
    sleeper = (
        f"#!/bin/sh\ntrap 'echo TERM > \"{stopped}\"; exit 0' TERM\nwhile :; do sleep 0.1; done\n"
    )
    with _job_server(monkeypatch, tmp_path / "boot", sleeper), flink_workers() as args:
        config = next(a for a in args if a.startswith("--environment_config="))
        script = json.loads(config.split("=", 1)[1])["command"]
        # the "TaskManager": a shell that starts the worker script and waits
        taskmanager = subprocess.Popen(["sh", "-c", f'"{script}" --id=1 & wait'])
        time.sleep(1.5)
        assert not stopped.exists()
        taskmanager.kill()
        taskmanager.wait()
        deadline = time.monotonic() + 10
        while not stopped.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert stopped.read_text().strip() == "TERM"


def test_flink_without_its_job_server_says_what_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLM_ENRICH_BEAM_BOOT", str(tmp_path / "missing"))
    with pytest.raises(FlinkNotReady, match="deploy/flink.sh install"), flink_workers():
        pass
    (tmp_path / "missing").write_text("")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    monkeypatch.setenv("LLM_ENRICH_FLINK_JOB_PORT", str(free))
    with pytest.raises(FlinkNotReady, match="deploy/flink.sh start"), flink_workers():
        pass
