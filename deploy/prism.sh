#!/usr/bin/env bash
# Prism, Apache Beam's portable local runner: the default runner of `llm-enrich run`.
# Built from Beam's Go module source with one patch (deploy/prism/*.patch: every report of
# a metric counts; see the patch's header), about 3 minutes on 2 cores, 64 MB, cached.
#   deploy/prism.sh install|path
# Env: LLM_ENRICH_CACHE (~/.cache/llm-enrich)
set -euo pipefail
VERSION=2.77.0  # must match apache-beam in pyproject.toml
BUILD=$VERSION-p1  # bump with any change to the patches; pipelines/runner.py PRISM_BUILD
MODULE=github.com/apache/beam/sdks/v2
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${LLM_ENRICH_CACHE:-$HOME/.cache/llm-enrich}
DIR=$CACHE/prism-$BUILD
BIN=$DIR/prism

# In $tmp: Beam's Go module source, patched, the patched package's tests, the binary.
# (Called on the left of ||, where set -e is off: every step is chained.)
build() {
  local module patch
  module=$(go mod download -json "$MODULE@v$VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') &&
    [[ -d $module ]] &&
    mkdir "$tmp/src" &&
    cp -R "$module/go.mod" "$module/go.sum" "$module/go" "$tmp/src/" &&
    chmod -R u+w "$tmp/src" &&
    git -C "$tmp/src" init -q || return 1 # the patches' paths are relative to this folder
  for patch in "$HERE"/prism/*.patch; do git -C "$tmp/src" apply "$patch" || return 1; done
  (cd "$tmp/src" && go test ./go/pkg/beam/runners/prism/internal/jobservices/ &&
    go build -o "$tmp/prism" ./go/cmd/prism)
}

cmd_install() {
  if [[ -x $BIN ]]; then echo "prism: cached ($BIN)"; return; fi
  command -v go >/dev/null || { echo "prism.sh: Go is needed to build Prism" >&2; exit 1; }
  local log=$CACHE/prism-$BUILD.build.log t0=$SECONDS
  mkdir -p "$CACHE"
  # Global, not local: the EXIT trap runs after this function has returned (under set -u,
  # a local would be unbound by then).
  tmp=$(mktemp -d "$CACHE/.prism.XXXXXX")
  trap 'rm -rf "${tmp:-}"' EXIT
  echo "prism: building Prism $BUILD (~3 min, log: $log)"
  build >"$log" 2>&1 ||
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
