#!/usr/bin/env bash
# The main job: install, ingest prismrag's own docs with the hybrid quickstart recipe, search them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
VENV=${PRISMRAG_VENV:-.venv}
"$VENV/bin/prism" ingest recipes/quickstart.yaml
"$VENV/bin/prism" search recipes/quickstart.yaml "${1:-how do I write a plugin}" --explain
