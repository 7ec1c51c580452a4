"""Run a pipeline to its end, stopping it cleanly on SIGINT/SIGTERM, and account for it.

First signal: the readers stop claiming new offsets; what was read is enriched, written
and committed; the job ends and the summary is printed. Second signal: exit at once
(``exit_codes.UNSETTLED``); nothing is lost, records not committed are read again next run.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Any

from pipelines import exit_codes
from pipelines.progress import ProgressLine
from pipelines.runner import in_one_process
from pipelines.summary import RunSummary, summarize
from transforms.beam.run_handle import run_of
from transforms.core.calls.shadow import drain_all
from transforms.core.run.control import RunControl

__all__ = ["execute"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def execute(
    pipeline: Any,
    *,
    stop_on_signals: bool = False,
    progress_every_s: float | None = None,
    live_counts: Callable[[], Mapping[str, int]] | None = None,
) -> RunSummary:
    """Run ``pipeline`` and wait for it; with ``stop_on_signals`` (the CLI, main thread),
    SIGINT/SIGTERM stop it as described above. ``progress_every_s``: show the progress
    (``pipelines.progress``; live on a terminal, else a line this often), from the run's
    tally where the workers run in this process, else from ``live_counts`` (the runner's
    metrics of the running job: ``pipelines.flink_jobs.LiveCounts``). The run's
    ``WorkerRun`` here (``transforms.beam.run_handle``): the workers' own where they run in
    this process, else this launcher's, whose stop reaches them through the runner's
    control folder."""
    _signalled.clear()
    in_process = in_one_process(pipeline.options)  # before run(): it rewrites the options
    worker = run_of(pipeline).acquire()  # held until the run ends
    control = worker.control
    started = time.monotonic()
    result = pipeline.run()
    waiter = _Waiter(result)
    handler = functools.partial(_on_signal, control)
    previous = _install(handler) if stop_on_signals else {}
    try:
        waiter.start()
        counts = worker.tally.counts if in_process else live_counts
        with _progress(progress_every_s, counts):
            while waiter.is_alive():
                waiter.join(0.2)  # a timed join lets signal handlers run
    except BaseException as exc:  # e.g. a test's timeout: never leave the job running
        _abandon(result, control, type(exc).__name__)
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if waiter.error is not None:
        _abandon(result, control, f"lost track of the job: {type(waiter.error).__name__}")
        raise waiter.error
    elapsed = time.monotonic() - started
    if not in_process:
        return summarize(result, elapsed)
    for name, value in drain_all().items():  # shadow calls still in flight: wait, count
        worker.tally.add(name, value)
    return summarize(result, elapsed, tally=worker.tally)


def _progress(
    every_s: float | None, counts: Callable[[], Mapping[str, int]] | None
) -> contextlib.AbstractContextManager[Any]:
    if every_s is None:
        return contextlib.nullcontext()
    if counts is None:
        print(
            "llm-enrich: no progress line on this runner: its UI shows the llm_enrich "
            "counters (Beam metrics); the summary follows at the end",
            file=sys.stderr,
        )
        return contextlib.nullcontext()
    return ProgressLine(counts, every_s=every_s)


def _abandon(result: Any, control: RunControl, why: str) -> None:
    """Stop a job this process no longer waits for: its readers stop, the runner cancels."""
    control.halt(f"internal: {why}")
    with contextlib.suppress(Exception):
        result.cancel()


class _Waiter(threading.Thread):
    def __init__(self, result: Any) -> None:
        super().__init__(name="llm-enrich-wait", daemon=True)
        self._result = result
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._result.wait_until_finish()
        except BaseException as exc:  # re-raised in the main thread
            self.error = exc


_signalled = threading.Event()  # a halt also requests a stop; only a signal counts here


def _on_signal(control: RunControl, signum: int, frame: FrameType | None) -> None:
    if _signalled.is_set():
        print(
            "llm-enrich: second signal: exiting now; uncommitted records are read again",
            file=sys.stderr,
        )
        os._exit(exit_codes.UNSETTLED)
    name = signal.Signals(signum).name
    print(
        f"llm-enrich: {name}: stopping; finishing the records in flight "
        "(signal again to exit at once)",
        file=sys.stderr,
    )
    _signalled.set()
    control.request_stop()


def _install(handler: Callable[[int, FrameType | None], None]) -> dict[int, Any]:
    return {signum: signal.signal(signum, handler) for signum in _SIGNALS}
