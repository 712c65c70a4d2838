#!/usr/bin/env bash
# `prism tune` on NFCorpus (one split: 5-fold cross-validation over its 323 queries) with
# recipes/beir-hybrid.yaml; prints the report and writes the tuned recipe and a JSON copy.
# The MiniLM document embeddings come from the embedding cache when an earlier eval stored them.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/tune_bench}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1
/usr/bin/time -v .venv/bin/prism tune recipes/beir-hybrid.yaml --data ../shared/data/nfcorpus \
  --metric nDCG@10 --budget 300 --folds 5 --seed 0 --out "$OUT/beir-hybrid.tuned.yaml" \
  --json > "$OUT/tune.json" 2> "$OUT/tune.stderr"
.venv/bin/python - "$OUT/tune.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"untuned {r['untuned_score']:.4f}  tuned (CV) {r['tuned_score']:.4f}  delta {r['delta']:+.4f} "
      f"CI [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]  p {r['p_value']:.4f}  in-sample {r['in_sample']:.4f}")
print("written:", r["tuned"])
for f, c in enumerate(r["fold_choices"], 1):
    print(f"fold {f}: {c}")
PY
# The same with each retriever's top_k kept (fusion and weights only: the whole 110-setting grid).
.venv/bin/prism tune recipes/beir-hybrid.yaml --data ../shared/data/nfcorpus --metric nDCG@10 --budget 300 \
  --folds 5 --seed 0 --keep-depths --out "$OUT/beir-hybrid.keep.yaml"
