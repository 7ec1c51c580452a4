"""Jobs for the soaks run as commands (outside pytest): a fault server and fresh topics."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.fault_server import FaultServer, Reply
from tests.integration.conftest import fault_provider, new_task
from transforms.core.job import Job

LATENCY_S = 0.2
IN_FLIGHT = 32


@contextlib.contextmanager
def follow_job(latency_s: float = LATENCY_S) -> Iterator[Callable[[], Job]]:
    """``make()`` gives a job on fresh topics whose provider answers after ``latency_s``."""
    server = FaultServer(default=Reply.ok(delay_s=latency_s))
    with server, tempfile.TemporaryDirectory() as folder:
        yield lambda: new_task(
            Path(folder), [fault_provider(server, "steady")], policy={"max_in_flight": IN_FLIGHT}
        )
