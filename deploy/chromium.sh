#!/usr/bin/env bash
# Headless Chromium for the HTML report tests (tests render the report and check that its
# charts are drawn). The browser is Debian's chromium package, installed with apt-get when
# missing (needs root); no download from anywhere else.
#
#   deploy/chromium.sh install|path
#
# path prints the browser's executable (chromium, else chromium-browser).
set -euo pipefail

find_browser() {
  command -v chromium 2>/dev/null || command -v chromium-browser 2>/dev/null
}

install() {
  local browser
  if browser=$(find_browser); then echo "chromium: installed ($browser)"; return; fi
  if [[ $(id -u) -ne 0 ]]; then
    echo "chromium is not installed and installing it needs root: apt-get install -y chromium" >&2
    exit 1
  fi
  echo "Installing chromium from Debian's packages ..."
  export DEBIAN_FRONTEND=noninteractive
  local log="${TMPDIR:-/tmp}/llm-enrich-chromium-apt.log"
  # a fresh machine may have no package lists yet
  apt-get install -y -q --no-install-recommends chromium >"$log" 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends chromium; } \
    || { cat "$log" >&2; exit 1; }
}

path() {
  find_browser || { echo "chromium is not installed: deploy/chromium.sh install" >&2; exit 1; }
}

case ${1:-} in
  install | path) "$1" ;;
  *) echo "usage: $0 install|path" >&2; exit 2 ;;
esac
