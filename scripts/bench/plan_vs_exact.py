"""How often a retriever's search plan returns the same top-k as exact search on its full field.

    python scripts/bench/plan_vs_exact.py RECIPE DATA [--store qdrant-edge|qdrant] [--k 10]

Indexes the BEIR corpus of DATA with RECIPE into a temporary store (the embedding cache makes a
second run cost no encoding), then runs every judged query twice: with the recipe's plan, and with
`exact=True` (brute force on each retriever's main field). Prints the share of queries whose
top-k ids are identical, the mean overlap@k, and the latency of both.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from beir_text import read_beir  # noqa: E402

import prismrag  # noqa: E402
from prismrag.types import Item, Modality  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipe")
    ap.add_argument("data", type=Path)
    ap.add_argument("--store", default="qdrant-edge", choices=["qdrant-edge", "qdrant"])
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args()
    ids, texts, queries = read_beir(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        store = {"use": "qdrant-edge", "path": tmp} if args.store == "qdrant-edge" else {"use": "qdrant", "path": tmp}
        with prismrag.load_recipe(args.recipe, store=store) as engine:
            t = time.perf_counter()
            engine.ingest_items([Item(i, Modality.TEXT, x) for i, x in zip(ids, texts, strict=True)])
            print(f"indexed {len(ids)} documents in {time.perf_counter() - t:.1f} s ({args.store})")
            same, overlap, t_plan, t_exact = 0, [], [], []
            for _, text in queries:
                t0 = time.perf_counter()
                planned = [h.id for h in engine.search(text, top_k=args.k)]
                t1 = time.perf_counter()
                exact = [h.id for h in engine.search(text, top_k=args.k, exact=True)]
                t2 = time.perf_counter()
                t_plan.append(t1 - t0)
                t_exact.append(t2 - t1)
                same += planned == exact
                overlap.append(len(set(planned) & set(exact)) / args.k)
    n = len(queries)
    print(f"{n} queries: identical top-{args.k} {same}/{n} = {same / n:.4f}; mean overlap@{args.k} "
          f"{statistics.fmean(overlap):.4f}; p50 latency (encode + search) plan "
          f"{1000 * statistics.median(t_plan):.2f} ms, exact {1000 * statistics.median(t_exact):.2f} ms")


if __name__ == "__main__":
    main()
