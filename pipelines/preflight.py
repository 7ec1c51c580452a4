"""Launch checks: what can be checked before the input topic is touched.

Each failure is one line naming what to fix; ``run`` exits 2 on it. A run that passes them
may still meet a systemic fault later (a key revoked mid-run); that stops it with exit 3.
"""

from __future__ import annotations

from transforms.core.config.secrets import resolve_secret
from transforms.core.config.task import TaskSpec

__all__ = ["preflight"]

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
    problems += _topics(task, dead_letter_topic_needed)
    for section in (task.input, task.output):
        if section.framing == "confluent" and section.registry_url:
            problems += _registry(section.registry_url)
    if task.cache.backend != "off":
        from transforms.cache.open import cache_problems

        problems += cache_problems(task.cache)
    return problems


def _topics(task: TaskSpec, dead_letter_topic_needed: bool) -> list[str]:
    from transforms.kafka.admin import ensure_topics, existing_topics

    kafka = task.kafka
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
