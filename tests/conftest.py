"""Shared fixtures: paths to the shipped example task and schemas."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_TASK = REPO / "pipelines" / "examples" / "reviews" / "task.yaml"
SCHEMAS = REPO / "schemas"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test by its tier (its folder), so ``pytest -m unit`` runs in seconds."""
    for item in items:
        tier = item.path.parent.name
        if tier in ("unit", "integration"):
            item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture
def example_task_path() -> Path:
    return EXAMPLE_TASK
