#!/usr/bin/env bash
# The second local model, for the cascade: deploy/llm.sh serving Gemma 3 270M
# (gemma3-270m, port 18085 unless LLM_ENRICH_LLM_PORT says otherwise; state in
# $LLM_ENRICH_STATE/llm-gemma3-270m). Gemma is provided under and subject to the Gemma
# Terms of Use found at ai.google.dev/gemma/terms (README: Cascade).
#   deploy/llm-gemma.sh install|start|stop|status|path  (start installs it first if needed)
set -euo pipefail
if [[ ${1:-} == start ]]; then
  LLM_ENRICH_LLM_MODEL=gemma3-270m bash "$(dirname "${BASH_SOURCE[0]}")/llm.sh" install
fi
exec env LLM_ENRICH_LLM_MODEL=gemma3-270m bash "$(dirname "${BASH_SOURCE[0]}")/llm.sh" "$@"
