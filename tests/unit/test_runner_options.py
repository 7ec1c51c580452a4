"""Beam options the launcher adds: Prism by default, and a job-stream deadline long
enough for any run (Beam's default of 300 s ends every longer run in DEADLINE_EXCEEDED)."""

from __future__ import annotations

from apache_beam.options.pipeline_options import PortableOptions, StandardOptions

from pipelines.runner import JOB_STREAM_DEADLINE_S, pipeline_options


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
