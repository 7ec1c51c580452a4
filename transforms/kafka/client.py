"""Build kafka-python clients from the task's ``kafka`` section (on the worker)."""

from __future__ import annotations

from typing import Any

import kafka.errors
from kafka import KafkaConsumer, KafkaProducer

from transforms.core.config.secrets import resolve_secret
from transforms.core.config.task import (
    KAFKA_CONSUMER_KEYS,
    KAFKA_PRODUCER_KEYS,
    KAFKA_SECURITY_KEYS,
    KafkaSpec,
)
from transforms.core.errors import TaskConfigError

__all__ = ["broker_away", "common_settings", "consumer", "producer"]


def common_settings(spec: KafkaSpec) -> dict[str, Any]:
    """Bootstrap servers, security settings and the SASL password from the environment."""
    settings: dict[str, Any] = {"bootstrap_servers": spec.bootstrap_servers.split(",")}
    security = {k: v for k, v in spec.client.items() if k in KAFKA_SECURITY_KEYS}
    settings.update(security)
    if spec.sasl_password_env:
        password = resolve_secret(spec.sasl_password_env)
        if not password:
            raise TaskConfigError(
                f"kafka.sasl_password_env: environment variable {spec.sasl_password_env} is not set"
            )
        settings["sasl_plain_password"] = password
    return settings


def consumer(spec: KafkaSpec, group_id: str | None, **overrides: Any) -> KafkaConsumer:
    client = {
        k: v for k, v in spec.client.items() if k not in KAFKA_PRODUCER_KEYS | KAFKA_SECURITY_KEYS
    }
    return KafkaConsumer(
        **common_settings(spec),
        **client,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **overrides,
    )


def producer(spec: KafkaSpec) -> KafkaProducer:
    client = {
        k: v for k, v in spec.client.items() if k not in KAFKA_CONSUMER_KEYS | KAFKA_SECURITY_KEYS
    }
    # One delivery deadline: kafka-python retries until delivery_timeout_ms (default 120 s)
    # and then fails the record's future; the writer waits for that verdict, never less.
    settings: dict[str, Any] = {"acks": "all", "linger_ms": 5}
    settings.update(client)
    return KafkaProducer(**common_settings(spec), **settings)


def broker_away(exc: BaseException) -> bool:
    """The call failed for want of the broker (a restart, a network blip: kafka-python's
    retriable errors, a socket error), not because of what was asked
    (authorization, a bad request, a defect): worth trying again."""
    if isinstance(exc, kafka.errors.KafkaError):  # incl. KafkaTimeoutError "Unable to bootstrap"
        return bool(exc.retriable)
    return isinstance(exc, OSError)
