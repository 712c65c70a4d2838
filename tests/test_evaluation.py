"""evaluate / compare end to end on the real embedded engine, with the deterministic `hash` encoder."""

from __future__ import annotations

import json

import numpy as np
import pytest
from eval_data import COLORS, HASH_RETRIEVER, TOPICS, write_beir, write_images, write_recipe

from prismrag.cli import main
from prismrag.compare import compare_reports, format_comparison, randomization_test
from prismrag.datasets import DatasetError, load_dataset
from prismrag.evaluation import evaluate, format_report, read_trec_run
from prismrag.metrics import METRICS, mean_metrics, score_run


@pytest.fixture
def beir(tmp_path, registry):
    return load_dataset(write_beir(tmp_path, extra_qrels="ghost\tcats-0\t1\n"), registry=registry)


def test_evaluate_beir_end_to_end(tmp_path, registry, beir):
    recipe = write_recipe(tmp_path, "h256", HASH_RETRIEVER % 256)
    report = evaluate(recipe, beir, registry=registry, depth=20)
    assert set(METRICS) <= set(report.metrics)
    assert len(report.queries) == len(TOPICS)
    assert report.metrics["nDCG@10"] > 0.6  # topic words separate the documents well
    assert report.metrics["Recall@100"] > report.metrics["Recall@10"] - 1e-9 > 0.5
    assert report.ann_recall == pytest.approx(1.0)
    assert {"encode:dense", "search", "fusion", "payload", "total"} <= set(report.latency_ms)
    assert all(set(row) >= {"p50", "p95", "p99"} for row in report.latency_ms.values())
    assert report.ingest["items"] == 36
    assert not (tmp_path / "never-used").exists()  # the recipe's own store is not touched
    data = report.to_json()
    assert all(m in data for m in METRICS) and data["queries"] == len(TOPICS)
    assert data["dataset"]["problems"]["unknown_query_judgments"] == 1
    text = format_report(report)
    assert "nDCG@10" in text and "1 judgments name 1 unknown query" in text

    files = report.write(tmp_path / "out")
    assert [p.name for p in files] == ["report.json", "per_query.jsonl", "run.trec"]
    rows = [json.loads(line) for line in (tmp_path / "out" / "per_query.jsonl").read_text().splitlines()]
    assert [r["query_id"] for r in rows] == [q.id for q in beir.queries]
    run = {q: [d for d, _ in r] for q, r in read_trec_run(tmp_path / "out" / "run.trec").items()}
    assert run == report.run()  # the run file keeps the engine's order
    assert mean_metrics(score_run(run, beir.qrels)) == pytest.approx(report.metrics)


def test_index_dir_is_kept_and_reused(tmp_path, registry, beir):
    from fake_plugins import HashEncoder

    recipe = write_recipe(tmp_path, "h64", HASH_RETRIEVER % 64, "ingest: {cache: false}\n")
    first = evaluate(recipe, beir, registry=registry, index_dir=tmp_path / "idx", ann_check=False)
    encoded = HashEncoder.encoded()
    second = evaluate(recipe, beir, registry=registry, index_dir=tmp_path / "idx", ann_check=False)
    assert (tmp_path / "idx").is_dir()
    assert HashEncoder.encoded() - encoded == len(TOPICS) + 1  # only the queries and the warm-up query
    assert second.metrics == pytest.approx(first.metrics)
    assert second.ann_recall is None


def test_labelled_image_folder_end_to_end(tmp_path, registry):
    recipe = write_recipe(tmp_path, "img", HASH_RETRIEVER % 512)
    by_example = evaluate(recipe, load_dataset(write_images(tmp_path), queries="example"), registry=registry)
    assert len(by_example.queries) == len(COLORS)
    assert by_example.metrics["nDCG@10"] > 0.9  # same colour, same pixel bytes
    assert by_example.metrics["Recall@10"] == pytest.approx(1.0)
    by_label = evaluate(recipe, load_dataset(tmp_path / "images", queries="label"), registry=registry)
    assert sorted(q.text for q in by_label.queries) == sorted(COLORS)


