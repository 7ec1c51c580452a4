"""Run control shared by everything in one worker process.

``stop`` is requested by the launcher (SIGINT/SIGTERM): readers stop claiming new
offsets, what was read is finished, written and committed, and the job ends. ``halt`` is
set by a stage that met a systemic fault (bad credentials, a missing topic or model): the
readers stop the same way, and no further record is attempted (they stay uncommitted, to
be read again once the fault is fixed). ``pause`` is set while every provider is down in
a follow run: the readers wait instead of piling up records.

``backlog`` counts records read but not yet through enrichment. Readers wait while it is
over their limit, so a drain does not pull the whole topic into the runner's memory ahead
of the LLM calls, and bundles stay small enough for commits to follow closely. It only
works where readers and enrichment share a process (Prism's LOOPBACK workers), so the
pipeline builder enables it only there.

With Prism's LOOPBACK workers the launcher and the workers are one process; on remote
runners the runner's own drain stops the readers (the reader's ``truncate``).
"""

from __future__ import annotations

import threading

from transforms.core.run import tally

__all__ = [
    "backlog",
    "halt",
    "halted",
    "paused",
    "read_ahead",
    "records_done",
    "request_stop",
    "reset",
    "set_paused",
    "stop_requested",
]

_stop = threading.Event()
_backlog_lock = threading.Lock()
_backlog = [0]
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


def read_ahead(records: int) -> None:
    with _backlog_lock:
        _backlog[0] += records


def records_done(records: int = 1) -> None:
    with _backlog_lock:
        _backlog[0] = max(0, _backlog[0] - records)


def backlog() -> int:
    return _backlog[0]


def reset() -> None:
    """Forget an earlier run's stop, halt, pause, backlog and counts (a new run in this
    process)."""
    tally.reset()
    _stop.clear()
    _pause.clear()
    _halt_reason.clear()
    with _backlog_lock:
        _backlog[0] = 0
