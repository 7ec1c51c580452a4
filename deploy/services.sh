#!/usr/bin/env bash
# Start (or stop) the local services the demo and the tests use: Kafka, llama-server and
# a Confluent-compatible schema registry (Apicurio, for the confluent framing).
#   deploy/services.sh start|stop|status
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
bash "$ROOT/deploy/kafka.sh" "${1:-start}"
bash "$ROOT/deploy/llm.sh" "${1:-start}"
bash "$ROOT/deploy/registry.sh" "${1:-start}"
