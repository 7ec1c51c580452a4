#!/usr/bin/env bash
# What the image's RUN lines do, in a clean venv (Docker is not available here): install
# deploy/dataflow/requirements.txt, then the project without dependencies, then `pip
# check` (the lock agrees with the project's pins). Prints the venv's python. The
# dependencies are cached by the hash of both files in ~/.cache/llm-enrich, so CI pays for
# them once per change; the project itself is installed anew every time (a few seconds),
# so the venv never holds an older version of its code.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KEY=$(cat "$ROOT/pyproject.toml" "$ROOT/deploy/dataflow/requirements.txt" | sha256sum | cut -c1-12)
VENV=${LLM_ENRICH_CACHE:-$HOME/.cache/llm-enrich}/dataflow-venv-$KEY
if [[ ! -x $VENV/bin/python || ! -f $VENV/.installed ]]; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/deploy/dataflow/requirements.txt" \
    >"$VENV.log" 2>&1 ||
    { tail -n 30 "$VENV.log" >&2; echo "image requirements did not install (log: $VENV.log)" >&2; exit 1; }
  touch "$VENV/.installed"
fi
{ "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps --force-reinstall "$ROOT" &&
  "$VENV/bin/pip" check; } >>"$VENV.log" 2>&1 ||
  { tail -n 30 "$VENV.log" >&2; echo "the project did not install (log: $VENV.log)" >&2; exit 1; }
echo "$VENV/bin/python"
