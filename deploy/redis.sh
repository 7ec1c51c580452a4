#!/usr/bin/env bash
# Redis on 127.0.0.1 for the shared response cache (cache.backend: redis) in local dev and
# tests. The server is Debian's redis-server package (installed with apt-get when missing;
# needs root); no Docker.
#
#   deploy/redis.sh install|start|stop|status
#
# URL for the task file: redis://127.0.0.1:$LLM_ENRICH_REDIS_PORT/0
# It is a cache: bounded by maxmemory (LLM_ENRICH_REDIS_MAXMEMORY, default 256mb) with the
# allkeys-lru policy (the least recently used answers go first), snapshotted to
# $STATE/redis/dump.rdb so a restart keeps what was cached.
#
# Env: LLM_ENRICH_STATE (data/pid/logs, default <repo>/.local), LLM_ENRICH_REDIS_PORT (16379),
# LLM_ENRICH_REDIS_MAXMEMORY (256mb).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
STATE=${LLM_ENRICH_STATE:-$REPO/.local}/redis
PORT=${LLM_ENRICH_REDIS_PORT:-16379}
MAXMEMORY=${LLM_ENRICH_REDIS_MAXMEMORY:-256mb}
PID_FILE=$STATE/redis.pid
LOG=$STATE/redis.log

install() {
  if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
    [[ ${1:-} == quiet ]] || echo "redis: installed ($(command -v redis-server))"
    return
  fi
  if [[ $(id -u) -ne 0 ]]; then
    echo "redis-server is not installed and installing it needs root: apt-get install -y redis-server" >&2
    exit 1
  fi
  echo "Installing redis-server from Debian's packages ..."
  export DEBIAN_FRONTEND=noninteractive
  # a fresh machine may have no package lists yet
  apt-get install -y -q redis-server >"${TMPDIR:-/tmp}/llm-enrich-redis-apt.log" 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q redis-server; } \
    || { cat "${TMPDIR:-/tmp}/llm-enrich-redis-apt.log" >&2; exit 1; }
}

running() {  # our server is alive (guards against stale pid files / pid reuse)
  local pid
  pid=$(cat "$PID_FILE" 2>/dev/null) && ps -ww -p "$pid" -o args= 2>/dev/null \
    | grep -q "redis-server 127.0.0.1:$PORT"
}

# Poll for up to $1 seconds until the server answers PING (and has loaded its snapshot);
# gives up early if the process dies.
ready() {
  local deadline=$((SECONDS + $1))
  while :; do
    [[ $(redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null) == PONG ]] && return 0
    running || return 1
    ((SECONDS >= deadline)) && return 1
    sleep 0.1
  done
}

start() {
  install quiet
  mkdir -p "$STATE"
  if running; then
    ready 30 && { echo "Redis already running on 127.0.0.1:$PORT"; return; }
    echo "Redis process $(cat "$PID_FILE") is not answering; restarting it" >&2
    stop
  fi
  redis-server --bind 127.0.0.1 --port "$PORT" --protected-mode yes \
    --daemonize yes --pidfile "$PID_FILE" --logfile "$LOG" --dir "$STATE" \
    --dbfilename dump.rdb --save "60 1000" --appendonly no \
    --maxmemory "$MAXMEMORY" --maxmemory-policy allkeys-lru
  if ! ready 30; then
    echo "Redis did not answer on 127.0.0.1:$PORT within 30 s." >&2
    tail -n 20 "$LOG" >&2 || true
    stop >/dev/null
    exit 1
  fi
  echo "Redis running at redis://127.0.0.1:$PORT/0 (pid $(cat "$PID_FILE"))"
}

stop() {
  if running; then
    local pid
    pid=$(cat "$PID_FILE")
    kill "$pid" 2>/dev/null || true  # SIGTERM: Redis saves its snapshot and exits
    for _ in $(seq 100); do running || break; sleep 0.1; done
    running && kill -9 "$pid"
    echo "Redis stopped"
  else
    echo "Redis not running"
  fi
  rm -f "$PID_FILE"
}

status() {
  if running && ready 0; then
    echo "running at redis://127.0.0.1:$PORT/0"
  else
    echo "not running" >&2
    exit 1
  fi
}

case ${1:-} in
  install | start | stop | status) "$1" ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
