"""Write envelopes to Kafka: send as they come, count (and, fused, settle) each write as
the broker acknowledges it, flush at the end of the bundle.

Two ways to settle what was written:
- fused (``settle`` given: the run's readers share this process): the acknowledgement
  callback settles the record's span in the run's ``Settlement`` at once, and the end of
  the run's last bundle commits what is left (``transforms.beam.settle``);
- otherwise: the bundle emits the acknowledged coordinates, each with its record's
  timestamp and window, for ``transforms.beam.commit``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam.utils.windowed_value import WindowedValue

from transforms.beam.failures import log_failure
from transforms.beam.metrics import LaterCounts, counter, dead_letter_counter, halt
from transforms.beam.run_handle import RunHandle
from transforms.beam.settle import SettleHandle, Settlement
from transforms.core import counters
from transforms.core.config.task import KafkaSpec
from transforms.core.envelope import Envelope
from transforms.core.errors import WriteError
from transforms.core.records import Failure, Settled
from transforms.kafka.client import producer
from transforms.kafka.writer import flush, send, systemic_write_error, verdict

FAILED = "failed"


class WriteEnvelopes(beam.DoFn):
    """Main output (unless ``settle``): ``Settled`` coordinates of inputs whose envelope was
    acknowledged. ``failed``: Failures for envelopes the broker refused (only when
    ``failures_to_dead_letter``; else they stay unsettled, read again next run).
    ``settle`` and ``reader_run``: settle in the run's ``Settlement`` instead, and commit
    what is left when the run's readers have all ended. ``role``: which topic it writes
    (``counters.OUTPUT_TOPIC`` or ``DEAD_LETTER_TOPIC``), for its counters."""

    def __init__(
        self,
        spec: KafkaSpec,
        topic: str,
        run: RunHandle,
        *,
        role: str,
        failures_to_dead_letter: bool,
        settle: SettleHandle | None = None,
        reader_run: str | None = None,
    ):
        self._spec, self._topic, self._role, self._run = spec, topic, role, run
        self._failures_to_dead_letter = failures_to_dead_letter
        self._settle, self._reader_run = settle, reader_run
        self._refused = counter(run, counters.write_refused(role))

    def setup(self) -> None:
        self._worker = self._run.acquire()
        self._producer = producer(self._spec)
        self._settlement: Settlement | None = self._settle.acquire() if self._settle else None
        self._acked = LaterCounts(self._run)  # counted on the producer's thread, as each ack comes

    def start_bundle(self) -> None:
        self._sent: list[tuple[Envelope, Any, Any, Any, _Once]] = []

    def process(
        self,
        envelope: Envelope,
        timestamp: Any = beam.DoFn.TimestampParam,
        window: Any = beam.DoFn.WindowParam,
    ) -> None:
        future = send(self._producer, self._topic, envelope)
        once = _Once()
        if not isinstance(future, Exception):
            future.add_callback(_on_ack, self._acked, self._role, self._settlement, envelope, once)
        self._sent.append((envelope, future, timestamp, window, once))

    def finish_bundle(self) -> Iterator[Any]:
        flush(self._producer)
        sent, self._sent = self._sent, []
        for envelope, future, timestamp, window, once in sent:
            error = verdict(future)
            if error is None:  # counted (and, fused, settled) by ``_on_ack``, or now
                once.count(self._acked, counters.written(self._role))  # unless its callback did
                coordinates = envelope.source.settled_coordinates
                if self._settlement is None:
                    yield WindowedValue(coordinates, timestamp, (window,))
                else:  # idempotent: for an ack whose callback is still running (a split batch)
                    self._settlement.settle(coordinates)
                continue
            failure = self._refused_write(envelope, error)
            if failure is not None:
                yield beam.pvalue.TaggedOutput(FAILED, WindowedValue(failure, timestamp, (window,)))
        if self._settlement is not None:
            if self._reader_run is None or not self._worker.readers.live(self._reader_run):
                self._settlement.loop.commit_all()  # the run's last bundles: commit it all
            self._settlement.report()
        self._acked.report()

    def _refused_write(self, envelope: Envelope, error: Exception) -> Failure | None:
        """Stop the run when the write fails for every record; else the dead letter to write
        (None: the record stays unsettled, read again next run)."""
        self._refused.inc()
        log_failure(f"write to {self._topic}", type(error).__name__, str(error))
        systemic = systemic_write_error(error)
        if systemic is not None:  # the topic is missing or closed to us: stop the run
            halt(self._run, f"systemic: cannot write to {self._topic}: {systemic}")
        elif self._failures_to_dead_letter:
            dead_letter_counter(self._run, "write").inc()
            return _write_failure(envelope, error)
        return None

    def teardown(self) -> None:
        if hasattr(self, "_producer"):
            self._producer.close(timeout=10)


class _Once:
    """A write is counted once: by its acknowledgement's callback, or by the bundle's end
    when the callback has not run by then (kafka-python marks a future done before it runs
    the callbacks, so a bundle could report its counts without the last acknowledgements,
    and a worker's last bundle lost them: a clean run ended "not settled"). The claim and
    the count are one step under the lock: a bundle's end that finds the write claimed
    knows its count is among the pending ones it reports (a callback that had claimed but
    not yet counted lost the count the same way, now and then, with ``--workers 2``)."""

    _lock = threading.Lock()

    def __init__(self) -> None:
        self._done = False

    def count(self, acked: LaterCounts, name: str) -> None:
        with self._lock:
            if not self._done:
                self._done = True
                acked.add(name)


def _on_ack(
    acked: LaterCounts,
    role: str,
    settlement: Settlement | None,
    envelope: Envelope,
    once: _Once,
    _metadata: Any,
) -> None:
    """The broker acknowledged the write (on the producer's I/O thread)."""
    once.count(acked, counters.written(role))
    if settlement is not None:
        coordinates: Settled = envelope.source.settled_coordinates
        settlement.settle(coordinates)


def _write_failure(envelope: Envelope, error: Exception) -> Failure:
    failure = WriteError(f"{type(error).__name__}: {error}")
    return Failure.from_error(envelope.source, failure, failed_at_ms=int(time.time() * 1000))
