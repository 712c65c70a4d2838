#!/usr/bin/env bash
# Every benchmark in one run, on this machine, into ${BENCH:-/tmp/prism-bench}; then the tables.
# Not part of CI. Takes about 35 minutes on 2 idle cores (the 1M-vector scaling step alone ~12).
#   bash scripts/bench/setup_peers.sh     # once: the peers' own venv
#   bash scripts/bench/run_all.sh
#   .venv/bin/python scripts/bench/report.py /tmp/prism-bench
set -euo pipefail
cd "$(dirname "$0")/../.."
BENCH=${BENCH:-/tmp/prism-bench}
DOCS=${DOCS:-1000}
PY=.venv/bin/python
PEERS=${PEERS_VENV:-/tmp/peers-venv}/bin/python
mkdir -p "$BENCH"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
"$PY" scripts/bench/make_subset.py "${DATA:-../shared/data/nfcorpus}" "$DOCS" "$BENCH/subset"
"$PY" scripts/bench/limits.py --data "$BENCH/subset" --out "$BENCH/limits.json"
# prismrag with an empty embedding cache, so ingest encodes every document
PRISMRAG_CACHE_DIR=$(mktemp -d) .venv/bin/prism eval recipes/beir-hybrid.yaml --data "$BENCH/subset" \
  --json --quiet --no-ann-check --out "$BENCH/prism" > "$BENCH/prism.json"
for system in txtai llamaindex haystack; do  # one process each: every system pays its own imports
  "$PEERS" scripts/bench/peers.py --data "$BENCH/subset" --out "$BENCH/peers" --systems "$system"
done
"$PY" scripts/bench/scaling.py --sizes 10000,100000,300000,1000000 --max-gb 18 --max-minutes 35 --out "$BENCH/scaling.json"
bash scripts/bench/quality_baselines.sh
"$PY" scripts/bench/report.py "$BENCH"
