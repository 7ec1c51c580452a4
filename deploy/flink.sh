#!/usr/bin/env bash
# A standalone Apache Flink cluster on 127.0.0.1 (a JobManager and two TaskManagers, separate
# JVMs, two slots each) with Apache Beam's Flink job server in front of it, for
# `llm-enrich run --runner flink` and its tests. No Docker, no Flink tarball:
#   Flink        flink-dist and its log4j jars from the PyPI sdist apache-flink-libraries
#   job server   org.apache.beam:beam-runners-flink-1.19 and its dependencies from Maven
#                Central (deploy/flink/pom.xml; Beam's shaded job-server jar is not served)
#   SDK boot     Beam's Python SDK harness boot program (`go install`), run by the
#                TaskManagers for PROCESS workers (the launcher wraps it: pipelines/runner.py)
# Beam's runner jars are on the JobManager's and the TaskManagers' classpath, and the job
# server is Beam's with an invoker that ships no jars with a job (deploy/flink/
# StageNothingJobServer.java, compiled at install): a job no longer uploads 152 MB.
#
#   deploy/flink.sh install|start|stop|status|path|jobs|cancel ID
#
# `start` also fills in what is missing from a running cluster (a TaskManager or the job
# server that died: the others keep running; a dead JobManager restarts everything).
# `path` prints the boot program's location. `jobs` lists the jobs that have not ended (id,
# state, minutes, name: `llm-enrich run --runner flink` names its jobs llm-enrich:run:<task>:<run>,
# and says whether the run's launcher is alive); `cancel ID` cancels one through the REST API
# and waits up to 60 s for it to end (see pipelines/flink_jobs.py for how a run finds and
# cancels the jobs of its task that a killed launcher left behind). Ports (env): LLM_ENRICH_FLINK_REST_PORT (18091,
# Flink's REST API and web UI), LLM_ENRICH_FLINK_JOB_PORT (18099, Beam's job service: what
# --job_endpoint points at), LLM_ENRICH_FLINK_ARTIFACT_PORT (18098, Beam's artifact service),
# LLM_ENRICH_FLINK_RPC_PORT (18093, the JobManager's RPC), LLM_ENRICH_FLINK_BLOB_PORT (18094).
# Other env: LLM_ENRICH_CACHE (~/.cache/llm-enrich), LLM_ENRICH_STATE (config, pids, logs:
# <repo>/.local), JAVA_HOME, PYTHON (an interpreter with pip, for `pip download`; python3).
set -euo pipefail

FLINK_VERSION=1.19.3
JOB_SERVER_VERSION=2.62.0  # keep in step with deploy/flink/pom.xml
BEAM_VERSION=2.77.0        # the boot program; must match apache-beam in pyproject.toml
TASKMANAGERS=2
SLOTS=2
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
CACHE=${LLM_ENRICH_CACHE:-$HOME/.cache/llm-enrich}
FLINK_LIB=$CACHE/flink-$FLINK_VERSION/lib
SERVER_LIB=$CACHE/beam-flink-job-server-$JOB_SERVER_VERSION/lib
LAUNCHER=$(dirname "$SERVER_LIB")/stage-nothing.jar  # built from deploy/flink/StageNothingJobServer.java
BOOT=$CACHE/beam-boot-$BEAM_VERSION/boot
STATE=${LLM_ENRICH_STATE:-$REPO/.local}/flink
REST_PORT=${LLM_ENRICH_FLINK_REST_PORT:-18091}
JOB_PORT=${LLM_ENRICH_FLINK_JOB_PORT:-18099}
ARTIFACT_PORT=${LLM_ENRICH_FLINK_ARTIFACT_PORT:-18098}
RPC_PORT=${LLM_ENRICH_FLINK_RPC_PORT:-18093}
BLOB_PORT=${LLM_ENRICH_FLINK_BLOB_PORT:-18094}
JAVA=${JAVA_HOME:+$JAVA_HOME/bin/}java
PYTHON=${PYTHON:-python3}
ROLES=(jobmanager $(seq -f 'taskmanager%g' "$TASKMANAGERS") jobserver)
# C1-only JIT and the serial collector: roughly halve startup on small machines (peak
# throughput is irrelevant here). The tag marks our processes on their command lines.
JVM=(-XX:TieredStopAtLevel=1 -XX:+UseSerialGC "-Xlog:cds*=off" -Djava.awt.headless=true)
# AppCDS class archives, one per kind of JVM, each written when the first of its kind exits
# (`stop`); later starts map them instead of loading and verifying the classes again.
CDS_FLINK=$(dirname "$FLINK_LIB")
CDS_SERVER=$(dirname "$SERVER_LIB")
# Flink 1.19 on Java 17 needs these (as Flink's own conf/config.yaml sets env.java.opts.all).
OPENS=(--add-exports=java.base/sun.net.util=ALL-UNNAMED --add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED
       --add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED)
