"""Metrics against the reference implementation (pytrec_eval, trec_eval's own C code)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import SHARED_DATA

from prismrag.cli import main
from prismrag.datasets import read_qrels
from prismrag.evaluation import read_trec_run
from prismrag.metrics import METRICS, latency_percentiles, mean_metrics, overlap_at_k, score_run

pytrec_eval = pytest.importorskip("pytrec_eval")

REFERENCE = {
    "nDCG@10": "ndcg_cut_10",
    "Recall@10": "recall_10",
    "Recall@100": "recall_100",
    "MAP@100": "map_cut_100",
    "P@10": "P_10",
}


def reference_scores(run: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, dict[str, float]]:
    """pytrec_eval per query; scores strictly decreasing so its sort keeps our order. MRR@10 is
    trec_eval's recip_rank on the run cut at 10. Queries with an empty run score 0 (trec_eval -c)."""
    scored = {q: {d: float(len(docs) - i) for i, d in enumerate(docs)} for q, docs in run.items() if docs}
    judged = {q: r for q, r in qrels.items() if q in scored}
    full = pytrec_eval.RelevanceEvaluator(judged, {"ndcg_cut.10", "recall.10,100", "map_cut.100", "P.10"}).evaluate(scored)
    cut = {q: dict(list(s.items())[:10]) for q, s in scored.items()}
    mrr = pytrec_eval.RelevanceEvaluator(judged, {"recip_rank"}).evaluate(cut)
    out = {}
    for q in qrels:
        if q in full:
            out[q] = {m: full[q][ref] for m, ref in REFERENCE.items()} | {"MRR@10": mrr[q]["recip_rank"]}
        else:
            out[q] = dict.fromkeys(METRICS, 0.0)
    return out


def random_case(seed: int, n_queries: int = 40, n_docs: int = 400) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    docs = [f"d{i}" for i in range(n_docs)]
    qrels, run = {}, {}
    for q in range(n_queries):
        judged = rng.choice(n_docs, size=int(rng.integers(1, 60)), replace=False)
        grades = rng.integers(0, 4, size=len(judged))  # 0 = judged non-relevant
        grades[0] = max(int(grades[0]), 1)  # every query has a relevant document
        qrels[f"q{q}"] = {docs[j]: int(g) for j, g in zip(judged, grades, strict=True)}
        depth = int(rng.integers(0, 150)) if q % 7 else 0  # some queries return nothing
        # a run biased toward judged documents so metrics spread over [0, 1]
        pool = np.concatenate([judged, rng.choice(n_docs, size=depth, replace=False)])
        order = list(dict.fromkeys(rng.permutation(pool).tolist()))[:depth]
        run[f"q{q}"] = [docs[j] for j in order]
    return run, qrels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_pytrec_eval_per_query(seed):
    run, qrels = random_case(seed)
    ours = score_run(run, qrels)
    ref = reference_scores(run, qrels)
    for q in qrels:
        for m in METRICS:
            assert ours[q][m] == pytest.approx(ref[q][m], abs=1e-9), (q, m)
    means = mean_metrics(ours)
    assert set(means) == set(METRICS)
    assert 0.05 < means["nDCG@10"] < 0.95  # the case is not degenerate


def test_hand_computed_values():
    qrels = {"q": {"a": 2, "b": 1, "c": 0, "z": 1}}
    run = {"q": ["c", "a", "x", "b"]}
    got = score_run(run, qrels)["q"]
    dcg = 2 / np.log2(3) + 1 / np.log2(5)
    idcg = 2 + 1 / np.log2(3) + 1 / np.log2(4)
    assert got["nDCG@10"] == pytest.approx(dcg / idcg)
    assert got["MRR@10"] == pytest.approx(0.5)
    assert got["P@10"] == pytest.approx(0.2)
    assert got["Recall@10"] == pytest.approx(2 / 3)
    assert got["MAP@100"] == pytest.approx((1 / 2 + 2 / 4) / 3)


def test_duplicates_count_once_and_unknown_metric_fails():
    assert score_run({"q": ["a", "a", "a"]}, {"q": {"a": 1}})["q"]["P@10"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="unknown metric"):
        score_run({}, {}, ["nDCG@11"])


def test_latency_percentiles_and_overlap():
    timings = [{"search": s / 1000, "total": 2 * s / 1000} for s in range(1, 101)]
    lat = latency_percentiles(timings)
    assert lat["search"]["p50"] == pytest.approx(50.5)
    assert lat["search"]["p99"] == pytest.approx(99.01)
    assert lat["total"]["p95"] == pytest.approx(2 * 95.05)
    assert lat["total"]["n"] == 100
    assert overlap_at_k(list("abcdefghij"), list("abcdeXYZWV")) == pytest.approx(0.5)
    assert overlap_at_k([], []) == 1.0


@pytest.mark.skipif(not (SHARED_DATA / "nfcorpus").is_dir(), reason="NFCorpus not present")
@pytest.mark.parametrize(
    ("recipe", "ndcg_range"),
    [
        ("nfcorpus-bm25", (0.30, 0.37)),  # BM25 on NFCorpus is about 0.33
        pytest.param("beir-hybrid", (0.33, 0.38), marks=pytest.mark.slow),  # MiniLM + BM25: ~0.353, 2 min
    ],
)
def test_prism_eval_on_nfcorpus_matches_pytrec_eval(tmp_path, capsys, recipe, ndcg_range):
    """`prism eval --json --out` on the real data set; its run file re-scored by pytrec_eval."""
    from conftest import ROOT

    out = tmp_path / "out"
    code = main(["eval", str(ROOT / "recipes" / f"{recipe}.yaml"), "--data", str(SHARED_DATA / "nfcorpus"),
                 "--json", "--out", str(out), "--quiet", "--no-ann-check"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["queries"] == 323
    run = {q: [d for d, _ in ranking] for q, ranking in read_trec_run(out / "run.trec").items()}
    qrels: dict[str, dict[str, int]] = {}
    for q, d, g in read_qrels(SHARED_DATA / "nfcorpus" / "qrels" / "test.tsv"):
        qrels.setdefault(q, {})[d] = g
    ref = mean_metrics(reference_scores(run, qrels))
    for m in METRICS:
        assert round(report[m], 4) == round(ref[m], 4), m
    assert ndcg_range[0] < report["nDCG@10"] < ndcg_range[1]
