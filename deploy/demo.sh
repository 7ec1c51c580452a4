#!/usr/bin/env bash
# The newcomer's command: set everything up, start the local broker and model, load the
# sample reviews, run the example job, and show the summary and a few enriched records.
#   deploy/demo.sh [number of reviews, default 40]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
COUNT=${1:-40}
TASK=pipelines/examples/reviews/task.yaml

bash deploy/setup.sh
bash deploy/services.sh start kafka llm
.venv/bin/llm-enrich produce --task "$TASK" --data pipelines/examples/reviews/reviews.jsonl \
  --key-field review_id --limit "$COUNT"
status=0
.venv/bin/llm-enrich run --task "$TASK" --show 5 || status=$?
.venv/bin/llm-enrich peek --task "$TASK" --dead-letters -n 2
echo "Services keep running; stop them with: deploy/services.sh stop"
exit "$status"
