#!/usr/bin/env bash
# Start (or stop) the local services the demo and the tests use: Kafka, llama-server,
# a Confluent-compatible schema registry (Apicurio, for the confluent framing) and Redis
# (the shared response cache).
#   deploy/services.sh start|stop|status [kafka] [llm] [registry] [redis]   (default: all four)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
action=${1:-start}
shift || true
for service in "${@:-kafka llm registry redis}"; do
  for name in $service; do
    bash "$ROOT/deploy/$name.sh" "$action"
  done
done
