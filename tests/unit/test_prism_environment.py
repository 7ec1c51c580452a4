"""Prism's job server is started with an allow-list of the launcher's environment."""

from __future__ import annotations

from pipelines.runner import prism_environment


def test_only_the_basics_reach_prism_never_a_secret() -> None:
    launcher = {
        "PATH": "/usr/bin",
        "HOME": "/home/u",
        "TMPDIR": "/tmp/x",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "GOMAXPROCS": "2",
        "OPENAI_API_KEY": "sk-provider",  # a provider's api_key_env
        "KAFKA_PASSWORD": "scram-secret",  # kafka.sasl_password_env
        "REDIS_PASSWORD": "redis-secret",  # cache.password_env
        "MODERATION_KEY": "mod-secret",  # safety.moderation.api_key_env
        "AWS_SECRET_ACCESS_KEY": "anything else a shell may hold",
        "LLM_ENRICH_SECRETS_DIR": "/run/secrets",
    }
    assert prism_environment(launcher) == {
        "PATH": "/usr/bin",
        "HOME": "/home/u",
        "TMPDIR": "/tmp/x",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "GOMAXPROCS": "2",
    }
