"""The loss of a search plan, measured and gated: `prism eval` reports each stage's recall
against exact search on the same index, and fails when a retriever's `min_recall` is not met."""

from __future__ import annotations

import json

import pytest
from eval_data import write_beir, write_recipe

import prismrag.registry
from prismrag.cli import main
from prismrag.contracts import SearchPlan, Stage
from prismrag.datasets import load_dataset
from prismrag.evaluation import EvalReport, evaluate
from prismrag.plan_recall import PlanRecall, StageRecall, gate_failures, stage_recalls
from prismrag.types import ScoredId


def ranked(*pairs: tuple[str, float]) -> list[ScoredId]:
    return [ScoredId(i, s) for i, s in pairs]


def test_stage_recall_counts_candidates_early_and_the_first_k_last_with_ties():
    exact = ranked(("a", 0.9), ("b", 0.8), ("c", 0.7), ("d", 0.7), ("e", 0.1))
    plan = SearchPlan((Stage("short", 4), Stage("full", 3)))
    first = ranked(("e", 5.0), ("a", 4.0), ("d", 3.0), ("x", 2.0))  # keeps a and d (d ties c)
    final = ranked(("a", 0.9), ("d", 0.7), ("e", 0.1))
    rows = stage_recalls(plan, [first, final], exact, (3, 4))
    assert rows[0] == {3: pytest.approx(2 / 3), 4: pytest.approx(2 / 4)}
    assert rows[1] == {3: pytest.approx(2 / 3), 4: None}  # the plan returns only 3
    assert stage_recalls(SearchPlan.single("full", 3), [final], [], (3,)) == [{3: None}]


def test_the_gate_names_the_first_stage_below_min_recall():
    ok = PlanRecall("a", [StageRecall(1, "a", 20, {10: 1.0})], 5, 0.99)
    bad = PlanRecall("b", [StageRecall(1, "b~d8", 30, {10: 0.9}), StageRecall(2, "b", 10, {10: 0.8})], 5, 0.95)
    assert gate_failures([ok]) == []
    (problem,) = gate_failures([ok, bad])
    assert "'b'" in problem and "stage 1 of 2 on 'b~d8' (30 candidates)" in problem and "0.9000" in problem
    assert "no query" in gate_failures([PlanRecall("c", [], 0, 0.5)])[0]


AGGRESSIVE = """\
dense:
  encoder: {use: hash, dimension: 64}
  index: {use: dense, shortlist: {dimensions: 4, limit: 10}}
  top_k: 10
  min_recall: 0.99
plain:
  encoder: {use: hash, dimension: 64, salt: x}
  top_k: 10
"""


def test_eval_reports_each_stage_of_a_plan_that_is_not_exact(tmp_path, registry):
    data = write_beir(tmp_path, docs_per_topic=10)
    recipe = write_recipe(tmp_path, "agg", AGGRESSIVE)
    report = evaluate(recipe, load_dataset(data), registry=registry)
    (p,) = report.plan_recall  # `plain` searches exactly: not measured
    assert p.retriever == "dense" and p.queries == 6 and p.min_recall == 0.99
    assert [(s.field, s.limit) for s in p.stages] == [("dense~d4", 10), ("dense", 10)]
    first, last = p.stages
    assert 0 < last.recall[10] <= first.recall[10] < 1  # four dimensions lose items
    assert last.recall[100] is None  # the plan returns 10 results
    folder = tmp_path / "out"
    report.write(folder)
    again = EvalReport.read(folder)
    assert again.plan_recall[0].stages[1].recall[10] == pytest.approx(last.recall[10], abs=1e-6)
    assert gate_failures(report.plan_recall)


def test_eval_measures_a_quantized_plan_and_a_wide_shortlist_loses_nothing(tmp_path, registry):
    data = write_beir(tmp_path, docs_per_topic=10)
    recipe = write_recipe(tmp_path, "q", """\
        wide:
          encoder: {use: hash, dimension: 64}
          index: {use: dense, shortlist: {dimensions: 8, limit: 200}}
          top_k: 100
          min_recall: 0.99
        binary:
          encoder: {use: hash, dimension: 64, salt: y}
          index: {use: dense, quantization: {type: binary, oversampling: 2}}
          top_k: 10
        """)
    report = evaluate(recipe, load_dataset(data), registry=registry)
    by_name = {p.retriever: p for p in report.plan_recall}
    assert [s.recall[10] for s in by_name["wide"].stages] == [1.0, 1.0]
    assert [s.recall[100] for s in by_name["wide"].stages] == [1.0, 1.0]
    assert [(s.field, s.limit) for s in by_name["binary"].stages] == [("binary", 20), ("binary", 10)]
    assert not gate_failures(report.plan_recall)


def test_prism_eval_exits_non_zero_naming_retriever_stage_and_recall(tmp_path, registry, monkeypatch, capsys):
    monkeypatch.setattr(prismrag.registry, "Registry", lambda: registry)  # the hash encoder
    data = write_beir(tmp_path, docs_per_topic=10)
    recipe = write_recipe(tmp_path, "agg", AGGRESSIVE)
    assert main(["eval", str(recipe), "--data", str(data), "--quiet", "--json"]) == 1
    captured = capsys.readouterr()
    measured = json.loads(captured.out)["plan_recall"][0]
    recall = measured["stages"][0]["recall@10"]
    assert f"retriever 'dense': stage 1 of 2 on 'dense~d4' (10 candidates) keeps recall@10 {recall:.4f}" in captured.err
    assert "below its min_recall 0.99" in captured.err

    relaxed = write_recipe(tmp_path, "relaxed", AGGRESSIVE.replace("min_recall: 0.99", "min_recall: 0.05"))
    assert main(["eval", str(relaxed), "--data", str(data), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "plan recall vs exact search, retriever dense" in out and "stage 1 dense~d4 (10 candidates)" in out
