"""The progress of a running ``run`` or ``replay``, from the run's counts.

On a terminal (stdout and stderr are TTYs): a live line drawn by ``rich`` on stderr, redrawn twice a
second. Otherwise: a plain line on stderr every ``every_s`` seconds (logs, CI). Either way:
records read, enriched, dead-lettered, in flight (read, not yet written), the rate of
settled records over the last 30 s, and in drain mode, where the end offsets were
snapshotted at start, the share done and an ETA.

The counts come from a callable: the run's tally where the workers run in the launcher's
process (Prism LOOPBACK, the default), the running job's metrics on Flink
(``pipelines.flink_jobs.LiveCounts``: Flink's REST API). On other remote runners there is no
live line: the runner's UI shows the same counters (Beam metrics, namespace
``llm_enrich``); ``execute`` says so once.
"""

from __future__ import annotations

import collections
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TextIO

from transforms.core import counters

__all__ = ["ProgressLine", "progress_text"]

WINDOW_S = 30.0


@dataclass(frozen=True)
class Snapshot:
    read: int
    enriched: int
    dead: int
    planned: int | None  # offsets to read in drain mode, None when following
    calls: int

    @property
    def settled(self) -> int:
        return self.enriched + self.dead

    @classmethod
    def of(cls, counts: Mapping[str, int], read_counter: str = counters.READ) -> Snapshot:
        planned = counts.get(counters.planned(read_counter))
        return cls(
            read=counts.get(read_counter, 0),
            enriched=counts.get(counters.WRITTEN_OUTPUT, 0),
            dead=counts.get(counters.WRITTEN_DEAD_LETTER, 0),
            planned=planned,
            calls=counts.get(counters.LLM_CALLS, 0),
        )


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def progress_text(now: Snapshot, rate: float, elapsed_s: float, left_out: int = 0) -> str:
    """One line. ``rate``: settled records per second; ``left_out``: records read but not
    to be written (replay's skips), so that ``in flight`` is not inflated by them."""
    in_flight = max(0, now.read - now.settled - left_out)
    parts = [
        f"read {now.read}",
        f"enriched {now.enriched}",
        f"dead-lettered {now.dead}",
        f"in flight {in_flight}",
        f"LLM calls {now.calls}",
        f"{rate:.1f} rec/s",
        f"elapsed {_duration(elapsed_s)}",
    ]
    if now.planned:
        done = min(1.0, (now.settled + left_out) / now.planned)
        parts.insert(0, f"{done:4.0%}")
        remaining = max(0, now.planned - now.settled - left_out)
        if remaining and rate > 0:
            parts.append(f"ETA {_duration(remaining / rate)}")
    return "  ".join(parts)


class ProgressLine:
    """A thread that shows the progress until ``stop``; a context manager."""

    def __init__(
        self,
        counts: Callable[[], Mapping[str, int]],
        *,
        live: bool | None = None,
        every_s: float = 10.0,
        stream: TextIO | None = None,
        read_counter: str = counters.READ,
    ) -> None:
        self._counts, self._read_counter = counts, read_counter
        self._live = (sys.stdout.isatty() and sys.stderr.isatty()) if live is None else live
        self._every_s = every_s
        self._stream = stream or sys.stderr
        self._stop = threading.Event()
        self._started = time.monotonic()
        # (when, settled) samples; seeded with the start, where the run's tally is zero, so
        # that the first line (``every_s`` in) already has a rate
        self._history: collections.deque[tuple[float, int]] = collections.deque(
            [(self._started, 0)]
        )
        self._thread = threading.Thread(target=self._run, name="llm-enrich-progress", daemon=True)

    def __enter__(self) -> ProgressLine:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def text(self) -> str:
        counts = self._counts()
        now = Snapshot.of(counts, self._read_counter)
        clock = time.monotonic()
        self._history.append((clock, now.settled))
        while len(self._history) > 2 and self._history[0][0] < clock - WINDOW_S:
            self._history.popleft()
        first_t, first_n = self._history[0]
        rate = (now.settled - first_n) / (clock - first_t) if clock > first_t else 0.0
        left_out = sum(v for k, v in counts.items() if k.startswith(counters.REPLAY_SKIPPED))
        return progress_text(now, rate, clock - self._started, left_out)

    def _run(self) -> None:
        if self._live:
            self._run_live()
            return
        while not self._stop.wait(self._every_s):
            print(f"llm-enrich: progress: {self.text()}", file=self._stream, flush=True)

    def _run_live(self) -> None:
        from rich.console import Console
        from rich.live import Live
        from rich.text import Text

        console = Console(file=self._stream)
        with Live(Text(self.text()), console=console, refresh_per_second=4) as live:
            while not self._stop.wait(0.5):
                live.update(Text(self.text()))
            live.update(Text(self.text()))
