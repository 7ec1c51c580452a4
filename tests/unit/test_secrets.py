"""Secrets resolve on the worker: the environment first, then a mounted secrets folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from transforms.core.config.secrets import SECRETS_DIR_ENV, resolve_secret


def test_the_environment_wins_then_the_secrets_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "OPENAI_KEY").write_text("sk-from-file\n")
    monkeypatch.setenv(SECRETS_DIR_ENV, str(tmp_path))
    monkeypatch.delenv("OPENAI_KEY", raising=False)
    assert resolve_secret("OPENAI_KEY") == "sk-from-file"
    monkeypatch.setenv("OPENAI_KEY", "sk-from-env")
    assert resolve_secret("OPENAI_KEY") == "sk-from-env"


def test_an_unknown_or_empty_secret_is_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "EMPTY").write_text("\n")
    monkeypatch.setenv(SECRETS_DIR_ENV, str(tmp_path))
    assert resolve_secret("EMPTY") is None
    assert resolve_secret("NOT_THERE_AT_ALL") is None
