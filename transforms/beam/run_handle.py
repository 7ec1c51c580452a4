"""What one worker process keeps for one run, injected into the steps that share it.

A ``RunHandle`` is made with the stage (``EnrichStage``, ``ReplayStage``) and carried
(pickled) by every DoFn and counter of the run; on a worker, ``acquire`` gives the
process's one ``WorkerRun`` for that run (through Beam's ``Shared``, as ``EnrichService``
is). The readers, the enricher and the writers of a run talk through it, never through
module globals:

    control   stop, halt, pause and the backlog (``transforms.core.run.control``); between
              processes through the folder the runner named (``LLM_ENRICH_CONTROL_DIR``)
              and, where the task's coordination is Redis, through Redis
    tally     the run's counts as this process saw them (``transforms.core.run.tally``)
    readers   which readers of the run are live here (``transforms.beam.outstanding``)

The launcher finds the stage's handle in the pipeline (``run_of``) and acquires it too:
where the whole pipeline runs in the launcher (Prism's LOOPBACK workers) that is the
workers' own ``WorkerRun``; elsewhere it is the launcher's, whose control reaches the
workers through the channel.
"""

from __future__ import annotations

import uuid
from typing import Any, cast

from apache_beam.pipeline import PipelineVisitor
from apache_beam.utils.shared import Shared

from transforms.beam.outstanding import Readers
from transforms.core.config.coordination import CoordinationSpec
from transforms.core.run.control import Channel, Channels, RunControl, channel_from_env
from transforms.core.run.tally import Tally

__all__ = ["RunHandle", "WorkerRun", "run_of"]


class WorkerRun:
    """One run, as one worker process sees it."""

    def __init__(self, channel: Channel | None = None) -> None:
        self.control = RunControl(channel)
        self.tally = Tally()
        self.readers = Readers()


class RunHandle:
    """Picklable: the run's ``WorkerRun`` in whatever process unpickles it. ``coordination``
    and ``task``: the task's coordination section and name (a Redis one carries the control
    signals too)."""

    def __init__(
        self,
        run_id: str | None = None,
        coordination: CoordinationSpec | None = None,
        task: str = "",
    ) -> None:
        self.run_id = run_id or uuid.uuid4().hex
        self._coordination, self._task = coordination, task
        self._shared = Shared()

    def acquire(self) -> WorkerRun:
        worker = self._shared.acquire(lambda: WorkerRun(self._channel()), tag=self.run_id)
        return cast(WorkerRun, worker)

    def _channel(self) -> Channel | None:
        channels = [c for c in (channel_from_env(), self._redis()) if c is not None]
        return channels[0] if len(channels) == 1 else (Channels(channels) if channels else None)

    def _redis(self) -> Channel | None:
        if self._coordination is None or not self._coordination.shared:
            return None
        from transforms.coordination.control_channel import redis_channel

        return redis_channel(self._coordination, self._task, self.run_id)


class _Runs(PipelineVisitor):
    def __init__(self) -> None:
        self.found: list[RunHandle] = []

    def enter_composite_transform(self, node: Any) -> None:
        run = getattr(node.transform, "run", None)
        if isinstance(run, RunHandle) and run not in self.found:
            self.found.append(run)


def run_of(pipeline: Any) -> RunHandle:
    """The run handle of the stage applied to ``pipeline`` (a new one if there is none)."""
    runs = _Runs()
    pipeline.visit(runs)
    if len(runs.found) > 1:
        raise ValueError("a pipeline holds one llm-enrich stage")
    return runs.found[0] if runs.found else RunHandle()
