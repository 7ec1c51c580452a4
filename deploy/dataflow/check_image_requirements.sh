#!/usr/bin/env bash
# What the image's RUN lines do, in a clean venv (Docker is not available here): install
# deploy/dataflow/requirements.txt, then the project without dependencies, then `pip
# check` (the lock agrees with the project's pins). Prints the venv's python. Cached by
# the hash of both files in ~/.cache/llm-enrich, so CI pays for it once per change.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KEY=$(cat "$ROOT/pyproject.toml" "$ROOT/deploy/dataflow/requirements.txt" | sha256sum | cut -c1-12)
VENV=${LLM_ENRICH_CACHE:-$HOME/.cache/llm-enrich}/dataflow-venv-$KEY
if [[ ! -x $VENV/bin/python || ! -f $VENV/.installed ]]; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  { "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/deploy/dataflow/requirements.txt" &&
    "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps "$ROOT" &&
    "$VENV/bin/pip" check; } >"$VENV.log" 2>&1 ||
    { tail -n 30 "$VENV.log" >&2; echo "image requirements did not install (log: $VENV.log)" >&2; exit 1; }
  touch "$VENV/.installed"
fi
echo "$VENV/bin/python"
