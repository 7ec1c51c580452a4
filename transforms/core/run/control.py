"""Run control shared by everything in one worker process.

``stop`` is requested by the launcher (SIGINT/SIGTERM): readers stop claiming new
offsets, what was read is finished, written and committed, and the job ends. ``halt`` is
set by a stage that met a systemic fault (bad credentials, a missing topic or model): the
readers stop the same way, and no further record is attempted (they stay uncommitted, to
be read again once the fault is fixed). ``pause`` is set while every provider is down in
a follow run: the readers wait instead of piling up records.

``backlog`` counts records read but not yet answered (or dead-lettered at decode). Readers
wait while it is over their limit, so a drain does not pull the whole topic into the
runner's memory ahead of the LLM calls, and bundles stay small enough for commits to
follow closely. It only works where readers and enrichment share a process (Prism's
LOOPBACK workers), so the pipeline builder enables it only there.

With Prism's LOOPBACK workers the launcher and the workers are one process; on remote
runners the runner's own drain stops the readers (the reader's ``truncate``). Local worker
processes (``llm-enrich run --workers N``) share stop and halt through a folder named by
``LLM_ENRICH_CONTROL_DIR`` (files ``stop`` and ``halt``), which the launcher hands down to
the worker pool it starts (``pipelines.runner.worker_pool``); pause and backlog stay per
process.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

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
    "share",
    "stop_requested",
]

CONTROL_DIR_ENV = "LLM_ENRICH_CONTROL_DIR"
_CHECK_EVERY_S = 0.2  # how often a process looks at the shared folder

_stop = threading.Event()
_backlog_lock = threading.Lock()
_backlog = [0]
_pause = threading.Event()
_halt_reason: list[str] = []
_shared: list[Path] = [Path(p)] if (p := os.environ.get(CONTROL_DIR_ENV)) else []
_checked = [0.0]


def share(folder: Path | None) -> None:
    """Share stop and halt with other processes through ``folder`` (None: stop sharing)."""
    _shared[:] = [folder] if folder is not None else []
    _checked[0] = 0.0


def _look_at_shared() -> None:
    """Take in a stop or halt another process wrote (at most every ``_CHECK_EVERY_S``)."""
    if not _shared or _stop.is_set() or time.monotonic() - _checked[0] < _CHECK_EVERY_S:
        return
    _checked[0] = time.monotonic()
    folder = _shared[0]
    try:
        reason = (folder / "halt").read_text()
    except OSError:
        reason = None
    if reason is not None:
        if not _halt_reason:
            _halt_reason.append(reason)
        _stop.set()
    elif (folder / "stop").exists():
        _stop.set()


def _write_shared(name: str, text: str) -> None:
    if not _shared:
        return
    try:
        with open(_shared[0] / name, "x") as file:  # the first writer wins
            file.write(text)
    except OSError:  # already there (or the folder is gone: the run is over)
        pass


def request_stop() -> None:
    _stop.set()
    _write_shared("stop", "")


def stop_requested() -> bool:
    _look_at_shared()
    return _stop.is_set()


def halt(reason: str) -> None:
    """A systemic fault: stop reading and attempting records. The first reason wins."""
    _look_at_shared()
    if not _halt_reason:
        _halt_reason.append(reason)
    _stop.set()
    _write_shared("halt", _halt_reason[0])


def halted() -> str | None:
    _look_at_shared()
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
    _checked[0] = 0.0
    with _backlog_lock:
        _backlog[0] = 0
