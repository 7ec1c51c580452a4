"""The task's ``cache:`` section: validated at load, the SQLite path resolved, secrets
kept out of the file; ``--no-cache`` turns it off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import EXAMPLE_TASK
from transforms.cache.open import cache_problems
from transforms.core.config.cache import CacheSpec
from transforms.core.config.task import load_task
from transforms.core.errors import TaskConfigError


def _task(tmp_path: Path, cache: dict[str, Any] | None) -> Path:
    raw = yaml.safe_load(EXAMPLE_TASK.read_text())
    for section in ("input", "output"):
        raw[section]["schema"] = str(EXAMPLE_TASK.parent / raw[section]["schema"])
    if cache is not None:
        raw["cache"] = cache
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_default_is_a_sqlite_file_in_the_state_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLM_ENRICH_STATE", str(tmp_path / "state"))
    cache = load_task(_task(tmp_path, None)).cache
    assert cache.backend == "sqlite" and cache.ttl_s == 30 * 24 * 3600
    assert cache.path == tmp_path / "state" / "cache" / "answers.sqlite"
    monkeypatch.delenv("LLM_ENRICH_STATE")
    monkeypatch.chdir(tmp_path)
    assert load_task(_task(tmp_path, None)).cache.path == tmp_path / ".local/cache/answers.sqlite"


def test_a_relative_path_is_relative_to_the_task_file(tmp_path: Path) -> None:
    cache = load_task(_task(tmp_path, {"path": "cache/a.sqlite", "max_entries": 10})).cache
    assert cache.path == tmp_path / "cache" / "a.sqlite" and cache.max_entries == 10


@pytest.mark.parametrize(
    ("cache", "expected"),
    [
        ({"backend": "memcached"}, "cache.backend: Input should be 'sqlite', 'redis' or 'off'"),
        ({"size": 10}, "cache.size: unknown key"),
        ({"ttl_s": 0}, "cache.ttl_s: Input should be greater than 0"),
        ({"max_entries": -1}, "cache.max_entries: Input should be greater than 0"),
        ({"backend": "redis"}, "backend 'redis' needs url"),
        ({"backend": "redis", "url": "http://h:1"}, "url must be redis://"),
        (
            {"backend": "redis", "url": "redis://:hunter2@127.0.0.1:16379/0"},
            "url must not hold a password",
        ),
        (
            {"backend": "redis", "url": "redis://h:1/0", "max_entries": 5},
            "'max_entries' does not apply to backend 'redis'",
        ),
        ({"backend": "sqlite", "url": "redis://h:1/0"}, "'url' does not apply to backend"),
    ],
)
def test_a_wrong_cache_section_is_one_line_naming_the_key(
    tmp_path: Path, cache: dict[str, Any], expected: str
) -> None:
    with pytest.raises(TaskConfigError) as caught:
        load_task(_task(tmp_path, cache))
    message = str(caught.value)
    assert expected in message and "\n" not in message
    assert "hunter2" not in message


def test_off_and_redis_load(tmp_path: Path) -> None:
    assert load_task(_task(tmp_path, {"backend": "off"})).cache.path is None
    redis = {"backend": "redis", "url": "redis://127.0.0.1:16379/0", "password_env": "RP"}
    assert load_task(_task(tmp_path, redis)).cache.url == "redis://127.0.0.1:16379/0"


def test_the_launch_check_names_a_missing_password_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LLM_ENRICH_TEST_NO_SUCH_VAR", raising=False)
    spec = CacheSpec(
        backend="redis", url="redis://127.0.0.1:1/0", password_env="LLM_ENRICH_TEST_NO_SUCH_VAR"
    )
    assert cache_problems(spec) == ["cache.password_env: LLM_ENRICH_TEST_NO_SUCH_VAR is not set"]


def test_the_launch_check_of_a_corrupted_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "answers.sqlite"
    path.write_bytes(b"\x00garbage" * 1000)
    (problem,) = cache_problems(CacheSpec(path=path))
    assert problem.startswith(f"cache.path {path}: not a usable SQLite cache")
    assert cache_problems(CacheSpec(path=tmp_path / "fresh.sqlite")) == []
    assert cache_problems(CacheSpec(backend="off")) == []
