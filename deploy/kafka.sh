#!/usr/bin/env bash
# Single-node Apache Kafka (KRaft, combined broker+controller) on 127.0.0.1 for local dev and tests.
# Jars come from Maven Central (deploy/kafka/pom.xml); no Docker, no Kafka tarball.
#
#   deploy/kafka.sh install|start|stop|status|reset [--secure]
#
# --secure (or LLM_ENRICH_KAFKA_SECURE=1; deploy/kafka-secure.sh is the same as a service): a
# second instance with its own ports and state, whose listener is SASL_SSL (SCRAM-SHA-512 users
# admin, enricher and reader) with ACLs enforced; see deploy/kafka/secure.sh for what it makes
# and where the CA and the passwords are. The plaintext instance is not touched.
#
# Env: LLM_ENRICH_CACHE (jar cache, default ~/.cache/llm-enrich), LLM_ENRICH_STATE (config/data/logs,
# default <repo>/.local), LLM_ENRICH_KAFKA_PORT (19092), LLM_ENRICH_KAFKA_CONTROLLER_PORT (19093),
# LLM_ENRICH_KAFKA_SECURE_PORT (19094), LLM_ENRICH_KAFKA_SECURE_CONTROLLER_PORT (19095),
# JAVA_HOME, PYTHON (interpreter with kafka-python, used for the readiness probe; default python3).
set -euo pipefail

KAFKA_VERSION=4.4.0
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
LIBS=${LLM_ENRICH_CACHE:-$HOME/.cache/llm-enrich}/kafka-$KAFKA_VERSION/libs
SECURE=${LLM_ENRICH_KAFKA_SECURE:-0}
[[ ${2:-} == --secure ]] && SECURE=1
if [[ $SECURE == 1 ]]; then
  NAME=kafka-secure
  PORT=${LLM_ENRICH_KAFKA_SECURE_PORT:-19094}
  CONTROLLER_PORT=${LLM_ENRICH_KAFKA_SECURE_CONTROLLER_PORT:-19095}
  HEAP=(-Xms64m -Xmx256m)
else
  NAME=kafka
  PORT=${LLM_ENRICH_KAFKA_PORT:-19092}
  CONTROLLER_PORT=${LLM_ENRICH_KAFKA_CONTROLLER_PORT:-19093}
  HEAP=(-Xms256m -Xmx512m)
fi
STATE=${LLM_ENRICH_STATE:-$REPO/.local}/$NAME
JAVA=${JAVA_HOME:+$JAVA_HOME/bin/}java
PYTHON=${PYTHON:-python3}
PID_FILE=$STATE/kafka.pid
LOG=$STATE/logs/server.log
[[ $SECURE == 1 ]] && source "$HERE/kafka/secure.sh"  # TLS, CLIENT, secure_* functions
CDS=$LIBS/kafka.jsa  # AppCDS class archive, written when the first broker exits; ~2 s faster starts
# C1-only JIT: roughly halves startup on small machines; peak throughput is irrelevant here.
JVM=(-cp "$LIBS/*" -XX:TieredStopAtLevel=1 -XX:+UseSerialGC "-Xlog:cds*=off" -Djava.awt.headless=true
     -Dlog4j2.configurationFile="$HERE/kafka/log4j2.properties" -Dkafka.logs.dir="$STATE/logs")

