"""Run control shared by everything in one worker process.

``stop`` is requested by the launcher (SIGINT/SIGTERM on a follow run): readers stop
claiming new offsets, what was read is finished, written and committed, and the job ends.
With Prism's LOOPBACK workers the launcher and the workers are one process; on remote
runners the runner's own drain does the same through the reader's ``truncate``.
"""

from __future__ import annotations

import threading

__all__ = ["request_stop", "reset", "stop_requested"]

_stop = threading.Event()


def request_stop() -> None:
    _stop.set()


def stop_requested() -> bool:
    return _stop.is_set()


def reset() -> None:
    """Forget an earlier stop request (a new run in the same process)."""
    _stop.clear()
