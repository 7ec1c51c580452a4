"""Topic administration for the demo, tests and the producer command."""

from __future__ import annotations

import contextlib

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from transforms.core.config.task import KafkaSpec
from transforms.kafka.client import common_settings

__all__ = ["ensure_topics", "existing_topics"]


def existing_topics(spec: KafkaSpec) -> set[str]:
    """The topics the broker has (listing them creates none)."""
    admin = KafkaAdminClient(**common_settings(spec), request_timeout_ms=10_000)
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def ensure_topics(spec: KafkaSpec, topics: dict[str, int]) -> None:
    """Create each missing topic with the given partition count (replication factor 1)."""
    admin = KafkaAdminClient(**common_settings(spec))
    try:
        existing = set(admin.list_topics())
        missing = [NewTopic(t, n, 1) for t, n in topics.items() if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # created meanwhile
                admin.create_topics(missing)
    finally:
        admin.close()
