"""Run control: one ``RunControl`` per worker process and run, handed to the readers, the
enricher and the writers (``transforms.beam.run_handle``), never a module global.

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

With Prism's LOOPBACK workers the launcher and the workers are one process and share one
``RunControl``. Between processes (a local worker pool, the workers on Flink's
TaskManagers) stop, halt and pause go through a ``Channel``: ``FolderChannel``, a folder
named by ``LLM_ENRICH_CONTROL_DIR`` (files ``stop``, ``halt``, ``pause``), which the runner
hands down to the processes it starts and to the launcher while the run lasts; the backlog
stays per process. A launcher that keeps a ``heartbeat`` file there (Flink:
``pipelines.flink_jobs``) is gone once it is older than ``LAUNCHER_SILENCE_S``: the
workers then stop as on SIGTERM, so a launcher killed with -9 leaves no job running.
Where the task's coordination is Redis, the signals also go through it
(``transforms.coordination.control_channel``), for workers on other hosts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

__all__ = [
    "CONTROL_DIR_ENV",
    "HEARTBEAT",
    "LAUNCHER_SILENCE_S",
    "Channel",
    "Channels",
    "FolderChannel",
    "RunControl",
    "channel_from_env",
]

log = logging.getLogger("llm_enrich")

CONTROL_DIR_ENV = "LLM_ENRICH_CONTROL_DIR"
CHECK_EVERY_S = 0.2  # how often a process looks at the channel
HEARTBEAT = "heartbeat"  # a file the launcher touches while it lives (when it keeps one)
LAUNCHER_SILENCE_S = 30.0  # a heartbeat this old: the launcher is gone, the run stops


class Channel(Protocol):
    """Stop, halt and pause shared with the run's other processes."""

    def post(self, name: str, text: str = "") -> None:
        """Signal ``name`` (``stop``, ``halt``, ``pause``); the first writer's text wins."""

    def clear(self, name: str) -> None:
        """Take a signal back (only ``pause`` is ever taken back)."""

    def read(self) -> dict[str, str]:
        """The signals posted, by name, with their text."""


class FolderChannel:
    """Signals as files in a folder every process of the run can read (one machine). A
    ``heartbeat`` file older than ``LAUNCHER_SILENCE_S`` reads as a ``stop``."""

    def __init__(self, folder: Path, clock: Callable[[], float] = time.time) -> None:
        self.folder, self._clock = folder, clock

    def post(self, name: str, text: str = "") -> None:
        try:
            with open(self.folder / name, "x") as file:  # the first writer wins
                file.write(text)
        except OSError:  # already there (or the folder is gone: the run is over)
            pass

    def clear(self, name: str) -> None:
        with contextlib.suppress(OSError):
            (self.folder / name).unlink()

    def read(self) -> dict[str, str]:
        found = {}
        for name in ("stop", "halt", "pause"):
            with contextlib.suppress(OSError):
                found[name] = (self.folder / name).read_text()
        with contextlib.suppress(OSError):
            silent_s = self._clock() - (self.folder / HEARTBEAT).stat().st_mtime
            if silent_s > LAUNCHER_SILENCE_S:
                found.setdefault("stop", f"the launcher has been silent for {silent_s:.0f} s")
        return found


class Channels:
    """Several channels as one: a signal goes to each, and is seen in any (the first
    channel's text wins)."""

    def __init__(self, channels: list[Channel]) -> None:
        self._channels = channels

    def post(self, name: str, text: str = "") -> None:
        for channel in self._channels:
            channel.post(name, text)

    def clear(self, name: str) -> None:
        for channel in self._channels:
            channel.clear(name)

    def read(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for channel in self._channels:
            for name, text in channel.read().items():
                found.setdefault(name, text)
        return found


def channel_from_env() -> Channel | None:
    """The channel the runner named for this process (``LLM_ENRICH_CONTROL_DIR``), if any."""
    folder = os.environ.get(CONTROL_DIR_ENV)
    return FolderChannel(Path(folder)) if folder else None


class RunControl:
    """Stop, halt, pause and the backlog of one run in one process; ``channel`` shares
    stop, halt and pause with the run's other processes (looked at every
    ``CHECK_EVERY_S``)."""

    def __init__(
        self, channel: Channel | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._channel, self._clock = channel, clock
        self._stop = threading.Event()
        self._pause = threading.Event()
        self._halt_reason: list[str] = []
        self._backlog_lock = threading.Lock()
        self._backlog = 0
        self._checked = float("-inf")

    def _look(self) -> None:
        """Take in a stop, halt or pause another process posted (at most every
        ``CHECK_EVERY_S``)."""
        if self._channel is None or self._stop.is_set():
            return
        now = self._clock()
        if now - self._checked < CHECK_EVERY_S:
            return
        self._checked = now
        signals = self._channel.read()
        if "halt" in signals:
            if not self._halt_reason:
                self._halt_reason.append(signals["halt"])
            self._stop.set()
        elif "stop" in signals:
            if signals["stop"]:  # a stop with a reason: not the launcher's own
                log.warning("stopping the run: %s", signals["stop"])
            self._stop.set()
        if "pause" in signals:
            self._pause.set()
        else:
            self._pause.clear()

    def look_now(self) -> None:
        """Look at the channel at the next question, not ``CHECK_EVERY_S`` after the last."""
        self._checked = float("-inf")

    def request_stop(self) -> None:
        self._stop.set()
        if self._channel is not None:
            self._channel.post("stop")

    def stop_requested(self) -> bool:
        self._look()
        return self._stop.is_set()

    def halt(self, reason: str) -> None:
        """A systemic fault: stop reading and attempting records. The first reason wins."""
        self._look()
        if not self._halt_reason:
            self._halt_reason.append(reason)
        self._stop.set()
        if self._channel is not None:
            self._channel.post("halt", self._halt_reason[0])

    def halted(self) -> str | None:
        self._look()
        return self._halt_reason[0] if self._halt_reason else None

    def set_paused(self, paused: bool) -> None:
        if paused == self._pause.is_set():
            return
        if paused:
            self._pause.set()
        else:
            self._pause.clear()
        if self._channel is not None:
            if paused:
                self._channel.post("pause")
            else:
                self._channel.clear("pause")

    def paused(self) -> bool:
        self._look()
        return self._pause.is_set()

    def read_ahead(self, records: int) -> None:
        with self._backlog_lock:
            self._backlog += records

    def records_done(self, records: int = 1) -> None:
        with self._backlog_lock:
            self._backlog = max(0, self._backlog - records)

    def backlog(self) -> int:
        return self._backlog
