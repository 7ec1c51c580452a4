#!/usr/bin/env bash
# What the image's RUN line does, in a clean venv (Docker is not available here): install
# the project with its `dataflow` extra from the pinned requirements. Prints the venv's
# python. Cached by the pyproject's hash under .local/, so CI pays for it once per change.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KEY=$(sha256sum "$ROOT/pyproject.toml" | cut -c1-12)
VENV=${LLM_ENRICH_STATE:-$ROOT/.local}/dataflow-venv-$KEY
if [[ ! -x $VENV/bin/python || ! -f $VENV/.installed ]]; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "$ROOT[dataflow]" >"$VENV.log" 2>&1 ||
    { tail -n 30 "$VENV.log" >&2; echo "image requirements did not install (log: $VENV.log)" >&2; exit 1; }
  touch "$VENV/.installed"
fi
echo "$VENV/bin/python"
