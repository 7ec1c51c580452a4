"""What one worker process keeps for one run, injected into the steps that share it.

A ``RunHandle`` is made when the pipeline is built and carried (pickled) by every DoFn that
needs the run's shared state; on a worker, ``acquire`` gives the process's one
``WorkerRun`` for that run (through Beam's ``Shared``, as ``EnrichService`` is). The readers
and the processing steps of a run in one process talk through it, never through module
globals.

    readers   which readers of the run are live here (``transforms.beam.outstanding``)

Where the whole pipeline runs in the launcher (Prism's LOOPBACK workers) the launcher
acquires the same object.
"""

from __future__ import annotations

import uuid
from typing import cast

from apache_beam.utils.shared import Shared

from transforms.beam.outstanding import Readers

__all__ = ["RunHandle", "WorkerRun"]


class WorkerRun:
    """One run, as one worker process sees it."""

    def __init__(self) -> None:
        self.readers = Readers()


class RunHandle:
    """Picklable: the run's ``WorkerRun`` in whatever process unpickles it."""

    def __init__(self, run_id: str | None = None) -> None:
        self.run_id = run_id or uuid.uuid4().hex
        self._shared = Shared()

    def acquire(self) -> WorkerRun:
        return cast(WorkerRun, self._shared.acquire(WorkerRun, tag=self.run_id))
