"""Hybrid query latency against its floor, side by side in one process.

For each backend of the dense encoder (torch, onnx, onnx-int8) it ingests a BEIR folder with
`recipes/beir-hybrid.yaml` (MiniLM + BM25, RRF) into a temporary store, then answers every query,
interleaving for each one (which of the two goes first alternates from query to query):

- prismrag: `engine.search_detailed(query, top_k=100)`, excluding nothing (routing, both
  encoders, both searches, fusion, the payloads of the 100 hits, provenance); `--top-k 10` asks
  for the recipe's 10 hits instead (each retriever still lists 100 candidates);
- the floor: the dense model encoding the query once as its library does it, plus one raw
  qdrant-edge query (limit 100) on the same shard, with no prismrag code between. For torch that
  is a plain `SentenceTransformer(...).encode([q])` of the same weights, loaded apart from the
  engine's (whose per-call device resolution and `eval()` prismrag skips, see plugins/_st.py);
  the floor on the engine's own model is reported beside it. For ONNX no library path runs here
  (sentence-transformers' needs optimum), so the floor is prismrag's own onnxruntime runner.

and reports p50/p95 of both and their ratio (the issue's goal: prismrag within 1.3x of the floor).

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench/query_latency.py --data /tmp/prism-bench/subset
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from beir_text import read_beir  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pct(values: list[float]) -> dict[str, float]:
    ms = sorted(v * 1000 for v in values)
    return {"p50": round(statistics.median(ms), 3), "p95": round(ms[min(len(ms) - 1, int(0.95 * (len(ms) - 1)))], 3)}


def run(backend: str, data: Path, rounds: int, top_k: int = 100) -> dict[str, object]:
    import qdrant_edge as qe

    import prismrag
    from prismrag.datasets import load_dataset

    folder = Path(tempfile.mkdtemp(prefix=f"prism-latency-{backend}-"))
    text = (ROOT / "recipes" / "beir-hybrid.yaml").read_text()
    text = text.replace("path: ../.prism/beir-hybrid", f"path: {folder / 'index'}")
    text = text.replace("batch_size: 32}", f"batch_size: 32, backend: {backend}}}")
    recipe = folder / "recipe.yaml"
    recipe.write_text(text)
    ds = load_dataset(data)
    texts = [q for _, q in read_beir(data)[2]]
    with prismrag.load_recipe(recipe) as engine:
        engine.ingest_items(ds.items, owner="sources", delete_missing=True)
        encoder = engine.recipe.retrievers["dense"].encoder
        model = encoder.model
        plain = plain_model(encoder) if backend == "torch" else model
        shard = engine.store._shard

        def on(m: Any) -> Callable[[str], None]:
            def floor(q: str) -> None:
                vec = m.encode([q]) if backend != "torch" else m.encode([q], convert_to_numpy=True)
                shard.query(qe.QueryRequest(limit=100, query=qe.Query.Nearest(vec[0].tolist(), using="dense"),
                                            with_payload=False))
            return floor

        floor, same_model = on(plain), on(model)

        for q in texts[:20]:  # warm every path
            engine.search_detailed(q, top_k=top_k)
            floor(q)
            same_model(q)
        ours, base, own = [], [], []

        def timed(fn: object, q: str, into: list[float]) -> None:
            t = time.perf_counter()
            fn(q)  # type: ignore[operator]
            into.append(time.perf_counter() - t)

        for r in range(rounds):
            for k, q in enumerate(texts):  # which goes first alternates: the second may run on warm caches
                calls = [(lambda x: engine.search_detailed(x, top_k=top_k), ours), (floor, base)]
                if backend == "torch":
                    calls.append((same_model, own))
                for fn, into in calls if (k + r) % 2 == 0 else calls[::-1]:
                    timed(fn, q, into)
    a, b = pct(ours), pct(base)
    out = {"backend": backend, "top_k": top_k, "queries": len(ours), "prismrag_ms": a, "floor_ms": b,
           "ratio_p50": round(a["p50"] / b["p50"], 3)}
    if own:
        out["floor_on_engine_model_ms"] = pct(own)
        out["ratio_p50_engine_model"] = round(a["p50"] / out["floor_on_engine_model_ms"]["p50"], 3)
    return out


def plain_model(encoder: Any) -> Any:
    """The encoder's weights in a plain `SentenceTransformer`, as a user of the library loads them."""
    from prismrag.support.torch_compat import ensure_torchvision_ops

    ensure_torchvision_ops()
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(encoder.weights_paths()[0]), device="cpu")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--backends", default="torch,onnx,onnx-int8")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--top-k", type=int, default=100, help="hits asked of prismrag (default 100)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results = [run(b, args.data, args.rounds, args.top_k) for b in args.backends.split(",")]
    for r in results:
        print(f"{r['backend']:>10}, top {r['top_k']}: prismrag p50 {r['prismrag_ms']['p50']:.2f} ms (p95 {r['prismrag_ms']['p95']:.2f}); "
              f"floor p50 {r['floor_ms']['p50']:.2f} ms (p95 {r['floor_ms']['p95']:.2f}); "
              f"ratio {r['ratio_p50']:.2f} ({r['queries']} queries, load average {os.getloadavg()[0]:.1f})")
        if "ratio_p50_engine_model" in r:
            print(f"{'':>10}  floor on the engine's own model p50 {r['floor_on_engine_model_ms']['p50']:.2f} ms; "
                  f"ratio {r['ratio_p50_engine_model']:.2f}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