def test_leave_one_out_queries_every_item_and_drops_its_own_hit(tmp_path, registry):
    """Issue 11: shape-to-shape retrieval by class, leave-one-out, through `prism eval`."""
    recipe = write_recipe(tmp_path, "img", HASH_RETRIEVER % 512)
    ds = load_dataset(write_images(tmp_path, with_split=False), queries="leave-one-out")
    assert len(ds.items) == len(ds.queries) == 5 * len(COLORS)  # everything indexed, everything asked
    assert all(q.exclude == q.id and q.id not in ds.qrels[q.id] and len(ds.qrels[q.id]) == 4 for q in ds.queries)
    report = evaluate(recipe, ds, registry=registry, depth=10)
    assert all(q.id not in dict(q.ranking) for q in report.queries)  # its own item is never its answer
    assert all(len(q.ranking) == 10 for q in report.queries)  # still `depth` results
    assert report.metrics["MAP@100"] > 0.9  # same colour, same pixel bytes


def test_recipe_that_cannot_take_the_queries_is_a_clear_error(tmp_path, registry):
    recipe = write_recipe(tmp_path, "kw", "keywords: {encoder: {use: bm25}}\n")
    images = load_dataset(write_images(tmp_path), queries="example")
    with pytest.raises(DatasetError, match="no retriever accepts image queries"):
        evaluate(recipe, images, registry=registry)


def test_compare_two_recipes(tmp_path, registry, beir):
    good = write_recipe(tmp_path, "good", HASH_RETRIEVER % 256)
    bad = write_recipe(tmp_path, "bad", HASH_RETRIEVER % 2)
    a = evaluate(good, beir, registry=registry, depth=20)
    b = evaluate(bad, beir, registry=registry, depth=20)
    c = compare_reports(a, b, show=3, permutations=2000)
    assert set(c.deltas) == set(METRICS) and c.queries == len(TOPICS)
    d = c.deltas["nDCG@10"]
    assert d.delta == pytest.approx(b.metrics["nDCG@10"] - a.metrics["nDCG@10"]) and d.delta < -0.2
    assert 0 < d.p_value <= 1 and d.ci_low <= d.delta <= d.ci_high
    assert d.losses >= 3 and len(c.losses) == 3 and c.wins == []
    assert [x.delta for x in c.losses] == sorted(x.delta for x in c.losses)
    text = format_comparison(c)
    assert "B lost most (nDCG@10)" in text and "p" in text
    assert "2,000 sign flips" in text.splitlines()[0] and c.to_json()["permutations"] == 2000
    assert json.loads(json.dumps(c.to_json()))["metrics"]["nDCG@10"]["p_value"] == pytest.approx(d.p_value, abs=1e-6)


def test_randomization_test_detects_shifts_and_not_noise():
    rng = np.random.default_rng(0)
    assert randomization_test(np.zeros(30)) == 1.0
    assert randomization_test(rng.normal(0.2, 0.1, 40)) < 0.001
    noise = rng.normal(0.0, 0.1, 40)
    assert randomization_test(noise - noise.mean()) > 0.9
    assert randomization_test(np.array([0.5, 0.5, 0.5]), 5000) == pytest.approx(0.25, abs=0.03)


BM25 = "keywords: {encoder: {use: bm25}, top_k: 50}\n"


