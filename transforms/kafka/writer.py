"""Write envelopes to a topic and learn, per record, whether the broker acknowledged it.

Each record's outcome is decided once, by the producer: acknowledged, or failed when its
delivery timeout (``delivery_timeout_ms``, retries included) ran out. ``verdict`` waits
for that and never gives up earlier, so a late acknowledgement cannot turn a written
record into a dead letter as well.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

import kafka.errors
from kafka import KafkaProducer

from transforms.core.envelope import Envelope

__all__ = ["flush", "send", "systemic_write_error", "verdict"]

_SYSTEMIC = (
    kafka.errors.AuthorizationError,  # topic, cluster, group, transactional id
    kafka.errors.UnknownTopicOrPartitionError,
    kafka.errors.KafkaTimeoutError,  # no metadata for the topic, or no broker answered
    kafka.errors.KafkaConnectionError,
    kafka.errors.SaslAuthenticationFailedError,
)


# kafka-python turns a refused InitProducerId (its producers are idempotent: a user who may
# write to no topic gets ClusterAuthorizationFailed) into a plain KafkaError naming the cause.
_NAMES_AN_AUTHORIZATION_ERROR = re.compile(r"\b\w+AuthorizationFailedError\b")


def systemic_write_error(error: Exception) -> str | None:
    """Why a refused write would fail for every record (not just this one), or None."""
    if isinstance(error, _SYSTEMIC):
        return f"{type(error).__name__}: {error}"[:300]
    named = _NAMES_AN_AUTHORIZATION_ERROR.search(str(error))
    if isinstance(error, kafka.errors.KafkaError) and named:
        return f"{named.group(0)}: the broker refused our producer ({error})"[:300]
    return None


def send(producer: KafkaProducer, topic: str, envelope: Envelope) -> Any:
    """Start writing; the future to pass to ``verdict``, or the error ``send`` raised at
    once (a record too large, say). Never raises for one record."""
    try:
        return producer.send(
            topic, key=envelope.key, value=envelope.value, headers=list(envelope.headers)
        )
    except Exception as exc:  # e.g. MessageSizeTooLargeError, raised by send() itself
        return exc


def flush(producer: KafkaProducer) -> None:
    with contextlib.suppress(Exception):  # a failed delivery shows in its future
        producer.flush()


def verdict(sent: Any) -> Exception | None:
    """None when the broker acknowledged the record, else why not. Call after ``flush``."""
    if isinstance(sent, Exception):
        return sent
    try:
        sent.get()  # resolved by now: acknowledged, or failed at its delivery timeout
        return None
    except Exception as exc:  # kafka-python raises KafkaError subclasses
        return exc
