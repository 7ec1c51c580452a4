#!/usr/bin/env bash
# The secure broker (SASL_SSL, SCRAM-SHA-512, ACLs) as a service of its own for
# deploy/services.sh: deploy/kafka.sh in secure mode. See deploy/kafka/secure.sh.
#   deploy/kafka-secure.sh install|start|stop|status|reset
LLM_ENRICH_KAFKA_SECURE=1 exec bash "$(dirname "${BASH_SOURCE[0]}")/kafka.sh" "$@"
