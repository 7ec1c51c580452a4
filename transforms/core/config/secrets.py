"""Where secrets come from: never the task file, never the pipeline graph.

A task names a secret (``providers[].api_key_env``, ``kafka.sasl_password_env``); the worker
resolves the name when it builds its clients, in this order:

1. the environment variable of that name;
2. a file of that name in the folder ``LLM_ENRICH_SECRETS_DIR`` names: how Kubernetes
   secret volumes and the Secret Manager CSI driver (GKE) mount secrets, one file each.

Nothing resolved is ever logged, pickled with the pipeline, or put in a dead letter.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["SECRETS_DIR_ENV", "required_secret", "resolve_secret"]

SECRETS_DIR_ENV = "LLM_ENRICH_SECRETS_DIR"


def resolve_secret(name: str) -> str | None:
    value = os.environ.get(name)
    if value:
        return value
    folder = os.environ.get(SECRETS_DIR_ENV)
    if folder:
        path = Path(folder) / name
        if path.is_file():
            return path.read_text(encoding="utf-8").strip() or None
    return None


def required_secret(name: str | None, where: str) -> str:
    """The secret a task names at ``where`` ("" when it names none). Raises
    ``TaskConfigError`` when it names one that is not set."""
    if not name:
        return ""
    value = resolve_secret(name)
    if not value:
        from transforms.core.errors import TaskConfigError

        raise TaskConfigError(f"{where}: environment variable {name} is not set")
    return value
