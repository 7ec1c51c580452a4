"""Local worker processes (``llm-enrich run --workers N``): the options, the stop and halt
shared through a folder, and the metric short ids each worker process makes its own."""

from __future__ import annotations

from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import PortableOptions

from pipelines.runner import WorkerPool, in_one_process, pipeline_options
from transforms.core.run.control import Channels, FolderChannel, RunControl


def test_a_worker_pool_means_external_workers_not_one_process() -> None:
    pool = WorkerPool("localhost:5", 1)
    options = pipeline_options([], streaming=True, job_endpoint="localhost:1", pool=pool)
    portable = options.view_as(PortableOptions)
    assert (portable.environment_type, portable.environment_config) == (
        "EXTERNAL",
        "localhost:5",
    )
    assert not in_one_process(options)


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    return tmp_path


def test_a_stop_written_by_another_process_is_seen(shared: Path) -> None:
    control = RunControl(FolderChannel(shared))
    assert not control.stop_requested()
    (shared / "stop").touch()  # what request_stop() in the launcher writes
    control.look_now()  # do not wait for the next look
    assert control.stop_requested() and control.halted() is None


def test_a_halt_is_shared_and_the_first_reason_wins(shared: Path) -> None:
    RunControl(FolderChannel(shared)).halt("systemic: bad key")
    assert (shared / "halt").read_text() == "systemic: bad key"
    (shared / "halt").write_text("systemic: first")
    control = RunControl(FolderChannel(shared))  # another process
    control.halt("systemic: second")  # another process halted first
    assert control.halted() == "systemic: first"
    assert (shared / "halt").read_text() == "systemic: first"


def test_request_stop_writes_the_stop_file(shared: Path) -> None:
    RunControl(FolderChannel(shared)).request_stop()
    assert (shared / "stop").exists()


def test_short_ids_carry_the_worker_id() -> None:
    from apache_beam.metrics import monitoring_infos
    from apache_beam.runners.worker import sdk_worker

    from pipelines.worker_boot import _prefixed_short_ids

    saved = sdk_worker.SHORT_ID_CACHE
    try:
        _prefixed_short_ids("worker_7")
        info = monitoring_infos.int64_counter(monitoring_infos.ELEMENT_COUNT_URN, 1)
        short = sdk_worker.SHORT_ID_CACHE.get_short_id(info)
        assert short.startswith("worker_7-")
        assert sdk_worker.SHORT_ID_CACHE.get_short_id(info) == short
        assert sdk_worker.SHORT_ID_CACHE.get_infos([short])[short].urn == info.urn
    finally:
        sdk_worker.SHORT_ID_CACHE = saved


def test_a_pause_is_shared_and_taken_back(shared: Path) -> None:
    """Every provider down, seen by one process's enricher: every process's readers wait."""
    enricher, reader = RunControl(FolderChannel(shared)), RunControl(FolderChannel(shared))
    enricher.set_paused(True)
    reader.look_now()
    assert reader.paused() and not reader.stop_requested()
    enricher.set_paused(False)  # a provider answered
    reader.look_now()
    assert not reader.paused()


def test_several_channels_carry_a_signal_as_one(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    both = Channels([FolderChannel(first), FolderChannel(second)])
    RunControl(both).halt("systemic: bad key")
    assert (first / "halt").read_text() == (second / "halt").read_text() == "systemic: bad key"
    (second / "stop").touch()  # seen in either
    only_second = RunControl(Channels([FolderChannel(tmp_path), FolderChannel(second)]))
    assert only_second.stop_requested() and only_second.halted() == "systemic: bad key"
