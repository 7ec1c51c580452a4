"""Write envelopes to a topic and report which ones the broker acknowledged."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from kafka import KafkaProducer

from transforms.core.envelope import Envelope

__all__ = ["write_all"]


def write_all(
    producer: KafkaProducer, topic: str, envelopes: Sequence[Envelope], timeout_s: float = 60.0
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
    with contextlib.suppress(Exception):  # a flush timeout shows in the futures below
        producer.flush(timeout=timeout_s)
    for envelope, future in pending:
        try:
            future.get(timeout=timeout_s)
            results.append((envelope, None))
        except Exception as exc:  # kafka-python raises KafkaError subclasses
            results.append((envelope, exc))
    return results
