"""Shared fixtures: paths to the shipped example task and schemas."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_TASK = REPO / "pipelines" / "examples" / "reviews" / "task.yaml"
SCHEMAS = REPO / "schemas"


@pytest.fixture
def example_task_path() -> Path:
    return EXAMPLE_TASK
