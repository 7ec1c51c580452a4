"""Write envelopes to Kafka: send as they come, flush at the end of the bundle, and emit
the coordinates the broker acknowledged (each with its record's timestamp and window)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam.utils.windowed_value import WindowedValue

from transforms.beam.failures import log_failure
from transforms.beam.metrics import counter, dead_letter_counter, halt
from transforms.core.config.task import KafkaSpec
from transforms.core.errors import WriteError
from transforms.core.formats.envelope import Envelope
from transforms.core.records import Failure
from transforms.kafka.client import producer
from transforms.kafka.writer import flush, send, systemic_write_error, verdict

FAILED = "failed"


class WriteEnvelopes(beam.DoFn):
    """Main output: ``Settled`` coordinates of inputs whose envelope was acknowledged.
    ``failed``: Failures for envelopes the broker refused (only when
    ``failures_to_dead_letter``; else they stay unsettled, read again next run)."""

    def __init__(self, spec: KafkaSpec, topic: str, kind: str, failures_to_dead_letter: bool):
        self._spec, self._topic, self._kind = spec, topic, kind
        self._failures_to_dead_letter = failures_to_dead_letter
        self._written = counter(f"written.{kind}")
        self._refused = counter(f"write_refused.{kind}")

    def setup(self) -> None:
        self._producer = producer(self._spec)

    def start_bundle(self) -> None:
        self._sent: list[tuple[Envelope, Any, Any, Any]] = []

    def process(
        self,
        envelope: Envelope,
        timestamp: Any = beam.DoFn.TimestampParam,
        window: Any = beam.DoFn.WindowParam,
    ) -> None:
        self._sent.append(
            (envelope, send(self._producer, self._topic, envelope), timestamp, window)
        )

    def finish_bundle(self) -> Iterator[Any]:
        flush(self._producer)
        sent, self._sent = self._sent, []
        for envelope, future, timestamp, window in sent:
            error = verdict(future)
            if error is None:
                self._written.inc()
                yield WindowedValue(envelope.source.settled_coordinates, timestamp, (window,))
                continue
            self._refused.inc()
            log_failure(f"write to {self._topic}", type(error).__name__, str(error))
            systemic = systemic_write_error(error)
            if systemic is not None:  # the topic is missing or closed to us: stop the run
                halt(f"systemic: cannot write to {self._topic}: {systemic}")
            elif self._failures_to_dead_letter:
                dead_letter_counter("write").inc()
                failure = _write_failure(envelope, error)
                yield beam.pvalue.TaggedOutput(FAILED, WindowedValue(failure, timestamp, (window,)))
            # else: not settled, so not committed: the record is read again next run.

    def teardown(self) -> None:
        if hasattr(self, "_producer"):
            self._producer.close(timeout=10)


def _write_failure(envelope: Envelope, error: Exception) -> Failure:
    failure = WriteError(f"{type(error).__name__}: {error}")
    return Failure.from_error(envelope.source, failure, failed_at_ms=int(time.time() * 1000))
