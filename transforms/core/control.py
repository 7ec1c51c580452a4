"""Run control shared by everything in one worker process.

``stop`` is requested by the launcher (SIGINT/SIGTERM): readers stop claiming new
offsets, what was read is finished, written and committed, and the job ends. ``halt`` is
set by a stage that met a systemic fault (bad credentials, a missing topic or model): the
readers stop the same way, and no further record is attempted (they stay uncommitted, to
be read again once the fault is fixed). ``pause`` is set while every provider is down in
a follow run: the readers wait instead of piling up records.

With Prism's LOOPBACK workers the launcher and the workers are one process; on remote
runners the runner's own drain stops the readers (the reader's ``truncate``).
"""

from __future__ import annotations

import threading

__all__ = [
    "halt",
    "halted",
    "paused",
    "request_stop",
    "reset",
    "set_paused",
    "stop_requested",
]

_stop = threading.Event()
_pause = threading.Event()
_halt_reason: list[str] = []


def request_stop() -> None:
    _stop.set()


def stop_requested() -> bool:
    return _stop.is_set()


def halt(reason: str) -> None:
    """A systemic fault: stop reading and attempting records. The first reason wins."""
    if not _halt_reason:
        _halt_reason.append(reason)
    _stop.set()


def halted() -> str | None:
    return _halt_reason[0] if _halt_reason else None


def set_paused(paused: bool) -> None:
    if paused:
        _pause.set()
    else:
        _pause.clear()


def paused() -> bool:
    return _pause.is_set()


def reset() -> None:
    """Forget an earlier run's stop, halt and pause (a new run in the same process)."""
    _stop.clear()
    _pause.clear()
    _halt_reason.clear()
