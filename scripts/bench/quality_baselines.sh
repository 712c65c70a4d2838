#!/usr/bin/env bash
# Quality baselines on NFCorpus (test split): BM25, MiniLM, hybrid RRF, hybrid + MMR, and the
# paired comparisons between them. Results land in ${OUT:-/tmp/prism-bench/baselines}.
# The first MiniLM recipe encodes the 3,162 abstracts (about 4-5 minutes on 2 cores); the
# embedding cache makes the later MiniLM recipes reuse those vectors. The comparisons read the
# saved results (`prism compare DIR_A DIR_B`), so nothing is evaluated twice.
#   bash scripts/bench/quality_baselines.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PRISM=${PRISM:-.venv/bin/prism}
DATA=${DATA:-../shared/data/nfcorpus}
OUT=${OUT:-/tmp/prism-bench/baselines}
mkdir -p "$OUT"
if [ "${SKIP_EVAL:-0}" != 1 ]; then
  for r in nfcorpus-bm25 nfcorpus-dense beir-hybrid nfcorpus-hybrid-mmr; do
    echo "== eval $r"
    "$PRISM" eval "recipes/$r.yaml" --data "$DATA" --quiet --out "$OUT/$r" | tee "$OUT/$r.txt"
  done
fi
cmp() {
  echo "== compare $1 -> $2"
  "$PRISM" compare "$OUT/$1" "$OUT/$2" --out "$OUT/$1--$2" | tee "$OUT/$1--$2.txt"
}
cmp nfcorpus-bm25 beir-hybrid
cmp nfcorpus-dense beir-hybrid
cmp beir-hybrid nfcorpus-hybrid-mmr
cmp nfcorpus-bm25 nfcorpus-dense
