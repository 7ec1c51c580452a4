#!/usr/bin/env bash
# Confluent-compatible schema registry (Apicurio Registry, in-memory H2 storage) on 127.0.0.1 for
# local dev and tests. The prebuilt Quarkus distribution comes from Maven Central
# (deploy/registry/pom.xml); no Docker.
#
#   deploy/registry.sh install|start|stop|status
#
# Confluent API base URL: http://127.0.0.1:$LLM_ENRICH_REGISTRY_PORT/apis/ccompat/v7
# Storage is in memory: every start begins with an empty registry.
#
# Env: LLM_ENRICH_CACHE (artifact cache, default ~/.cache/llm-enrich), LLM_ENRICH_STATE (pid/logs,
# default <repo>/.local), LLM_ENRICH_REGISTRY_PORT (18081), LLM_ENRICH_REGISTRY_MGMT_PORT (health
# endpoints, default port+1), LLM_ENRICH_REGISTRY_JAVA (java binary; must be Java 21+; otherwise the
# first Java 21+ among $JAVA_HOME, PATH and /usr/lib/jvm/* is used).
set -euo pipefail

APICURIO_VERSION=3.3.3
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
CACHE=${LLM_ENRICH_CACHE:-$HOME/.cache/llm-enrich}/registry
APP=$CACHE/apicurio-registry-$APICURIO_VERSION
STATE=${LLM_ENRICH_STATE:-$REPO/.local}/registry
PORT=${LLM_ENRICH_REGISTRY_PORT:-18081}
MGMT_PORT=${LLM_ENRICH_REGISTRY_MGMT_PORT:-$((PORT + 1))}
BASE=http://127.0.0.1:$PORT/apis/ccompat/v7
PID_FILE=$STATE/registry.pid
LOG=$STATE/logs/registry.out
TAG=-Dllm_enrich.service=registry  # marks our process on its command line
CDS=$APP/registry.jsa  # dynamic AppCDS archive, (re)written when a registry exits; ~4 s faster starts

install() {  # the marker is a copy of the pom, so editing the pom triggers a re-install
  if cmp -s "$HERE/registry/pom.xml" "$APP/.installed-pom.xml"; then
    [[ ${1:-} == quiet ]] || echo "registry: cached ($APP)"
    return
  fi
  echo "Installing Apicurio Registry $APICURIO_VERSION into $APP ..."
  local dl=$CACHE/.download out
  rm -rf "$APP" "$APP.tmp" "$dl"
  # mvn -q still emits ANSI resets; only show its output on failure
  out=$(mvn -B -q -f "$HERE/registry/pom.xml" -Dapicurio.version="$APICURIO_VERSION" \
    dependency:copy-dependencies -DoutputDirectory="$dl" 2>&1) || { echo "$out" >&2; exit 1; }
  mkdir -p "$APP.tmp"
  tar -xzf "$dl/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz" -C "$APP.tmp"
  [[ -f $APP.tmp/quarkus-run.jar ]] || { echo "quarkus-run.jar missing from the distribution" >&2; exit 1; }
  rm -rf "$dl"
  cp "$HERE/registry/pom.xml" "$APP.tmp/.installed-pom.xml"
  mv "$APP.tmp" "$APP"
}

find_java() {  # Apicurio 3.x is compiled for Java 21 (class file 65)
  local j v cands=()
  [[ -n ${LLM_ENRICH_REGISTRY_JAVA:-} ]] && cands+=("$LLM_ENRICH_REGISTRY_JAVA")
  [[ -n ${JAVA_HOME:-} ]] && cands+=("$JAVA_HOME/bin/java")
  command -v java >/dev/null && cands+=("$(command -v java)")
  cands+=(/usr/lib/jvm/*/bin/java)
  for j in "${cands[@]}"; do
    [[ -x $j ]] || continue
    v=$("$j" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
    [[ ${v%%.*} =~ ^[0-9]+$ ]] && ((${v%%.*} >= 21)) && { echo "$j"; return; }
  done
  echo "No Java 21+ found (Apicurio Registry $APICURIO_VERSION needs it); set LLM_ENRICH_REGISTRY_JAVA" >&2
  return 1
}

running() {  # our registry process is alive (guards against stale pid files / pid reuse)
  local pid
  pid=$(cat "$PID_FILE" 2>/dev/null) && ps -ww -p "$pid" -o args= 2>/dev/null | grep -qF -- "$TAG"
}

# Poll for up to $1 seconds until the health check says ready and the Confluent API answers;
# gives up early if the process dies.
ready() {
  local deadline=$((SECONDS + $1))
  while :; do
    curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$MGMT_PORT/health/ready" \
      && curl -sf -o /dev/null --max-time 2 "$BASE/schemas/types" && return 0
    running || return 1
    ((SECONDS >= deadline)) && return 1
    sleep 0.2
  done
}

start() {
  install quiet
  mkdir -p "$STATE/logs" "$STATE/tmp"
  if running; then
    ready 30 && { echo "Schema registry already running at $BASE"; return; }
    echo "Registry process $(cat "$PID_FILE") is not answering; restarting it" >&2
    stop
  fi
  local java t0=${EPOCHREALTIME/[.,]/}  # microseconds
  java=$(find_java)
  # C1-only JIT + serial GC: roughly halves startup on small machines; peak throughput is irrelevant.
  nohup "$java" "$TAG" -Xms64m -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
    -XX:SharedArchiveFile="$CDS" -XX:+AutoCreateSharedArchive "-Xlog:cds*=off" \
    -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$PORT" \
    -Dquarkus.management.host=127.0.0.1 -Dquarkus.management.port="$MGMT_PORT" \
    -Dapicurio.storage.kind=sql -Dapicurio.datasource.url=jdbc:h2:mem:registry \
    -Dapicurio.datasource.jdbc.initial-size=2 -Dapicurio.datasource.jdbc.min-size=2 \
    -Dapicurio.datasource.jdbc.max-size=10 \
    -Dapicurio.storage.snapshot.location="$STATE/tmp" -Dapicurio.import.work-dir="$STATE/tmp" \
    -Dquarkus.http.access-log.enabled=false \
    '-Dquarkus.log.category."io.apicurio.registry.logging.audit".level=WARN' \
    -jar "$APP/quarkus-run.jar" >>"$LOG" 2>&1 &
  echo $! >"$PID_FILE"
  if ! ready 120; then
    if running; then echo "Schema registry not answering at $BASE after 120 s." >&2
    else echo "Schema registry exited during startup." >&2; fi
    tail -n 40 "$LOG" >&2 || true
    stop >/dev/null
    exit 1
  fi
  local ds=$(((${EPOCHREALTIME/[.,]/} - t0) / 100000))  # tenths of a second
  echo "Schema registry running at $BASE (pid $(cat "$PID_FILE"), started in $((ds / 10)).$((ds % 10)) s)"
}

stop() {
  if running; then
    local pid
    pid=$(cat "$PID_FILE")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 300); do running || break; sleep 0.1; done  # up to 30 s (incl. writing the CDS archive)
    running && kill -9 "$pid"
    echo "Schema registry stopped"
  else
    echo "Schema registry not running"
  fi
  rm -f "$PID_FILE"
}

status() {
  if running && ready 0; then
    echo "running at $BASE"
  else
    echo "not running" >&2
    exit 1
  fi
}

case ${1:-} in
  install | start | stop | status) "$1" ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
