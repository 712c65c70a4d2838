"""Benchmark: hybrid ingest of a BEIR corpus against raw SentenceTransformer.encode, and search latency.

    .venv/bin/python scripts/bench/ingest_vs_encode.py ../shared/data/nfcorpus [--limit N] [--rounds R] [--queries N]

Runs, on the same texts and batch size: (1) raw `SentenceTransformer.encode` (the limit), (2) a
full `prism` ingest with recipes/beir-hybrid.yaml (MiniLM + BM25 into qdrant-edge, embedding cache
off), then (3) every query through the hybrid search, reporting p50/p95 without query encoding.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path)
    ap.add_argument("--limit", type=int, default=None, help="only the first N documents")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=1, help="interleaved raw/ingest rounds (median reported)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tmp = Path(tempfile.mkdtemp(prefix="prism-bench-"))
    os.environ["PRISMRAG_CACHE_DIR"] = str(tmp / "cache")

    import prismrag
    from prismrag.components import Context
    from prismrag.plugins.loaders import BeirLoader

    loader = BeirLoader(BeirLoader.Params(path=str(args.data)), Context())
    items = [i for i in loader.load() if isinstance(i, prismrag.Item)][: args.limit]
    texts = [i.content for i in items]
    print(f"{len(items)} documents from {args.data}", file=sys.stderr)

    engine = prismrag.load_recipe(ROOT / "recipes" / "beir-hybrid.yaml",
                                  store={"use": "qdrant-edge", "path": str(tmp / "store")})
    encoder = engine.recipe.retrievers["dense"].encoder
    model = encoder.model  # the very model object the ingest uses
    model.encode(texts[:64], batch_size=args.batch_size)  # warm-up

    spec = engine.recipe.spec
    engine.recipe.spec = spec.model_copy(update={"ingest": spec.ingest.model_copy(update={"cache": False})})

    def raw() -> float:
        t = time.perf_counter()
        model.encode(texts, batch_size=args.batch_size, convert_to_numpy=True, normalize_embeddings=True)
        return time.perf_counter() - t

    def ingest() -> float:
        engine.rebuild()  # an empty index each round, so every item is encoded and upserted
        t = time.perf_counter()
        report = engine.ingest_items(items)
        took = time.perf_counter() - t
        assert report.added == len(items), report.errors[:3]
        ingest.report = report  # type: ignore[attr-defined]
        return took

    # Interleaved (raw, ingest, ingest, raw, ...) so load drift on a shared machine hits both alike.
    raw_times, ingest_times = [], []
    for r in range(args.rounds):
        order = (raw, ingest) if r % 2 == 0 else (ingest, raw)
        for fn in order:
            (raw_times if fn is raw else ingest_times).append(fn())
        print(f"round {r + 1}: raw {raw_times[-1]:.1f} s, ingest {ingest_times[-1]:.1f} s", file=sys.stderr)
    raw_s, ingest_s = float(np.median(raw_times)), float(np.median(ingest_times))
    ratios = [a / b for a, b in zip(raw_times, ingest_times, strict=True)]
    report = ingest.report  # type: ignore[attr-defined]

    queries = [json.loads(line) for line in (args.data / "queries.jsonl").open()][: args.queries]
    lat, enc = [], []
    for q in queries:
        r = engine.search_detailed(q["text"], top_k=10)
        enc.append(sum(v for k, v in r.timings.items() if k.startswith("encode:")))
        lat.append(sum(v for k, v in r.timings.items() if not k.startswith("encode:")))
    lat_ms, enc_ms = np.array(lat) * 1000, np.array(enc) * 1000
    result = {
        "documents": len(items),
        "raw_encode_s": round(raw_s, 2),
        "raw_encode_docs_per_s": round(len(items) / raw_s, 2),
        "ingest_s": round(ingest_s, 2),
        "ingest_docs_per_s": round(len(items) / ingest_s, 2),
        "rounds": args.rounds,
        "ingest_vs_raw_encode_per_round": [round(r, 3) for r in ratios],
        "ingest_vs_raw_encode_median": round(float(np.median(ratios)), 3),
        "ingest_stage_s": {k: round(v, 2) for k, v in report.seconds.items()},
        "queries": len(queries),
        "search_ms_excl_encoding": {"p50": round(float(np.percentile(lat_ms, 50)), 3),
                                    "p95": round(float(np.percentile(lat_ms, 95)), 3)},
        "query_encoding_ms": {"p50": round(float(np.percentile(enc_ms, 50)), 3),
                              "p95": round(float(np.percentile(enc_ms, 95)), 3)},
    }
    print(json.dumps(result, indent=2))
    engine.close()


if __name__ == "__main__":
    main()
