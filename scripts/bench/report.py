"""Turn the benchmark outputs into Markdown tables (printed; pasted into docs/benchmarks.md).

    .venv/bin/python scripts/bench/report.py /tmp/prism-bench
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from prismrag.datasets import read_qrels
from prismrag.evaluation import read_trec_run
from prismrag.metrics import mean_metrics, score_run


def load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def ndcg_of_run(run_file: Path, qrels_file: Path) -> float:
    qrels: dict[str, dict[str, int]] = {}
    for q, d, g in read_qrels(qrels_file):
        qrels.setdefault(q, {})[d] = g
    run = {q: [d for d, _ in r] for q, r in read_trec_run(run_file).items()}
    return mean_metrics(score_run(run, qrels, ["nDCG@10"]), ["nDCG@10"])["nDCG@10"]


def peers_table(root: Path) -> str:
    limits, prism = load(root / "limits.json"), load(root / "prism.json")
    qrels = root / "subset" / "qrels" / "test.tsv"
    if not (limits and prism):
        return "(limits.json or prism.json missing)\n"
    p_docs = prism["ingest"]["items"] / prism["ingest"]["seconds"]
    p_q = prism["latency_ms"]["total"]["p50"]
    rows = [
        "| system | ingest s | docs/s | prismrag ingest speed ÷ this | query p50 ms | p95 ms | prismrag p50 ÷ this | nDCG@10 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| **prismrag** (beir-hybrid: MiniLM + BM25, RRF) | {prism['ingest']['seconds']:.1f} | {p_docs:.1f} | 1.00 | "
        f"{p_q:.2f} | {prism['latency_ms']['total']['p95']:.2f} | 1.00 | {prism['nDCG@10']:.4f} |",
    ]
    for system in ("txtai", "llamaindex", "haystack"):
        r = load(root / "peers" / f"{system}.json")
        if not r:
            continue
        if "error" in r:
            rows.append(f"| {system} | failed: {r['error'][:80]} | | | | | | |")
            continue
        nd = ndcg_of_run(root / "peers" / f"{system}.trec", qrels)
        rows.append(
            f"| {system} {r['version']} | {r['ingest_s']:.1f} | {r['docs_per_s']:.1f} | {p_docs / r['docs_per_s']:.2f} | "
            f"{r['query_ms']['p50']:.2f} | {r['query_ms']['p95']:.2f} | {p_q / r['query_ms']['p50']:.2f} | {nd:.4f} |"
        )
    st = limits["st_encode"]
    enc_q = limits["st_query_encode_ms"]["p50"]
    qd = limits["qdrant_edge_query_ms"]["p50"]
    rows += [
        "",
        "| limit (same texts, same model) | value | prismrag ÷ limit |",
        "| --- | ---: | ---: |",
        f"| raw `SentenceTransformer.encode`, batch 32 | {st['docs_per_s']:.1f} docs/s | ingest speed {p_docs / st['docs_per_s']:.2f} |",
        f"| raw `SentenceTransformer.encode`, one query | {enc_q:.2f} ms p50 | — |",
        f"| raw qdrant-edge upsert + optimize ({limits['docs']} × 384) | {limits['qdrant_edge_upsert']['points_per_s']:.0f} points/s | — |",
        f"| raw qdrant-edge query, top 100 | {qd:.2f} ms p50 | — |",
        f"| numpy brute force, top 100 | {limits['numpy_exact_ms']['p50']:.3f} ms p50 | — |",
        f"| encode one query + qdrant-edge query (the dense floor) | {enc_q + qd:.2f} ms p50 | query latency {p_q / (enc_q + qd):.2f} |",
    ]
    stages = prism["latency_ms"]
    rows += ["", "prismrag's query time by stage (ms): " + ", ".join(
        f"{s} p50 {v['p50']:.2f}" for s, v in stages.items())]
    return "\n".join(rows) + "\n"


def scaling_table(root: Path) -> str:
    data = load(root / "scaling.json")
    if not data:
        return "(scaling.json missing)\n"
    rows = [
        "| vectors | upsert s | HNSW build s | numpy exact p50 ms | store exact p50 ms | HNSW f32 p50 ms (recall@10) | HNSW int8 p50 ms (recall@10) | peak RSS MB | disk MB |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in data["results"]:
        rows.append(
            f"| {r['n']:,} | {r['upsert_s']:.1f} | {r['hnsw_build_s']:.1f} | {r['numpy_exact']['p50']:.2f} | "
            f"{r['store_exact']['p50']:.2f} | {r['hnsw_f32']['p50']:.2f} ({r['hnsw_f32']['recall@10']:.3f}) | "
            f"{r['hnsw_int8']['p50']:.2f} ({r['hnsw_int8']['recall@10']:.3f}) | {r['peak_rss_mb']:.0f} | {r['disk_mb']:.0f} |"
        )
    if data.get("stopped"):
        rows.append(f"\n{data['stopped']}")
    return "\n".join(rows) + "\n"


def baselines_table(root: Path) -> str:
    base = root / "baselines"
    names = ["nfcorpus-bm25", "nfcorpus-dense", "beir-hybrid", "nfcorpus-hybrid-mmr"]
    metrics = ["nDCG@10", "Recall@10", "Recall@100", "MRR@10", "MAP@100", "P@10"]
    rows = ["| recipe | " + " | ".join(metrics) + " | ANN recall@10 |",
            "| --- |" + " ---: |" * (len(metrics) + 1)]
    for n in names:
        r = load(base / n / "report.json")
        if r:
            rows.append(f"| {n} | " + " | ".join(f"{r[m]:.4f}" for m in metrics)
                        + f" | {r['ann_recall@10']:.3f} |")
    rows += ["", "| A → B | ΔnDCG@10 (95% CI) | p | B wins/losses | ΔRecall@100 | p |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for a, b in [("nfcorpus-bm25", "beir-hybrid"), ("nfcorpus-dense", "beir-hybrid"),
                 ("beir-hybrid", "nfcorpus-hybrid-mmr"), ("nfcorpus-bm25", "nfcorpus-dense")]:
        c = load(base / f"{a}--{b}" / "comparison.json")
        if c:
            d, r = c["metrics"]["nDCG@10"], c["metrics"]["Recall@100"]
            rows.append(f"| {a} → {b} | {d['delta']:+.4f} ({d['ci_low']:+.4f}, {d['ci_high']:+.4f}) | {d['p_value']:.4f} | "
                        f"{d['wins']}/{d['losses']} | {r['delta']:+.4f} | {r['p_value']:.4f} |")
    return "\n".join(rows) + "\n"


def main(root: str) -> int:
    base = Path(root)
    print("## Quality baselines\n\n" + baselines_table(base))
    print("## Peers and limits\n\n" + peers_table(base))
    print("## Scaling\n\n" + scaling_table(base))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/prism-bench"))
