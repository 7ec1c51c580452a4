"""Launch checks: what can be checked before the input topic is touched.

Each failure is one line naming what to fix; ``run`` exits 2 on it. A run that passes them
may still meet a systemic fault later (a key revoked mid-run); that stops it with exit 3.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from transforms.core.config.secrets import resolve_secret
from transforms.core.config.task import KafkaSpec, TaskSpec

__all__ = ["kafka_problem", "preflight"]

WHERE = " (in the environment, or as a file in $LLM_ENRICH_SECRETS_DIR)"


def preflight(task: TaskSpec, *, dead_letter_topic_needed: bool = True) -> list[str]:
    """Problems found, in the order a user should fix them (empty: all good)."""
    problems = [
        f"providers[{p.name}].api_key_env: {p.api_key_env} is not set{WHERE}"
        for p in task.providers
        if p.api_key_env and not resolve_secret(p.api_key_env)
    ]
    kafka = task.kafka
    if kafka.sasl_password_env and not resolve_secret(kafka.sasl_password_env):
        problems.append(f"kafka.sasl_password_env: {kafka.sasl_password_env} is not set{WHERE}")
    if problems:
        return problems
    problems += _topics(task, dead_letter_topic_needed=dead_letter_topic_needed)
    for section in (task.input, task.output):
        if section.framing == "confluent" and section.registry_url:
            problems += _registry(section.registry_url)
    if task.cache.backend != "off":
        from transforms.cache.open import cache_problems

        problems += cache_problems(task.cache)
    if task.coordination.shared:
        from transforms.coordination.open import coordination_problems

        problems += coordination_problems(task)
    return problems


def _topics(task: TaskSpec, *, dead_letter_topic_needed: bool) -> list[str]:
    with _kafka_logs_quiet():
        return _check_topics(task, dead_letter_topic_needed=dead_letter_topic_needed)


@contextlib.contextmanager
def _kafka_logs_quiet() -> Iterator[None]:
    """No kafka-python log lines during the checks (they would repeat, at length, the one
    line the check prints), unless ``-v`` asked for the libraries' logs."""
    kafka_log = logging.getLogger("kafka")
    if kafka_log.getEffectiveLevel() <= logging.INFO:
        yield
        return
    level = kafka_log.level
    kafka_log.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        kafka_log.setLevel(level)


def kafka_problem(kafka: KafkaSpec) -> str | None:
    """One line naming why the broker cannot be used with these settings and the setting
    to check, found in a few seconds (``transforms.kafka.probe``); None when it can."""
    from transforms.kafka.client import common_settings
    from transforms.kafka.probe import probe

    failure = probe(common_settings(kafka))
    if failure is None:
        return None
    server, protocol, detail = failure.server, failure.protocol, failure.detail
    client = kafka.client
    with_tls = "SASL_SSL" if protocol in ("SSL", "SASL_SSL") else "SASL_PLAINTEXT"
    without_sasl = "SSL" if protocol == "SASL_SSL" else "PLAINTEXT"
    user, mechanism = client.get("sasl_plain_username"), client.get("sasl_mechanism")
    return {
        "unreachable": f"kafka: cannot reach {server} ({detail}): "
        "check kafka.bootstrap_servers and that the broker runs",
        "tls_expected": f"kafka: the broker at {server} speaks TLS but "
        f"kafka.client.security_protocol is {protocol}: set SSL or SASL_SSL "
        "(and kafka.client.ssl_cafile)",
        "tls_unexpected": f"kafka: the broker at {server} does not speak TLS but "
        f"kafka.client.security_protocol is {protocol}: set PLAINTEXT or SASL_PLAINTEXT",
        "tls_verify": f"kafka: TLS certificate verify failed ({detail}): "
        "check kafka.client.ssl_cafile",
        "tls_failed": f"kafka: TLS handshake with {server} failed ({detail}): "
        "check kafka.client.ssl_* settings",
        "tls_files": f"kafka: cannot load the TLS files ({detail}): "
        "check kafka.client.ssl_cafile, ssl_certfile and ssl_keyfile",
        "sasl_expected": f"kafka: the listener at {server} wants SASL ({detail}) but "
        f"kafka.client.security_protocol is {protocol}: set {with_tls}, "
        "kafka.client.sasl_mechanism, sasl_plain_username and kafka.sasl_password_env",
        "sasl_unexpected": f"kafka: the listener at {server} does not use SASL but "
        f"kafka.client.security_protocol is {protocol}: set {without_sasl}",
        "sasl_mechanism": f"kafka: the broker at {server} does not offer SASL mechanism "
        f"{mechanism} (it offers {detail}): check kafka.client.sasl_mechanism",
        "auth_failed": f"kafka: authentication failed for user {user!r} ({mechanism}): "
        "check kafka.client.sasl_plain_username and kafka.sasl_password_env",
    }[failure.step]


def _check_topics(task: TaskSpec, *, dead_letter_topic_needed: bool) -> list[str]:
    from transforms.kafka.admin import ensure_topics, existing_topics

    kafka = task.kafka
    problem = kafka_problem(kafka)
    if problem:
        return [problem]
    try:
        existing = existing_topics(kafka)
    except Exception as exc:  # kafka-python: NoBrokersAvailable, KafkaTimeoutError, ...
        return [f"kafka.bootstrap_servers: cannot reach {kafka.bootstrap_servers}: {exc}"]
    problems = []
    if kafka.input_topic not in existing:
        problems.append(f"kafka.input_topic: topic {kafka.input_topic!r} does not exist")
    wanted = {"output_topic": kafka.output_topic}
    if dead_letter_topic_needed:
        wanted["dead_letter_topic"] = kafka.dead_letter_topic
    if kafka.shadow_topic and task.shadows:
        wanted["shadow_topic"] = kafka.shadow_topic
    missing = {key: topic for key, topic in wanted.items() if topic not in existing}
    if missing and kafka.create_topics:
        ensure_topics(kafka, {topic: 1 for topic in missing.values()})
        return problems
    problems += [
        f"kafka.{key}: topic {topic!r} does not exist (create it, or set kafka.create_topics: true)"
        for key, topic in missing.items()
    ]
    return problems


def _registry(url: str) -> list[str]:
    from transforms.registry.client import RegistryClient, RegistryError

    try:
        RegistryClient(url, timeout_s=5).check()
    except RegistryError as exc:
        return [f"schema registry {url} does not answer: {exc}"]
    return []
