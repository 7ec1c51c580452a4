"""Write envelopes to a topic and report which ones the broker acknowledged.

Each record's outcome is decided once, by the producer: acknowledged, or failed when its
delivery timeout (``delivery_timeout_ms``, retries included) ran out. The writer waits for
that verdict and never gives up earlier, so a late acknowledgement cannot turn a written
record into a dead letter as well.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import kafka.errors
from kafka import KafkaProducer

from transforms.core.envelope import Envelope

__all__ = ["systemic_write_error", "write_all"]

_SYSTEMIC = (
    kafka.errors.AuthorizationError,  # topic, cluster, group, transactional id
    kafka.errors.UnknownTopicOrPartitionError,
    kafka.errors.KafkaTimeoutError,  # no metadata for the topic, or no broker answered
    kafka.errors.KafkaConnectionError,
    kafka.errors.SaslAuthenticationFailedError,
)


def systemic_write_error(error: Exception) -> str | None:
    """Why a refused write would fail for every record (not just this one), or None."""
    if isinstance(error, _SYSTEMIC):
        return f"{type(error).__name__}: {error}"[:300]
    return None


def write_all(
    producer: KafkaProducer, topic: str, envelopes: Sequence[Envelope]
) -> list[tuple[Envelope, Exception | None]]:
    """Send all, flush, and pair each envelope with ``None`` (acknowledged) or its error.

    Never raises for one record: a record the producer refuses at once (too large, say) is
    paired with that error, like one the broker refuses later.
    """
    pending: list[tuple[Envelope, Any]] = []
    results: list[tuple[Envelope, Exception | None]] = []
    for envelope in envelopes:
        try:
            future = producer.send(
                topic, key=envelope.key, value=envelope.value, headers=list(envelope.headers)
            )
            pending.append((envelope, future))
        except Exception as exc:  # e.g. MessageSizeTooLargeError, raised by send() itself
            results.append((envelope, exc))
    with contextlib.suppress(Exception):  # a failed delivery shows in the futures below
        producer.flush()
    for envelope, future in pending:
        try:
            future.get()  # resolved by then: acknowledged or failed at its delivery timeout
            results.append((envelope, None))
        except Exception as exc:  # kafka-python raises KafkaError subclasses
            results.append((envelope, exc))
    return results
