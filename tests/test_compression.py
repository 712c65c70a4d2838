"""Compression stages on a dense index: scalar (int8) and binary quantization searched first,
their oversampled candidates rescored with the original vectors, run by the store as one plan."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

import prismrag
from prismrag.contracts import Context, PointBatch, SearchPlan, Stage, VectorField
from prismrag.plugins.indexes import DenseIndex
from prismrag.plugins.qdrant_edge_store import QdrantEdgeStore
from prismrag.plugins.qdrant_store import QdrantStore

N, DIM = 3000, 48


def vectors(seed: int, n: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def open_store(kind: str, tmp_path, quantization: str, hnsw_m: int = 16):
    ctx = Context(base_dir=tmp_path, recipe="q")
    store = (QdrantEdgeStore(QdrantEdgeStore.Params(), ctx) if kind == "qdrant-edge"
             else QdrantStore(QdrantStore.Params(location=":memory:"), ctx))
    store.open([VectorField("v", "dense", DIM, "cosine", hnsw_m=hnsw_m, quantization=quantization)])  # type: ignore[arg-type]
    docs = vectors(0, N)
    ids = [f"p{i:04d}" for i in range(N)]
    store.upsert(PointBatch(ids, {"v": docs}, [{} for _ in ids]))
    return store, docs


@pytest.mark.parametrize("quantization", ["binary", "scalar"])
def test_the_store_rescores_compressed_candidates_with_the_original_vectors(tmp_path, quantization):
    store, docs = open_store("qdrant-edge", tmp_path, quantization)
    try:
        queries = vectors(1, 8)
        compressed_differs = False
        for q in queries:
            true = docs @ q
            first, final = store.search_plan(SearchPlan((Stage("v", 40), Stage("v", 10))), {"v": q[None, :]})
            assert len(first) == 40 and len(final) == 10
            assert {s.id for s in final} <= {s.id for s in first}
            # the last stage: full-precision cosine, the best 10 of the 40 candidates
            candidates = sorted((true[int(s.id[1:])] for s in first), reverse=True)[:10]
            assert [s.score for s in final] == pytest.approx(candidates, abs=1e-4)
            assert [true[int(s.id[1:])] for s in final] == pytest.approx([s.score for s in final], abs=1e-4)
            # the first stage reports the compressed scores it ranked by
            compressed_differs |= any(abs(true[int(s.id[1:])] - s.score) > 1e-5 for s in first)
            # exact search ignores the compressed copies
            exact = store.search("v", q[None, :], 10, exact=True)
            assert [s.score for s in exact] == pytest.approx(sorted(true, reverse=True)[:10], abs=1e-4)
        assert compressed_differs
    finally:
        store.close()


def test_qdrant_client_runs_the_same_two_stage_plan(tmp_path):
    store, docs = open_store("qdrant", tmp_path, "binary")
    try:
        q = vectors(2, 1)[0]
        first, final = store.search_plan(SearchPlan((Stage("v", 30), Stage("v", 10))), {"v": q[None, :]})
        assert {s.id for s in final} <= {s.id for s in first} and len(final) == 10
        true = docs @ q
        assert [true[int(s.id[1:])] for s in final] == pytest.approx([s.score for s in final], abs=1e-4)
    finally:
        store.close()


def test_quantization_with_rescore_is_a_two_stage_plan_and_without_it_one_stage():
    def index(**params):
        return DenseIndex(DenseIndex.Params.model_validate(params), Context())

    field = VectorField("r", "dense", 32)
    binary = index(quantization={"type": "binary", "oversampling": 3.5})
    assert binary.plan([field], 10).stages == (Stage("r", 35), Stage("r", 10))
    assert index(quantization="scalar").plan([field], 10).stages == (Stage("r", 20), Stage("r", 10))
    assert index(quantization={"type": "binary", "rescore": False}).plan([field], 10).stages == (Stage("r", 10),)
    assert index().plan([field], 10).stages == (Stage("r", 10),)


def test_a_recipe_with_binary_quantization_shows_both_stages_in_provenance(tmp_path, registry):
    recipe = tmp_path / "bq.yaml"
    recipe.write_text(textwrap.dedent("""\
        name: bq
        store: {use: qdrant-edge, path: store}
        retrievers:
          dense:
            encoder: {use: hash, dimension: 64}
            index: {use: dense, quantization: {type: binary, oversampling: 4}}
            top_k: 5
        """))
    rng = np.random.default_rng(3)
    words = [f"w{i:03d}" for i in range(200)]
    items = [prismrag.Item(f"d{i:03d}", prismrag.Modality.TEXT, " ".join(rng.choice(words, 20))) for i in range(80)]
    with prismrag.load_recipe(recipe, registry=registry) as engine:
        engine.ingest_items(items)
        assert engine.store.info().fields["dense"]["quantization"]["type"] == "binary"
        hits = engine.search("w001 w002 w003 w004", top_k=5)
        assert len(hits) == 5
        for hit in hits:
            stages = hit.provenance.retrievers["dense"].stages
            assert [(s.field, s.limit) for s in stages] == [("dense", 20), ("dense", 5)]
            assert stages[1].rank == hit.rank


def test_a_shortlist_with_quantization_is_refused(tmp_path, registry):
    recipe = tmp_path / "both.yaml"
    recipe.write_text(textwrap.dedent("""\
        name: both
        store: {use: qdrant-edge, path: store}
        retrievers:
          dense: {encoder: {use: hash, dimension: 32},
                  index: {use: dense, quantization: binary, shortlist: {dimensions: 8}}}
        """))
    engine = prismrag.load_recipe(recipe, registry=registry)
    with pytest.raises(prismrag.PluginError, match="shortlist and quantization"):
        engine.fields()
