"""Build the task's coordination (on the worker, never pickled) and check that it answers.

An unusable store at start is an environmental fault: the launch check says why in one line
(``run`` exits 2); a worker that meets it, or loses it mid-run, stops the run (exit 3).
"""

from __future__ import annotations

import asyncio

from transforms.core.config.secrets import resolve_secret
from transforms.core.config.task import TaskSpec
from transforms.core.coordination.in_process import InProcess
from transforms.core.coordination.interface import Coordination, CoordinationLost

__all__ = ["coordination_problems", "open_coordination"]


def open_coordination(task: TaskSpec, run_id: str) -> Coordination:
    """The task's coordination, not yet asked anything. ``run_id`` is the run's (the same in
    every worker). Raises ``CoordinationLost`` when its password variable is not set."""
    spec = task.coordination
    if not spec.shared:
        return InProcess()
    from transforms.coordination.redis_backend import RedisCoordination

    password = None
    if spec.password_env:
        password = resolve_secret(spec.password_env)
        if not password:
            raise CoordinationLost(f"coordination.password_env: {spec.password_env} is not set")
    assert spec.url is not None, "CoordinationSpec requires a url for redis"
    return RedisCoordination(
        spec.url,
        password=password,
        namespace=spec.namespace or task.name,
        run_id=run_id,
        timeout_s=spec.timeout_s,
    )


def coordination_problems(task: TaskSpec) -> list[str]:
    """The launch check: why the configured coordination cannot be used (empty: it can)."""

    async def check() -> None:
        coordination = open_coordination(task, "launch-check")
        try:
            await coordination.ping()
        finally:
            await coordination.aclose()

    try:
        asyncio.run(check())
    except CoordinationLost as exc:
        return [exc.reason]
    return []
