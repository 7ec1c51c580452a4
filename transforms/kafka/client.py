"""Build kafka-python clients from the task's ``kafka`` section (on the worker)."""

from __future__ import annotations

import os
from typing import Any

from kafka import KafkaConsumer, KafkaProducer

from transforms.core.errors import TaskConfigError
from transforms.core.task import KafkaSpec

__all__ = ["common_settings", "consumer", "producer"]

_PRODUCER_ONLY = {"max_request_size", "compression_type", "linger_ms"}
_CONSUMER_ONLY = {"max_partition_fetch_bytes", "fetch_max_bytes"}
_SECURITY = {
    "security_protocol",
    "ssl_cafile",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_check_hostname",
    "sasl_mechanism",
    "sasl_plain_username",
    "sasl_kerberos_service_name",
}


def common_settings(spec: KafkaSpec) -> dict[str, Any]:
    """Bootstrap servers, security settings and the SASL password from the environment."""
    settings: dict[str, Any] = {"bootstrap_servers": spec.bootstrap_servers.split(",")}
    security = {k: v for k, v in spec.client.items() if k.startswith(("security", "ssl", "sasl"))}
    settings.update(security)
    if spec.sasl_password_env:
        password = os.environ.get(spec.sasl_password_env)
        if not password:
            raise TaskConfigError(
                f"kafka.sasl_password_env: environment variable {spec.sasl_password_env} is not set"
            )
        settings["sasl_plain_password"] = password
    return settings


def consumer(spec: KafkaSpec, group_id: str | None, **overrides: Any) -> KafkaConsumer:
    client = {k: v for k, v in spec.client.items() if k not in _PRODUCER_ONLY | _SECURITY}
    return KafkaConsumer(
        **common_settings(spec),
        **client,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **overrides,
    )


def producer(spec: KafkaSpec) -> KafkaProducer:
    client = {k: v for k, v in spec.client.items() if k not in _CONSUMER_ONLY | _SECURITY}
    settings: dict[str, Any] = {"acks": "all", "retries": 5, "linger_ms": 5}
    settings.update(client)
    return KafkaProducer(**common_settings(spec), **settings)