for package in java.lang java.net java.io java.nio sun.nio.ch java.lang.reflect java.text java.time \
  java.util java.util.concurrent java.util.concurrent.atomic java.util.concurrent.locks; do
  OPENS+=("--add-opens=java.base/$package=ALL-UNNAMED")
done

# Temporary folders of an install, removed on exit. Global, not local: the EXIT trap runs after
# the installing function has returned (under set -u, a local would be unbound by then).
TEMPS=()
trap 'rm -rf ${TEMPS[@]+"${TEMPS[@]}"}' EXIT

install_flink() {
  if [[ -f $FLINK_LIB/flink-dist-$FLINK_VERSION.jar ]]; then
    [[ ${1:-} == quiet ]] || echo "flink: cached ($FLINK_LIB)"
    return
  fi
  echo "flink: downloading apache-flink-libraries $FLINK_VERSION (PyPI sdist, 230 MB) for its jars ..."
  local tmp
  tmp=$(mktemp -d "$CACHE/.flink.XXXXXX")
  TEMPS+=("$tmp")
  local out  # only show pip's output on failure
  out=$("$PYTHON" -m pip download -q --no-deps -d "$tmp" "apache-flink-libraries==$FLINK_VERSION" 2>&1) ||
    { echo "$out" >&2; exit 1; }
  mkdir -p "$tmp/lib"
  tar -xzf "$tmp"/apache-flink-libraries-"$FLINK_VERSION".tar.gz -C "$tmp/lib" --strip-components=3 \
    --wildcards '*/deps/lib/flink-dist-*.jar' '*/deps/lib/log4j-*.jar'
  [[ -f $tmp/lib/flink-dist-$FLINK_VERSION.jar ]] || { echo "flink-dist missing from the sdist" >&2; exit 1; }
  mkdir -p "$(dirname "$FLINK_LIB")"
  rm -rf "$FLINK_LIB" "$CDS_FLINK"/*.jsa
  mv "$tmp/lib" "$FLINK_LIB"
}

install_job_server() {  # the marker is a copy of the pom, so editing the pom triggers a re-install
  if cmp -s "$HERE/flink/pom.xml" "$SERVER_LIB/.installed-pom.xml"; then
    [[ ${1:-} == quiet ]] || echo "flink: cached ($SERVER_LIB)"
    return
  fi
  echo "flink: installing Beam's Flink job server $JOB_SERVER_VERSION jars into $SERVER_LIB ..."
  local tmp out
  tmp=$(mktemp -d "$CACHE/.flink-job-server.XXXXXX")
  TEMPS+=("$tmp")
  out=$(mvn -B -q -f "$HERE/flink/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$tmp/lib" 2>&1) || { echo "$out" >&2; exit 1; }
  cp "$HERE/flink/pom.xml" "$tmp/lib/.installed-pom.xml"
  mkdir -p "$(dirname "$SERVER_LIB")"
  rm -rf "$SERVER_LIB" "$CDS_SERVER"/*.jsa "$CDS_FLINK"/*-beam.jsa "$LAUNCHER"  # all built on these jars
  mv "$tmp/lib" "$SERVER_LIB"
}

install_launcher() {  # the marker is a copy of the source, so editing it triggers a rebuild
  local source=$HERE/flink/StageNothingJobServer.java
  if [[ -f $LAUNCHER ]] && cmp -s "$source" "$LAUNCHER.source"; then
    [[ ${1:-} == quiet ]] || echo "flink: cached ($LAUNCHER)"
    return
  fi
  command -v javac >/dev/null || { echo "flink.sh: javac (a JDK) is needed to build $source" >&2; exit 1; }
  local tmp out
  tmp=$(mktemp -d "$CACHE/.flink-launcher.XXXXXX")
  TEMPS+=("$tmp")
  out=$(javac -nowarn -d "$tmp/classes" -cp "$SERVER_LIB/*" "$source" 2>&1 &&
    jar --create --file "$tmp/stage-nothing.jar" -C "$tmp/classes" . 2>&1) || { echo "$out" >&2; exit 1; }
  echo "flink: building $LAUNCHER (javac) ..."
  rm -f "$CDS_SERVER/jobserver-stage-nothing.jsa"  # its classes changed
  mv "$tmp/stage-nothing.jar" "$LAUNCHER"
  cp "$source" "$LAUNCHER.source"
}

install_boot() {
  if [[ -x $BOOT ]]; then
    [[ ${1:-} == quiet ]] || echo "flink: cached ($BOOT)"
    return
  fi
  command -v go >/dev/null || { echo "flink.sh: Go is needed to build Beam's boot program" >&2; exit 1; }
  echo "flink: building Beam's Python SDK boot program $BEAM_VERSION with go install ..."
  local tmp log=$CACHE/beam-boot-$BEAM_VERSION.build.log
  tmp=$(mktemp -d "$CACHE/.beam-boot.XXXXXX")
  TEMPS+=("$tmp")
  GOBIN=$tmp go install "github.com/apache/beam/sdks/v2/python/container@v$BEAM_VERSION" >"$log" 2>&1 ||
    { tail -n 20 "$log" >&2; echo "flink.sh: build failed (log: $log)" >&2; exit 1; }
  mkdir -p "$(dirname "$BOOT")"
  mv "$tmp/container" "$BOOT"
}

install() {
  mkdir -p "$CACHE"
  install_flink "$@"
  install_job_server "$@"
  install_launcher "$@"
  install_boot "$@"
}

# The JobManager's and TaskManagers' classpath: Flink's jars first, then Beam's runner jars
# but for their own copies of Flink and SLF4J (flink-dist has both; slf4j-simple would be a
# second logging binding).
cluster_classpath() {
  local jar path="$FLINK_LIB/*"
  for jar in "$SERVER_LIB"/*.jar; do
    case ${jar##*/} in flink-* | slf4j-*) ;; *) path+=":$jar" ;; esac
  done
  echo "$path"
}