def test_cli_eval_and_compare(tmp_path, capsys):
    data = write_beir(tmp_path)
    kw = write_recipe(tmp_path, "kw", BM25)
    hybrid = write_recipe(tmp_path, "hy", BM25 + "kw2: {encoder: {use: bm25, stemmer: false}, top_k: 50}\n",
                          "fusion: {use: rrf, k: 60}\n")
    assert main(["eval", str(kw), "--data", str(data), "--json", "--out", str(tmp_path / "o"), "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert list(report)[: len(METRICS)] == list(METRICS)
    assert report["nDCG@10"] > 0.6 and (tmp_path / "o" / "run.trec").is_file()

    assert main(["eval", str(kw), "--data", str(data), "--limit-queries", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "2 queries" in out and "encode:keywords" in out and "ANN recall@10" in out

    assert main(["compare", str(kw), str(hybrid), "--data", str(data), "--quiet", "--out", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "B = hy vs A = kw" in out and "nDCG@10" in out and "B won most" in out
    assert (tmp_path / "c" / "comparison.json").is_file() and (tmp_path / "c" / "a" / "run.trec").is_file()
    # saved results compare without re-running, to the same numbers
    assert main(["compare", str(tmp_path / "c" / "a"), str(tmp_path / "c" / "b"), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    first = json.loads((tmp_path / "c" / "comparison.json").read_text())
    assert again["metrics"] == first["metrics"] and again["wins"] == first["wins"]
    assert main(["compare", str(tmp_path / "c" / "a"), str(tmp_path / "c" / "b"), "--permutations", "500"]) == 0
    assert "500 sign flips" in capsys.readouterr().out
    assert main(["compare", str(kw), str(tmp_path / "c" / "b")]) == 2
    assert "--data DIR is required" in capsys.readouterr().err

    assert main(["eval", str(kw), "--data", str(tmp_path / "nothing-here"), "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["compare", str(kw), str(kw), "--data", str(data), "--metric", "nDCG@5"]) == 2


def test_ids_with_spaces_survive_the_trec_run_file(tmp_path, capsys):
    folder = tmp_path / "notes"
    folder.mkdir()
    texts = {"red car one.txt": "a red car", "red car two.txt": "the red car again", "red apple.txt": "an apple",
             "red rose.txt": "a rose"}
    for name, text in texts.items():
        (folder / name).write_text(text)
    (folder / "labels.csv").write_text(
        "file,label\n" + "".join(f"{n},{'red car' if 'car' in n else 'red'}\n" for n in texts)
    )
    kw = write_recipe(tmp_path, "kw", BM25)
    assert main(["eval", str(kw), "--data", str(folder), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    lines = (tmp_path / "o" / "run.trec").read_text().splitlines()
    assert lines and all(len(line.split()) == 6 for line in lines)  # one column per field, as trec_eval reads
    run = read_trec_run(tmp_path / "o" / "run.trec")
    assert "label:red car" in run and {d for d, _ in run["label:red car"]} <= set(texts)
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "o"), str(tmp_path / "o"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"]["nDCG@10"]["delta"] == 0.0


@pytest.mark.parametrize("option", [["--depth", "5"], ["--limit-docs", "-30"], ["--limit-queries", "0"]])
def test_out_of_range_numbers_are_usage_errors(tmp_path, capsys, option):
    kw = write_recipe(tmp_path, "kw", BM25)
    with pytest.raises(SystemExit) as info:
        main(["eval", str(kw), "--data", str(write_beir(tmp_path)), "--quiet", *option])
    assert info.value.code == 2 and "must be at least" in capsys.readouterr().err
    with pytest.raises(ValueError, match="at least 1"):
        randomization_test(np.array([0.4] * 5), permutations=-5)


def test_eval_moves_the_store_and_keeps_its_tuning(tmp_path):
    from prismrag.evaluation import store_override

    edge = tmp_path / "edge.yaml"
    edge.write_text("name: e\nstore: {use: qdrant-edge, path: mine, payload_indexes: false, max_search_threads: 1}\n"
                    "retrievers:\n  keywords: {encoder: {use: bm25}}\n")
    assert store_override(edge, tmp_path / "t") == {
        "use": "qdrant-edge", "payload_indexes": False, "max_search_threads": 1, "path": str(tmp_path / "t")
    }
    server = tmp_path / "server.yaml"
    server.write_text("name: s\nstore: {use: qdrant, url: 'http://db:6333', api_key: k, timeout: 30, shards: 2}\n"
                      "retrievers:\n  keywords: {encoder: {use: bm25}}\n")
    assert store_override(server, tmp_path / "t") == {"use": "qdrant", "timeout": 30, "path": str(tmp_path / "t")}


def test_the_star_and_the_interval_agree():
    """Issue 15 item 12: `+0.0411 [-0.0001, +0.0752] 0.0295*` starred a difference whose
    interval included zero. The interval now inverts the same test."""
    from prismrag.compare import SignFlips

    rng = np.random.default_rng(7)
    disagreements, starred = 0, 0
    for trial in range(200):
        n = int(rng.integers(5, 80))
        diffs = rng.normal(rng.uniform(-0.05, 0.05), rng.uniform(0.01, 0.3), n)
        diffs[rng.random(n) < 0.3] = 0.0  # ties, as per-query metrics have
        test = SignFlips(diffs, 2000, seed=trial)
        p = test.p_value()
        lo, hi = test.interval()
        assert lo <= diffs.mean() <= hi
        starred += p < 0.05
        disagreements += (p < 0.05) == (lo <= 0.0 <= hi)
    assert disagreements == 0 and 20 < starred < 180
    # the case of the report: a borderline difference
    d = SignFlips(np.r_[np.full(12, 0.1), np.full(8, -0.05), np.zeros(5)], 10_000)
    lo, hi = d.interval()
    assert (d.p_value() < 0.05) == (not lo <= 0 <= hi)
