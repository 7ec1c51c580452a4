"""Write envelopes to Kafka in batches; emit the source offsets the broker acknowledged."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import apache_beam as beam

from transforms.beam.metrics import counter, dead_letter_counter, halt
from transforms.core.envelope import Envelope
from transforms.core.errors import WriteError
from transforms.core.records import Failure
from transforms.core.task import KafkaSpec
from transforms.kafka.client import producer
from transforms.kafka.writer import systemic_write_error, write_all

FAILED = "failed"


class WriteEnvelopes(beam.DoFn):
    """Main output: ``((topic, partition), offset)`` of settled inputs. ``failed``: Failures
    for envelopes the broker refused (only when ``failures_to_dead_letter``)."""

    def __init__(self, spec: KafkaSpec, topic: str, kind: str, failures_to_dead_letter: bool):
        self._spec, self._topic, self._kind = spec, topic, kind
        self._failures_to_dead_letter = failures_to_dead_letter
        self._written = counter(f"written.{kind}")
        self._refused = counter(f"write_refused.{kind}")

    def setup(self) -> None:
        self._producer = producer(self._spec)

    def process(self, batch: Sequence[Envelope]) -> Iterator[Any]:
        for envelope, error in write_all(self._producer, self._topic, batch):
            if error is None:
                self._written.inc()
                yield envelope.source.settled_coordinates
                continue
            self._refused.inc()
            systemic = systemic_write_error(error)
            if systemic is not None:  # the topic is missing or closed to us: stop the run
                halt(f"systemic: cannot write to {self._topic}: {systemic}")
                continue  # not settled: read again once the fault is fixed
            if self._failures_to_dead_letter:
                dead_letter_counter("write").inc()
                yield beam.pvalue.TaggedOutput(FAILED, _write_failure(envelope, error))
            # else: not settled, so not committed: the record is read again next run.

    def teardown(self) -> None:
        if hasattr(self, "_producer"):
            self._producer.close(timeout=10)


def _write_failure(envelope: Envelope, error: Exception) -> Failure:
    failure = WriteError(f"{type(error).__name__}: {error}")
    return Failure.from_error(envelope.source, failure, failed_at_ms=int(time.time() * 1000))