pid_of() { cat "$STATE/$1.pid" 2>/dev/null; }

alive() {  # $1's process is ours and alive (guards against stale pid files / pid reuse)
  local pid
  pid=$(pid_of "$1") && ps -ww -p "$pid" -o args= 2>/dev/null | grep -qF -- "-Dllm_enrich.service=flink-$1"
}

running() {
  local role
  for role in "${ROLES[@]}"; do alive "$role" || return 1; done
}

taskmanagers() {  # how many TaskManagers the REST API shows registered (0 if it does not answer)
  curl -sf --max-time 2 "http://127.0.0.1:$REST_PORT/overview" 2>/dev/null |
    sed -n 's/.*"taskmanagers":\([0-9]*\).*/\1/p' | grep . || echo 0
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Poll for up to $1 seconds until the REST API shows every TaskManager and the job service
# answers; gives up early if a process dies.
ready() {
  local deadline=$((SECONDS + $1)) role
  while :; do
    (($(taskmanagers) >= TASKMANAGERS)) && port_open "$JOB_PORT" && return 0
    for role in "${ROLES[@]}"; do alive "$role" || { echo "flink: $role exited" >&2; return 1; }; done
    ((SECONDS >= deadline)) && return 1
    sleep 0.2
  done
}

registrations() {  # how often $1 (a TaskManager) has registered with the JobManager
  grep -c "Successful registration at resource manager" "$STATE/logs/$1.log" 2>/dev/null || true
}

# Poll for up to $1 seconds until each restarted TaskManager ($2: array name of the roles,
# $3: of their registration counts before) registered anew: the JobManager counts a TaskManager
# killed with -9 until its heartbeat times out, so ready() alone would not wait for it.
registered_again() {
  local -n roles=$2 counts=$3
  local deadline=$((SECONDS + $1)) index
  for index in "${!roles[@]}"; do
    [[ ${roles[index]} == taskmanager* ]] || continue
    until (($(registrations "${roles[index]}") > counts[index])); do
      alive "${roles[index]}" || { echo "flink: ${roles[index]} exited" >&2; return 1; }
      ((SECONDS < deadline)) || return 1
      sleep 0.2
    done
  done
}

write_config() {
  mkdir -p "$STATE/conf" "$STATE/logs" "$STATE/tmp" "$STATE/artifacts"
  cp "$HERE/flink/log4j.properties" "$STATE/conf/log4j.properties"
  # Small, fixed memory: the TaskManagers only run Beam's operators; the Python SDK workers
  # (PROCESS environments) are processes of their own. Every taskmanager.memory component is
  # set because no start script computes them (TaskManagerRunner refuses to start otherwise).
  cat >"$STATE/conf/config.yaml" <<CONF
jobmanager:
  rpc: {address: 127.0.0.1, port: $RPC_PORT}
  bind-host: 127.0.0.1
  memory: {process.size: 512m}
taskmanager:
  host: 127.0.0.1
  bind-host: 127.0.0.1
  rpc.port: 0
  data.port: 0
  numberOfTaskSlots: $SLOTS
  cpu.cores: $SLOTS
  memory:
    framework.heap.size: 64m
    task.heap.size: 192m
    framework.off-heap.size: 64m
    task.off-heap.size: 0m
    network.min: 32m
    network.max: 32m
    managed.size: 16m
    jvm-metaspace.size: 384m
    jvm-overhead.min: 64m
    jvm-overhead.max: 64m
rest: {address: 127.0.0.1, bind-address: 127.0.0.1, port: $REST_PORT}
blob.server.port: $BLOB_PORT
blob.storage.directory: $STATE/tmp
io.tmp.dirs: $STATE/tmp
web.tmpdir: $STATE/tmp
parallelism.default: 1
# a job of parallelism 2 gets a slot on each TaskManager (so a Python worker on each), not both
# on the first
cluster.evenly-spread-out-slots: true
heartbeat.timeout: 60000
# TaskManagers start with the JobManager: retry the registration at once, not after 10 s (ms)
cluster.registration.initial-timeout: 100
cluster.registration.max-timeout: 2000
cluster.registration.error-delay: 250
cluster.registration.refused-registration-delay: 250
CONF
}

launch() {  # $1 role, $2 its class archive, $3 dump or keep, $4... the java command; records the pid
  local role=$1 archive=$2 dump=$3 cds=()
  shift 3
  if [[ -f $archive ]]; then cds=(-XX:SharedArchiveFile="$archive")
  elif [[ $dump == dump ]]; then cds=(-XX:ArchiveClassesAtExit="$archive"); fi
  nohup "$JAVA" -Dllm_enrich.service="flink-$role" "${JVM[@]}" "${cds[@]}" "$@" \
    >>"$STATE/logs/$role.out" 2>&1 &
  echo $! >"$STATE/$role.pid"
}

start_role() {  # $1: the role to start, with the configuration in $STATE
  local role=$1 dump=keep
  cd "$STATE"  # the JVMs' working folder, and so their SDK workers' unless they change it
  local flink=(-cp "$(cluster_classpath)" "${OPENS[@]}" -Dlog4j.configurationFile="$STATE/conf/log4j.properties")
  case $role in
    jobmanager)
      launch jobmanager "$CDS_FLINK/jobmanager-beam.jsa" dump -Xms64m -Xmx256m "${flink[@]}" \
        -Dlog.file="$STATE/logs/jobmanager.log" \
        org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint --configDir "$STATE/conf" ;;
    taskmanager*)
      [[ $role == taskmanager1 ]] && dump=dump  # one writes the archive: never two JVMs one file
      launch "$role" "$CDS_FLINK/taskmanager-beam.jsa" "$dump" \
        -Xms64m -Xmx256m -XX:MaxDirectMemorySize=128m -XX:MaxMetaspaceSize=384m \
        "${flink[@]}" -Dlog.file="$STATE/logs/$role.log" \
        org.apache.flink.runtime.taskexecutor.TaskManagerRunner --configDir "$STATE/conf" \
        -D "taskmanager.resource-id=$role" ;;
    jobserver)
      launch jobserver "$CDS_SERVER/jobserver-stage-nothing.jsa" dump -Xms64m -Xmx384m -cp "$LAUNCHER:$SERVER_LIB/*" \
        -Dorg.slf4j.simpleLogger.showDateTime=true \
        StageNothingJobServer --flink-master="127.0.0.1:$REST_PORT" \
        --job-host=127.0.0.1 --job-port="$JOB_PORT" --artifact-port="$ARTIFACT_PORT" \
        --expansion-port=-1 --artifacts-dir="$STATE/artifacts" ;;
  esac
}

