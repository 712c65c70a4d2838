"""Late interaction: the `multi-vector` encoder (sentence-transformers MultiVectorEncoder, a tiny
model the test builds), exact MaxSim search on the `multi` field of both stores, and the `maxsim`
reranker after another retriever."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

import prismrag
from prismrag.contracts import Context
from prismrag.plugins.maxsim_reranker import MaxSimReranker, maxsim
from prismrag.plugins.multi_vector_encoder import MultiVectorEncoder
from prismrag.testing import check_encoder, check_reranker
from prismrag.types import Item, Modality, MultiBatch

TOPICS = ["rivers flow into the sea", "mountains rise above the clouds", "bread rises in a warm oven",
          "cats chase mice at night", "trains run on steel rails", "stars shine in distant galaxies"]


@pytest.fixture(scope="module")
def tiny_mv(tmp_path_factory) -> Path:
    """A MultiVectorEncoder on the tiny BERT of tests/tiny_models.py (ColBERT layout: BERT, a
    128-d projection, punctuation mask, normalisation), seeded and saved."""
    from tiny_models import build_tiny_sentence_transformer

    folder = tmp_path_factory.mktemp("tiny-mv")
    build_tiny_sentence_transformer(folder)
    import torch
    from sentence_transformers import MultiVectorEncoder as ST

    torch.manual_seed(0)
    model = ST(str(folder / "tiny-bert"), device="cpu", prompts={"query": "query: ", "document": "passage: "})
    model.save(str(folder / "tiny-mv"))
    return folder / "tiny-mv"


def encoder(path: Path, **params) -> MultiVectorEncoder:
    return MultiVectorEncoder(MultiVectorEncoder.Params(model=str(path), **params), Context())


def corpus() -> list[Item]:
    rng = np.random.default_rng(5)
    return [Item(f"d{i:02d}", Modality.TEXT, f"{TOPICS[i % 6]} {' '.join(rng.choice(TOPICS, 2))} number {i}") for i in range(40)]


def test_the_encoder_gives_token_matrices_with_prompts_pooling_and_truncation(tiny_mv):
    enc = encoder(tiny_mv)
    check_encoder(enc)
    docs = enc.encode_batch(TOPICS[:2], Modality.TEXT, "document")
    assert isinstance(docs, MultiBatch) and enc.dimension() == 128
    assert all(m.dtype == np.float32 and m.shape[1] == 128 for m in docs.matrices)
    assert np.allclose(np.linalg.norm(docs.matrices[0], axis=1), 1.0, atol=1e-4)
    query = enc.encode_query(prismrag.Query.text(TOPICS[0])).matrices[0]
    assert not np.allclose(query[: len(docs.matrices[0])].sum(), docs.matrices[0].sum())  # asymmetric encodings
    short = encoder(tiny_mv, truncate_dim=16)
    assert short.dimension() == 16 and short.encode_batch(TOPICS[:1], Modality.TEXT, "document").matrices[0].shape[1] == 16
    long_text = [" ".join(TOPICS)]
    pooled = encoder(tiny_mv, pool_factor=3).encode_batch(long_text, Modality.TEXT, "document").matrices[0]
    full = enc.encode_batch(long_text, Modality.TEXT, "document").matrices[0]
    assert len(pooled) <= len(full) // 3 + 1 < len(full)
    prompted = encoder(tiny_mv, document_prompt="query: ").encode_batch(TOPICS[:1], Modality.TEXT, "document").matrices[0]
    assert prompted.shape != docs.matrices[0].shape or not np.allclose(prompted, docs.matrices[0])
    with pytest.raises(prismrag.PrismError, match="truncate_dim 999"):
        encoder(tiny_mv, truncate_dim=999).dimension()


STORES = {"qdrant-edge": "{use: qdrant-edge, path: store}", "qdrant": "{use: qdrant, location: ':memory:'}"}


@pytest.mark.parametrize("store", sorted(STORES))
def test_exact_maxsim_search_matches_numpy_over_the_stored_vectors(tmp_path, tiny_mv, store):
    recipe = tmp_path / "mv.yaml"
    recipe.write_text(textwrap.dedent(f"""\
        name: mv
        store: {STORES[store]}
        retrievers:
          colbert: {{encoder: {{use: multi-vector, model: {tiny_mv}}}, top_k: 10}}
        """))
    items = corpus()
    with prismrag.load_recipe(recipe) as engine:
        engine.ingest_items(items)
        assert engine.fields()["colbert"].kind == "multi"
        stored = engine.store.retrieve([i.id for i in items], with_vectors=["colbert"])
        ids = sorted(stored)
        for text in (TOPICS[0], "warm bread", "distant trains at night"):
            q = engine.recipe.retrievers["colbert"].encoder.encode_query(prismrag.Query.text(text)).matrices[0]
            scores = maxsim(q, [stored[i].vectors["colbert"] for i in ids])
            expected = sorted(zip(ids, scores.tolist(), strict=True), key=lambda p: (-p[1], p[0]))[:10]
            hits = engine.search(text, top_k=10, exact=True)
            assert [h.id for h in hits] == [i for i, _ in expected]
            assert [h.score for h in hits] == pytest.approx([s for _, s in expected], abs=1e-3)


def test_the_maxsim_reranker_rescores_another_retrievers_candidates(tmp_path, tiny_mv):
    check_reranker(MaxSimReranker(MaxSimReranker.Params(retriever="any"), Context()))
    recipe = tmp_path / "rr.yaml"
    recipe.write_text(textwrap.dedent(f"""\
        name: rr
        store: {{use: qdrant-edge, path: store}}
        retrievers:
          words: {{encoder: {{use: bm25}}, top_k: 20}}
          colbert: {{encoder: {{use: multi-vector, model: {tiny_mv}}}, top_k: 20}}
        fusion: {{use: rrf, weights: {{colbert: 0.0}}}}
        rerank:
          - {{use: maxsim, retriever: colbert, top_n: 8}}
        """))
    items = corpus()
    with prismrag.load_recipe(recipe) as engine:
        engine.ingest_items(items)
        hits = engine.search("bread oven", top_k=8)
        assert len(hits) == 8
        stored = engine.store.retrieve([h.id for h in hits], with_vectors=["colbert"])
        q = engine.recipe.retrievers["colbert"].encoder.encode_query(prismrag.Query.text("bread oven")).matrices[0]
        want = maxsim(q, [stored[h.id].vectors["colbert"] for h in hits])
        assert [h.score for h in hits] == pytest.approx(sorted(want.tolist(), reverse=True), abs=1e-4)
        assert all(h.provenance.rerank[0].stage.endswith("maxsim") for h in hits)


def test_a_muvera_first_stage_rescored_by_maxsim(tmp_path, tiny_mv):
    recipe = tmp_path / "fde.yaml"
    recipe.write_text(textwrap.dedent(f"""\
        name: fde
        store: {{use: qdrant-edge, path: store}}
        retrievers:
          colbert:
            encoder: {{use: multi-vector, model: {tiny_mv}}}
            index: {{use: multi, muvera: {{repetitions: 4, simhash_bits: 3, projection: 8, limit: LIMIT}}}}
            top_k: 10
        """))
    items = corpus()
    for limit, query in ((100, TOPICS[2]), (12, TOPICS[4])):
        recipe.write_text(recipe.read_text().replace("LIMIT", str(limit)).replace("limit: 100", f"limit: {limit}"))
        with prismrag.load_recipe(recipe) as engine:
            if limit == 100:
                engine.ingest_items(items)
            (fde,) = [f for name, f in engine.fields().items() if name.startswith("colbert~fde-")]
            assert fde.kind == "dense" and fde.dimension == 4 * 8 * 8 and fde.distance == "dot"
            hits = engine.search(query, top_k=10)
            exact = engine.search(query, top_k=10, exact=True)
            stages = hits[0].provenance.retrievers["colbert"].stages
            assert [(s.field, s.limit) for s in stages] == [(fde.name, limit), ("colbert", 10)]
            stored = engine.store.retrieve([h.id for h in hits], with_vectors=["colbert"])
            q = engine.recipe.retrievers["colbert"].encoder.encode_query(prismrag.Query.text(query)).matrices[0]
            assert [h.score for h in hits] == pytest.approx(
                maxsim(q, [stored[h.id].vectors["colbert"] for h in hits]).tolist(), abs=1e-3)
            if limit == 100:  # every item is a candidate: exact MaxSim's top 10
                assert [h.id for h in hits] == [h.id for h in exact]
        recipe.write_text(recipe.read_text().replace(f"limit: {limit}", "limit: LIMIT"))
