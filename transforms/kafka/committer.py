"""Commit consumer-group offsets from inside the pipeline, after the writes.

One committing client per group per process. A commit never moves a group backwards: if
the group's committed offset is already past ours (another run of the same task), ours is
dropped and the caller is told.
"""

from __future__ import annotations

import threading

from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from transforms.core.config.task import KafkaSpec
from transforms.kafka.client import consumer

__all__ = ["COMMIT_TIMEOUT_MS", "commit_forward"]

COMMIT_TIMEOUT_MS = 5000  # one try; the caller retries while the broker is away

_clients: dict[tuple[str, str], KafkaConsumer] = {}
_lock = threading.Lock()


def _client(spec: KafkaSpec, group: str) -> KafkaConsumer:
    key = (spec.model_dump_json(), group)
    client = _clients.get(key)
    if client is None:
        client = _clients[key] = consumer(spec, group)
    return client


def commit_forward(spec: KafkaSpec, group: str, topic: str, partition: int, offset: int) -> bool:
    """Commit ``offset`` unless the group is already further; True when committed. Raises
    (``KafkaTimeoutError``, ``KafkaConnectionError``, ...) when the broker does not answer
    within ``COMMIT_TIMEOUT_MS``."""
    tp = TopicPartition(topic, partition)
    with _lock:
        client = _client(spec, group)
        current = client.committed(tp, timeout_ms=COMMIT_TIMEOUT_MS)
        if current is not None and current > offset:
            return False
        client.commit(offsets={tp: OffsetAndMetadata(offset, "", -1)}, timeout_ms=COMMIT_TIMEOUT_MS)
        return True