start() {
  install quiet
  local t0=${EPOCHREALTIME/[.,]/} role missing=()  # microseconds
  if alive jobmanager && [[ -f $STATE/conf/config.yaml ]]; then
    for role in "${ROLES[@]}"; do alive "$role" || missing+=("$role"); done
    if ((${#missing[@]} == 0)); then
      ready 60 && { echo "Flink already running (REST 127.0.0.1:$REST_PORT, job server 127.0.0.1:$JOB_PORT)"; return; }
      echo "Flink is not answering; restarting it" >&2
    else  # fill in: a TaskManager or the job server died, the rest keeps running
      local before=()
      for role in "${missing[@]}"; do before+=("$(registrations "$role")"); start_role "$role"; done
      if ready 120 && registered_again 120 missing before; then
        echo "Flink: started ${missing[*]} again ($(elapsed "$t0") s)"
        return
      fi
      echo "Flink: ${missing[*]} did not come back; restarting everything" >&2
    fi
    stop
  fi
  stop >/dev/null  # whatever part of an earlier cluster is left
  local port
  for port in "$REST_PORT" "$JOB_PORT" "$ARTIFACT_PORT" "$RPC_PORT" "$BLOB_PORT"; do
    if port_open "$port"; then  # else the readiness check would see someone else's cluster
      echo "flink: 127.0.0.1:$port is taken (a cluster started from another checkout or" \
        "LLM_ENRICH_STATE? see the LLM_ENRICH_FLINK_*_PORT variables)" >&2
      exit 1
    fi
  done
  write_config
  for role in "${ROLES[@]}"; do start_role "$role"; done
  if ! ready 120; then
    echo "Flink did not come up in 120 s ($(taskmanagers) of $TASKMANAGERS TaskManagers registered)." >&2
    for role in "${ROLES[@]}"; do tail -n 15 "$STATE/logs/$role.out" "$STATE/logs/$role.log" 2>/dev/null >&2 || true; done
    stop >/dev/null
    exit 1
  fi
  echo "Flink $FLINK_VERSION running: REST http://127.0.0.1:$REST_PORT ($TASKMANAGERS TaskManagers," \
    "$((TASKMANAGERS * SLOTS)) slots), Beam job server 127.0.0.1:$JOB_PORT (started in $(elapsed "$t0") s)"
}

elapsed() {  # seconds since $1 (microseconds), to a tenth
  local ds=$(((${EPOCHREALTIME/[.,]/} - $1) / 100000))
  echo "$((ds / 10)).$((ds % 10))"
}

stop() {
  local role pid stopped=0
  for role in "${ROLES[@]}"; do  # all at once: each JVM shuts down on its own
    if alive "$role"; then kill "$(pid_of "$role")" 2>/dev/null || true; stopped=1; fi
  done
  for _ in $(seq 300); do  # up to 30 s for a clean shutdown
    running_any || break
    sleep 0.1
  done
  for role in "${ROLES[@]}"; do
    if alive "$role"; then pid=$(pid_of "$role"); kill -9 "$pid" 2>/dev/null || true; fi
    rm -f "$STATE/$role.pid"
  done
  if ((stopped)); then echo "Flink stopped"; else echo "Flink not running"; fi
}

running_any() {
  local role
  for role in "${ROLES[@]}"; do alive "$role" && return 0; done
  return 1
}

jobs() {  # the jobs that have not ended, with their launcher's state for ours
  local answer
  answer=$(curl -sf --max-time 5 "http://127.0.0.1:$REST_PORT/jobs/overview") ||
    { echo "flink: no REST API at 127.0.0.1:$REST_PORT" >&2; exit 1; }
  RUNS=$STATE/runs "$PYTHON" -c '
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from pipelines.flink_jobs import launcher_gone
jobs = [j for j in json.load(sys.stdin)["jobs"] if j["state"] not in ("FINISHED", "CANCELED", "FAILED")]
for j in jobs:
    parts = j["name"].split(":")
    note = ""
    if len(parts) == 4 and parts[0] == "llm-enrich":
        folder = Path(os.environ["RUNS"]) / parts[3]
        note = ("  (launcher: " + (launcher_gone(folder) or "alive") + ")") if folder.is_dir() else "  (not started from here)"
    minutes = (time.time() * 1000 - j["start-time"]) / 60000
    print("%s  %-10s %6.1f min  %s%s" % (j["jid"], j["state"], minutes, j["name"], note))
if not jobs:
    print("no running jobs")
' "$REPO" <<<"$answer"
}

cancel() {  # $1: a job id
  [[ -n ${1:-} ]] || { echo "usage: $0 cancel JOB_ID (deploy/flink.sh jobs lists them)" >&2; exit 2; }
  curl -sf --max-time 5 -X PATCH "http://127.0.0.1:$REST_PORT/jobs/$1?mode=cancel" >/dev/null ||
    { echo "flink: could not cancel $1 (no such job, or no REST API at 127.0.0.1:$REST_PORT)" >&2; exit 1; }
  local state="" _
  for _ in $(seq 120); do
    state=$(curl -sf --max-time 2 "http://127.0.0.1:$REST_PORT/jobs/$1" | sed -n 's/.*"state":"\([A-Z]*\)".*/\1/p' | head -1)
    [[ $state == CANCELED || $state == FINISHED || $state == FAILED ]] && { echo "$1: $state"; return; }
    sleep 0.5
  done
  echo "$1 still ${state:-unknown} after 60 s: restart the cluster (deploy/flink.sh stop; deploy/flink.sh start)" >&2
  exit 1
}

status() {
  if running && ready 10; then
    echo "running: REST http://127.0.0.1:$REST_PORT ($(taskmanagers) TaskManagers), job server 127.0.0.1:$JOB_PORT"
  else
    echo "not running" >&2
    exit 1
  fi
}

case ${1:-} in
  install | start | stop | status | jobs) "$1" ;;
  cancel) cancel "${2:-}" ;;
  path) echo "$BOOT" ;;
  *) echo "usage: $0 install|start|stop|status|path|jobs|cancel ID" >&2; exit 2 ;;
esac
