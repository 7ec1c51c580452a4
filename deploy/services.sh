#!/usr/bin/env bash
# Start (or stop) the local services the demo and the tests use: Kafka, llama-server and
# a Confluent-compatible schema registry (Apicurio, for the confluent framing).
#   deploy/services.sh start|stop|status [kafka] [llm] [registry]   (default: all three)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
action=${1:-start}
shift || true
for service in "${@:-kafka llm registry}"; do
  for name in $service; do
    bash "$ROOT/deploy/$name.sh" "$action"
  done
done