install() {  # the marker is a copy of the pom, so editing the pom triggers a re-install
  if cmp -s "$HERE/kafka/pom.xml" "$LIBS/.installed-pom.xml"; then
    [[ ${1:-} == quiet ]] || echo "kafka: cached ($LIBS)"
    return
  fi
  echo "Installing Kafka $KAFKA_VERSION jars into $LIBS ..."
  rm -rf "$LIBS"
  local out  # mvn -q still emits ANSI resets; only show its output on failure
  out=$(mvn -B -q -f "$HERE/kafka/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DoutputDirectory="$LIBS" 2>&1) || { echo "$out" >&2; exit 1; }
  cp "$HERE/kafka/pom.xml" "$LIBS/.installed-pom.xml"
}

running() {  # our broker process is alive (guards against stale pid files / pid reuse)
  local pid
  pid=$(cat "$PID_FILE" 2>/dev/null) && ps -ww -p "$pid" -o args= 2>/dev/null | grep -q kafka.Kafka
}

# Poll for up to $1 seconds until the broker answers a DescribeCluster request listing itself as
# unfenced (a TCP connect is not enough); gives up early if the broker process dies. In secure
# mode it logs in as the admin (the CA and password from the client folder).
ready() {
  "$PYTHON" - "127.0.0.1:$PORT" "$1" "$(cat "$PID_FILE")" "$([[ $SECURE == 1 ]] && echo "$CLIENT")" <<'PY'
import logging, os, sys, time
logging.disable(logging.CRITICAL)  # kafka-python logs every refused connection
from kafka import KafkaAdminClient
server, deadline, pid = sys.argv[1], time.monotonic() + float(sys.argv[2]), int(sys.argv[3])
security = {}
if sys.argv[4]:
    security = dict(security_protocol="SASL_SSL", ssl_cafile=f"{sys.argv[4]}/ca.pem",
                    sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="admin",
                    sasl_plain_password=open(f"{sys.argv[4]}/KAFKA_ADMIN_PASSWORD").read())
while True:
    try:
        admin = KafkaAdminClient(bootstrap_servers=server, bootstrap_timeout_ms=1000, request_timeout_ms=2000,
                                 reconnect_backoff_ms=50, reconnect_backoff_max_ms=100, **security)
        try:
            if any(not b.get("is_fenced") for b in admin.describe_cluster()["brokers"]):
                sys.exit(0)
        finally:
            admin.close()
    except Exception:
        pass
    if time.monotonic() > deadline or not os.path.exists(f"/proc/{pid}"):
        sys.exit(1)
    time.sleep(0.2)
PY
}

listeners() {
  if [[ $SECURE == 1 ]]; then secure_listeners; return; fi
  cat <<CONF
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
CONF
}

write_config() {
  (umask 077; listeners >"$STATE/server.properties")  # secure mode: it holds passwords
  cat >>"$STATE/server.properties" <<CONF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
log.dirs=$STATE/data
# fast, single-node friendly settings for tests
auto.create.topics.enable=true
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
group.consumer.min.session.timeout.ms=1000
group.consumer.min.heartbeat.interval.ms=500
log.retention.ms=-1
num.network.threads=2
num.io.threads=4
CONF
}

start() {
  "$PYTHON" -c 'import kafka' 2>/dev/null \
    || { echo "'$PYTHON' cannot import kafka-python (needed for the readiness probe); set PYTHON" >&2; exit 1; }
  install quiet
  mkdir -p "$STATE/logs"
  if running; then
    ready 60 && { echo "Kafka already running on 127.0.0.1:$PORT"; return; }
    echo "Kafka process $(cat "$PID_FILE") is not answering; restarting it" >&2
    stop
  fi
  local t0=${EPOCHREALTIME/[.,]/}  # microseconds
  local cds=(-XX:SharedArchiveFile="$CDS") dump=() users=()
  if [[ ! -f $CDS ]]; then  # only the plaintext instance writes the archive: never two at once
    cds=()
    [[ $SECURE == 1 ]] || dump=(-XX:ArchiveClassesAtExit="$CDS")
  fi
  if [[ $SECURE == 1 ]]; then
    secure_material
    mapfile -t users < <(secure_format_args)
  fi
  write_config
  if [[ ! -f $STATE/data/meta.properties ]]; then
    local id
    id=$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | cut -c1-22)  # Kafka's base64url Uuid
    "$JAVA" "${JVM[@]}" "${cds[@]}" kafka.tools.StorageTool format \
      --config "$STATE/server.properties" --cluster-id "${id/#-/A}" "${users[@]}" \
      >>"$STATE/logs/kafka.out" 2>&1 || { tail -n 20 "$STATE/logs/kafka.out" >&2; exit 1; }
  fi
  nohup "$JAVA" "${HEAP[@]}" "${JVM[@]}" "${cds[@]}" "${dump[@]}" \
    kafka.Kafka "$STATE/server.properties" >>"$STATE/logs/kafka.out" 2>&1 &
  echo $! >"$PID_FILE"
  if ! ready 60; then
    if running; then echo "Kafka not answering on 127.0.0.1:$PORT after 60 s." >&2
    else echo "Kafka exited during startup." >&2; fi
    tail -n 40 "$LOG" "$STATE/logs/kafka.out" >&2 || true
    stop >/dev/null
    exit 1
  fi
  if [[ $SECURE == 1 ]]; then
    "$PYTHON" "$HERE/kafka/acls.py" "127.0.0.1:$PORT" "$CLIENT" || { stop >/dev/null; exit 1; }
  fi
  local ds=$(((${EPOCHREALTIME/[.,]/} - t0) / 100000))  # tenths of a second
  echo "Kafka$([[ $SECURE == 1 ]] && echo " (SASL_SSL, ACLs)") running on 127.0.0.1:$PORT" \
    "(pid $(cat "$PID_FILE"), started in $((ds / 10)).$((ds % 10)) s)"
  if [[ $SECURE == 1 ]]; then echo "  its CA and users' passwords: $CLIENT"; fi
}

stop() {
  if running; then
    local pid
    pid=$(cat "$PID_FILE")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 300); do running || break; sleep 0.1; done  # up to 30 s for a clean shutdown
    running && kill -9 "$pid"
    echo "Kafka stopped"
  else
    echo "Kafka not running"
  fi
  rm -f "$PID_FILE"
}

status() {
  if running && ready 0; then
    echo "running on 127.0.0.1:$PORT"
  else
    echo "not running" >&2
    exit 1
  fi
}

reset() {
  stop
  rm -rf "$STATE/data"
  echo "Deleted $STATE/data"
  if [[ $SECURE == 1 ]]; then rm -rf "$TLS" "$CLIENT"; echo "Deleted the CA and the users"; fi
}

case ${1:-} in
  install | start | stop | status | reset) "$1" ;;
  *) echo "usage: $0 install|start|stop|status|reset" >&2; exit 2 ;;
esac
