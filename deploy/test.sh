#!/usr/bin/env bash
# The test command: set up, start the real services, lint, type-check, run every test tier.
# Fails when any step fails, and when pytest collected no test (its exit code 5).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

bash deploy/setup.sh
bash deploy/chromium.sh install  # the HTML report tests render in headless Chromium (tests only)
PYTHON="$ROOT/.venv/bin/python" bash deploy/llm-gemma.sh install  # the cascade's second model (tests only)
PYTHON="$ROOT/.venv/bin/python" bash deploy/flink.sh install  # tests/integration/test_flink.py (tests only)
bash deploy/services.sh start
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
