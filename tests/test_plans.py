"""Multi-stage search plans: a Matryoshka-style shortlist rescored at full dimension, on both
stores, with each stage in the hits' provenance; the client-side fallback agrees."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

import prismrag
from prismrag.contracts import SearchPlan, Stage, Store
from prismrag.types import Item, Modality

WORDS = [f"word{i:03d}" for i in range(300)]
"""A vocabulary large enough that two items rarely tie for a query."""


def corpus(n: int = 120) -> list[Item]:
    rng = np.random.default_rng(7)
    return [Item(f"d{i:03d}", Modality.TEXT, " ".join(rng.choice(WORDS, size=30))) for i in range(n)]


STORES = {
    "qdrant-edge": "{use: qdrant-edge, path: store}",
    "qdrant": "{use: qdrant, location: ':memory:'}",
}


def engine_for(tmp_path, registry, store: str, limit: int):
    recipe = tmp_path / "plan.yaml"
    recipe.write_text(textwrap.dedent(f"""\
        name: plan
        store: {STORES[store]}
        retrievers:
          dense:
            encoder: {{use: hash, dimension: 64}}
            index: {{use: dense, shortlist: {{dimensions: 16, limit: {limit}}}}}
            top_k: 10
        """))
    engine = prismrag.load_recipe(recipe, registry=registry)
    engine.ingest_items(corpus())
    return engine


@pytest.mark.parametrize("store", sorted(STORES))
def test_a_shortlist_over_every_item_gives_exact_search_with_both_stages_in_provenance(tmp_path, registry, store):
    with engine_for(tmp_path, registry, store, limit=500) as engine:
        assert [f for f in engine.fields()] == ["dense", "dense~d16"]
        for query in ("word001 word002 word003", "word100 word200", "word017 word018 word019 word020"):
            planned = engine.search(query, top_k=10)
            exact = engine.search(query, top_k=10, exact=True)
            qvec = engine.recipe.retrievers["dense"].encoder.encode_query(prismrag.Query.text(query))
            everything = {s.id: s.score for s in engine.store.search("dense", qvec, 500, exact=True)}
            # the same ranking; items with equal scores may trade places at the cut
            assert [h.score for h in planned] == pytest.approx([h.score for h in exact], abs=1e-5)
            assert [everything[h.id] for h in planned] == pytest.approx([h.score for h in planned], abs=1e-5)
            for hit in planned:
                stages = hit.provenance.retrievers["dense"].stages
                assert [s.field for s in stages] == ["dense~d16", "dense"]
                assert stages[0].limit == 500 and stages[1].limit == 10
                assert stages[1].rank == hit.rank and stages[1].score == pytest.approx(hit.score, abs=1e-5)
            assert not exact[0].provenance.retrievers["dense"].stages  # one stage: none listed
            data = planned[0].to_dict()["provenance"]["retrievers"]["dense"]
            assert [s["field"] for s in data["stages"]] == ["dense~d16", "dense"]


@pytest.mark.parametrize("store", sorted(STORES))
def test_a_narrow_shortlist_only_rescores_its_candidates(tmp_path, registry, store):
    with engine_for(tmp_path, registry, store, limit=12) as engine:
        fields = engine.fields()
        qvec = engine.recipe.retrievers["dense"].encoder.encode_query(prismrag.Query.text("word001 word002 word003 word004"))
        by_field = engine.collection.field_vectors(engine.recipe.retrievers["dense"], qvec)
        plan = SearchPlan((Stage("dense~d16", 12), Stage("dense", 5)))
        first, second = engine.store.search_plan(plan, by_field)
        assert len(first) == 12 and len(second) == 5
        assert {s.id for s in second} <= {s.id for s in first}
        # the second stage is the full-dimension order of the shortlist
        stored = engine.store.retrieve([s.id for s in first], with_vectors=["dense"])
        full = {i: float(np.dot(stored[i].vectors["dense"], qvec[0])) for i in stored}
        best = sorted(full.values(), reverse=True)[:5]
        assert [s.score for s in second] == pytest.approx(best, abs=1e-5)
        assert [full[s.id] for s in second] == pytest.approx(best, abs=1e-5)
        assert fields["dense~d16"].dimension == 16


def test_the_client_side_fallback_matches_the_prefetch_query(tmp_path, registry):
    with engine_for(tmp_path, registry, "qdrant-edge", limit=30) as engine:
        qvec = engine.recipe.retrievers["dense"].encoder.encode_query(prismrag.Query.text("word010 word011 word012"))
        by_field = engine.collection.field_vectors(engine.recipe.retrievers["dense"], qvec)
        plan = SearchPlan((Stage("dense~d16", 30), Stage("dense", 10)))
        native = engine.store.search_plan(plan, by_field)
        fallback = Store.search_plan(engine.store, plan, by_field)  # the base class's client-side way
        for a, b in zip(native, fallback, strict=True):
            assert [s.score for s in a] == pytest.approx([s.score for s in b], abs=1e-4)
        assert {s.id for s in native[1]} <= {s.id for s in native[0]}


def test_a_shortlist_as_wide_as_the_encoder_is_refused(tmp_path, registry):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(textwrap.dedent("""\
        name: bad
        store: {use: qdrant-edge, path: store}
        retrievers:
          dense: {encoder: {use: hash, dimension: 16}, index: {use: dense, shortlist: {dimensions: 16}}}
        """))
    engine = prismrag.load_recipe(recipe, registry=registry)
    with pytest.raises(prismrag.PluginError, match="shortlist.dimensions"):
        engine.fields()
