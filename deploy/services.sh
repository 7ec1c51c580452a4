#!/usr/bin/env bash
# Start (or stop) the local services the demo and the tests use: Kafka, llama-server,
# a second llama-server with Gemma 3 270M (`llm-gemma`: the cascade's second model), a
# Confluent-compatible schema registry (Apicurio, for the confluent framing), Redis
# (the shared response cache) and a second, secure Kafka (SASL_SSL, SCRAM users, ACLs: the
# tests of authentication and TLS errors); optionally a Flink cluster with Beam's job server
# (`flink`: named explicitly, not started by default).
#   deploy/services.sh start|stop|status [kafka] [llm] [llm-gemma] [registry] [redis]
#                                       [kafka-secure] [flink]
#   (default: all but flink)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
action=${1:-start}
shift || true
for service in "${@:-kafka llm llm-gemma registry redis kafka-secure}"; do
  for name in $service; do
    bash "$ROOT/deploy/$name.sh" "$action"
  done
done
