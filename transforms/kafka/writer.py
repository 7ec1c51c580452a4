"""Write envelopes to a topic and report which ones the broker acknowledged."""

from __future__ import annotations

from collections.abc import Sequence

from kafka import KafkaProducer

from transforms.core.envelope import Envelope

__all__ = ["write_all"]


def write_all(
    producer: KafkaProducer, topic: str, envelopes: Sequence[Envelope], timeout_s: float = 60.0
) -> list[tuple[Envelope, Exception | None]]:
    """Send all, flush, and pair each envelope with ``None`` (acknowledged) or its error."""
    futures = [
        (e, producer.send(topic, key=e.key, value=e.value, headers=list(e.headers)))
        for e in envelopes
    ]
    producer.flush(timeout=timeout_s)
    results: list[tuple[Envelope, Exception | None]] = []
    for envelope, future in futures:
        try:
            future.get(timeout=timeout_s)
            results.append((envelope, None))
        except Exception as exc:  # kafka-python raises KafkaError subclasses
            results.append((envelope, exc))
    return results
