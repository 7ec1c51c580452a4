"""How a Flink job's launcher is known to be gone: its run folder (pid, heartbeat), and the
job's name (``llm-enrich:<task>:<run>``); the workers read a silent heartbeat as a stop."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from pipelines.flink_jobs import (
    FlinkJob,
    RunFolder,
    counter_name,
    job_family,
    job_name,
    launcher_gone,
)
from transforms.core.run.control import (
    HEARTBEAT,
    LAUNCHER_SILENCE_S,
    FolderChannel,
    RunControl,
)


def test_a_job_name_carries_its_family_and_the_run() -> None:
    family = job_family("run", "reviews.v2-eu")
    job = FlinkJob("j1", job_name(family, "abc123"), "RUNNING", 0)
    assert job.family_and_run == ("llm-enrich:run:reviews.v2-eu", "abc123")
    assert FlinkJob("j2", "BeamApp-root-1203", "RUNNING", 0).family_and_run is None
    assert job_family("replay", "reviews.v2-eu") != family  # a replay reads another group


def test_a_run_folder_beats_while_its_block_lasts_then_goes(tmp_path: Path) -> None:
    with RunFolder("run1", tmp_path) as folder:
        launcher = json.loads((folder.path / "launcher").read_text())
        assert launcher["pid"] == os.getpid() and (folder.path / HEARTBEAT).exists()
        assert launcher_gone(folder.path) is None  # this process, beating
    assert not (tmp_path / "run1").exists()


def _folder(tmp_path: Path, pid: int, silent_s: float) -> Path:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "launcher").write_text(json.dumps({"pid": pid, "host": socket.gethostname()}))
    (folder / HEARTBEAT).touch()
    beat = (folder / HEARTBEAT).stat().st_mtime - silent_s
    os.utime(folder / HEARTBEAT, (beat, beat))
    return folder


def test_a_dead_launcher_is_gone_at_once(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    folder = _folder(tmp_path, int(dead.stdout), silent_s=0)
    assert launcher_gone(folder) == f"its launcher (pid {int(dead.stdout)}) is gone"


def test_a_silent_launcher_is_gone_even_if_its_pid_lives(tmp_path: Path) -> None:
    folder = _folder(tmp_path, os.getpid(), silent_s=LAUNCHER_SILENCE_S + 5)
    assert (launcher_gone(folder) or "").startswith("its launcher has been silent for")


def test_workers_read_a_silent_heartbeat_as_a_stop(tmp_path: Path) -> None:
    (tmp_path / HEARTBEAT).touch()
    assert not RunControl(FolderChannel(tmp_path)).stop_requested()
    beat = (tmp_path / HEARTBEAT).stat().st_mtime - LAUNCHER_SILENCE_S - 1
    os.utime(tmp_path / HEARTBEAT, (beat, beat))
    control = RunControl(FolderChannel(tmp_path))
    assert control.stop_requested() and control.halted() is None  # a stop: finish, commit


def test_flink_metric_names_map_back_to_the_counters_the_progress_line_shows() -> None:
    assert counter_name("written_output") == "written.output"
    assert counter_name("written_dead_letter") == "written.dead_letter"
    assert counter_name("read") == "read" and counter_name("llm_calls") == "llm_calls"
    assert counter_name("planned_read") == "planned.read"
    assert counter_name("replay_skipped_already_enriched") == "replay.skipped.already_enriched"
