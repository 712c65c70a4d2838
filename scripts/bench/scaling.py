"""Scaling: query latency, recall and memory from 10k to 1M vectors, exact vs HNSW vs quantized.

Synthetic vectors with clustered structure (a Gaussian mixture on the unit sphere, like sentence
embeddings of topical text): 384 dimensions, one cluster per 200 points, cosine distance. For
each size, one child process builds a prismrag qdrant-edge store (the plugin the recipes use)
with two named vectors per point: `f32` (float32, HNSW m=16, ef_construct=100, ef=128) and
`int8` (scalar int8 quantization with rescoring, same HNSW). It reports

- upsert and HNSW build seconds;
- query latency p50/p95 for: numpy brute force (the limit), the store's exact search on `f32`,
  HNSW on `f32`, HNSW on `int8`;
- recall@10 of each against numpy's exact top 10;
- the child's peak RSS and the store's size on disk.

    .venv/bin/python scripts/bench/scaling.py --sizes 10000,100000,300000,1000000 --out /tmp/prism-bench/scaling.json

The run stops before a size whose projected memory (--max-gb) or time (--max-minutes) is too large.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DIM = 384
PER_CLUSTER = 200


def clustered(n: int, dim: int, seed: int, centers: np.ndarray) -> np.ndarray:
    """n unit vectors around random centers: spread 0.6 of a center's norm per coordinate group."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), np.float32)
    step = 50_000
    for start in range(0, n, step):
        m = min(step, n - start)
        which = rng.integers(0, len(centers), size=m)
        noise = rng.standard_normal((m, dim), dtype=np.float32) * (0.6 / np.sqrt(dim))
        block = centers[which] + noise
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start : start + m] = block
    return out


def percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)), "mean": float(a.mean())}


def disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def child(n: int, queries: int, seed: int) -> dict:
    from prismrag.components import Context, PointBatch, VectorField
    from prismrag.plugins.qdrant_edge_store import QdrantEdgeParams, QdrantEdgeStore

    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((max(1, n // PER_CLUSTER), DIM)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    x = clustered(n, DIM, seed + 1, centers)
    q = clustered(queries, DIM, seed + 2, centers)
    # the limit: numpy brute force, one query at a time (as a service answers them)
    truth, brute_ms = [], []
    for v in q:
        t = time.perf_counter()
        scores = x @ v
        top = np.argpartition(-scores, 10)[:10]
        top = top[np.argsort(-scores[top])]
        brute_ms.append((time.perf_counter() - t) * 1000)
        truth.append(set(top.tolist()))

    tmp = Path(tempfile.mkdtemp(prefix="prism-scale-"))
    store = QdrantEdgeStore(QdrantEdgeParams(path=str(tmp)), Context(base_dir=tmp, recipe="scale"))
    fields = [
        VectorField("f32", "dense", DIM, "cosine", 16, 100, 128),
        VectorField("int8", "dense", DIM, "cosine", 16, 100, 128, quantization="scalar", oversampling=2.0),
    ]
    store.open(fields)
    ids = [str(i) for i in range(n)]
    t = time.perf_counter()
    step = 10_000
    for s in range(0, n, step):
        part = x[s : s + step]
        store.upsert(PointBatch(ids[s : s + step], {"f32": part, "int8": part}, [{}] * len(part)))
    upsert_s = time.perf_counter() - t
    t = time.perf_counter()
    store.optimize()
    build_s = time.perf_counter() - t

    result = {
        "n": n, "dim": DIM, "clusters": len(centers), "queries": queries,
        "upsert_s": round(upsert_s, 2), "hnsw_build_s": round(build_s, 2),
        "vectors_mb": round(x.nbytes / 1e6, 1),
        "numpy_exact": {**percentiles(brute_ms), "recall@10": 1.0},
    }
    for name, field, exact in (("store_exact", "f32", True), ("hnsw_f32", "f32", False), ("hnsw_int8", "int8", False)):
        store.search(field, q[:1], 10, None, exact)  # warm-up
        ms, rec = [], []
        for i, v in enumerate(q):
            t = time.perf_counter()
            hits = store.search(field, v[None, :], 10, None, exact)
            ms.append((time.perf_counter() - t) * 1000)
            rec.append(len(truth[i].intersection(int(h.id) for h in hits)) / 10)
        result[name] = {**percentiles(ms), "recall@10": float(np.mean(rec))}
    store.close()
    result["disk_mb"] = round(disk_bytes(tmp) / 1e6, 1)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    shutil.rmtree(tmp, ignore_errors=True)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,300000,1000000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-gb", type=float, default=8.0, help="stop before a size projected to need more")
    ap.add_argument("--max-minutes", type=float, default=10.0, help="stop before a size projected to take longer")
    ap.add_argument("--out", default="/tmp/prism-bench/scaling.json")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.queries, args.seed)))
        return 0
    results, stopped = [], None
    for n in [int(s) for s in args.sizes.split(",")]:
        if results:
            prev = results[-1]
            if len(results) >= 2:  # RSS = fixed part + per-vector part, fitted on the last two sizes
                a, b = results[-2], results[-1]
                per = (b["peak_rss_mb"] - a["peak_rss_mb"]) / (b["n"] - a["n"])
                projected_gb = (b["peak_rss_mb"] + per * (n - b["n"])) / 1024
            else:
                projected_gb = prev["peak_rss_mb"] * n / prev["n"] / 1024
            projected_min = prev["wall_s"] * n / prev["n"] / 60
            if projected_gb > args.max_gb or projected_min > args.max_minutes:
                stopped = (f"stopped before {n:,}: projected {projected_gb:.1f} GB (limit {args.max_gb}) and "
                           f"{projected_min:.0f} min (limit {args.max_minutes}) from the {prev['n']:,} run")
                print(stopped, file=sys.stderr)
                break
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--child", str(n), "--queries", str(args.queries),
                               "--seed", str(args.seed)], capture_output=True, text=True, env=os.environ)
        if proc.returncode != 0:
            stopped = f"size {n:,} failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}"
            print(stopped, file=sys.stderr)
            break
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        row["wall_s"] = round(time.perf_counter() - t, 1)
        results.append(row)
        print(json.dumps(row), file=sys.stderr)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"results": results, "stopped": stopped, "cpus": os.cpu_count()}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
