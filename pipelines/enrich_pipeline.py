"""Build the enrichment pipeline for a task; return the pipeline and its named outputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import apache_beam as beam

from pipelines.runner import WorkerPool, fused, in_one_process, pipeline_options
from transforms.beam.keyed_enrich import bundle_size
from transforms.beam.stage import EnrichStage, ReplayStage
from transforms.core.config.task import TaskSpec
from transforms.core.run.replay import ReplayFilter

__all__ = ["build_pipeline", "build_replay_pipeline"]


def build_pipeline(
    task: TaskSpec,
    beam_args: Sequence[str] = (),
    *,
    follow: bool = False,
    job_endpoint: str | None = None,
    pool: WorkerPool | None = None,
    workers: int = 1,
) -> tuple[beam.Pipeline, dict[str, Any]]:
    """``pool`` and ``workers``: Prism's SDK workers from a local worker pool, the records
    dealt over ``workers`` worker processes (``pipelines.runner.worker_pool``)."""
    args = list(beam_args)
    flink = "--runner=PortableRunner" in args  # pipelines.runner.flink_workers
    if flink and not any(a.startswith("--max_bundle_size") for a in args):
        args.append(f"--max_bundle_size={bundle_size(task.policy.max_in_flight)}")
    options = pipeline_options(args, streaming=True, job_endpoint=job_endpoint, pool=pool)
    pipeline = beam.Pipeline(options=options)
    one_process = in_one_process(options)
    stage = EnrichStage(
        task,
        follow=follow,
        one_process=one_process,
        fused=fused(options),
        workers=1 if one_process else workers,
        keyed=flink,  # Flink never retries a bundle alone: calls may outlive theirs
    )
    return pipeline, pipeline | f"Enrich[{task.name}]" >> stage


def build_replay_pipeline(
    task: TaskSpec,
    selection: ReplayFilter,
    limit: int | None,
    beam_args: Sequence[str] = (),
    *,
    job_endpoint: str | None = None,
    streaming: bool = False,
) -> tuple[beam.Pipeline, dict[str, Any]]:
    """Replay runs in batch where the runner's batch mode suits it (Prism); ``streaming``
    on Flink (see ``FLINK_REPLAY_ARGS``)."""
    options = pipeline_options(beam_args, streaming=streaming, job_endpoint=job_endpoint)
    pipeline = beam.Pipeline(options=options)
    return pipeline, pipeline | f"Replay[{task.name}]" >> ReplayStage(task, selection, limit)
