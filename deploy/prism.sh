#!/usr/bin/env bash
# Prism, Apache Beam's portable local runner: the default runner of `llm-enrich run`.
# Built from source with `go install` (about 3 minutes on 2 cores, 64 MB), cached.
#   deploy/prism.sh install|path
# Env: LLM_ENRICH_CACHE (~/.cache/llm-enrich)
set -euo pipefail
VERSION=2.77.0  # must match apache-beam in pyproject.toml
CACHE=${LLM_ENRICH_CACHE:-$HOME/.cache/llm-enrich}
DIR=$CACHE/prism-$VERSION
BIN=$DIR/prism

cmd_install() {
  if [[ -x $BIN ]]; then echo "prism: cached ($BIN)"; return; fi
  command -v go >/dev/null || { echo "prism.sh: Go is needed to build Prism" >&2; exit 1; }
  local log=$CACHE/prism-$VERSION.build.log t0=$SECONDS
  mkdir -p "$CACHE"
  # Global, not local: the EXIT trap runs after this function has returned (under set -u,
  # a local would be unbound by then).
  tmp=$(mktemp -d "$CACHE/.prism.XXXXXX")
  trap 'rm -rf "${tmp:-}"' EXIT
  echo "prism: building Prism $VERSION with go install (~3 min, log: $log)"
  GOBIN=$tmp go install "github.com/apache/beam/sdks/v2/go/cmd/prism@v$VERSION" >"$log" 2>&1 ||
    { tail -n 20 "$log" >&2; echo "prism.sh: build failed (log: $log)" >&2; exit 1; }
  mkdir -p "$DIR"
  mv "$tmp/prism" "$BIN"
  echo "prism: built $BIN in $((SECONDS - t0)) s"
}

case ${1:-} in
  install) cmd_install ;;
  path) echo "$BIN" ;;
  *) echo "usage: $0 install|path" >&2; exit 1 ;;
esac
