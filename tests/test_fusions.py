"""The built-in fusions against hand-computed tables (expected numbers written out literally)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from prismrag.contracts import FusedEntry
from prismrag.errors import QueryError
from prismrag.plugins.fusions import (
    DBSF,
    RRF,
    Convex,
    ConvexParams,
    DBSFParams,
    RRFParams,
    check_weights,
)
from prismrag.registry import Registry
from prismrag.types import ScoredId


def ranked(*ids: str) -> list[ScoredId]:
    """A list where only the order matters (RRF ignores scores)."""
    return [ScoredId(i, 1.0 - n / 100) for n, i in enumerate(ids)]


def scored(**scores: float) -> list[ScoredId]:
    return [ScoredId(i, s) for i, s in scores.items()]


def table(entries: list[FusedEntry]) -> list[tuple[str, float]]:
    return [(e.id, e.score) for e in entries]


def assert_table(entries: list[FusedEntry], expected: list[tuple[str, float]]) -> None:
    assert [e.id for e in entries] == [i for i, _ in expected]
    for e, (_, score) in zip(entries, expected, strict=True):
        assert e.score == pytest.approx(score, abs=1e-6), e.id


def assert_contributions_sum(entries: list[FusedEntry]) -> None:
    for e in entries:
        assert sum(e.contributions.values()) == e.score


THREE = {
    "dense": ranked("a", "b", "c"),
    "sparse": ranked("b", "d", "a"),
    "image": ranked("e", "a"),
}
WEIGHTS = {"dense": 1.0, "sparse": 2.0, "image": 0.5}


# ------------------------------------------------------------------------------------------ rrf


def test_rrf_weighted_k60_by_hand() -> None:
    fused = RRF(RRFParams(k=60, weights=WEIGHTS)).fuse(THREE)
    # a: 1/(60+1) + 2/(60+3) + 0.5/(60+2) = 0.016393443 + 0.031746032 + 0.008064516 = 0.056203991
    # b: 1/(60+2) + 2/(60+1)              = 0.016129032 + 0.032786885               = 0.048915917
    # d: 2/(60+2)                                                                    = 0.032258065
    # c: 1/(60+3)                                                                    = 0.015873016
    # e: 0.5/(60+1)                                                                  = 0.008196721
    assert_table(fused, [
        ("a", 0.056203991), ("b", 0.048915917), ("d", 0.032258065),
        ("c", 0.015873016), ("e", 0.008196721),
    ])
    a = fused[0]
    assert a.contributions == pytest.approx({"dense": 1 / 61, "sparse": 2 / 63, "image": 0.5 / 62})
    assert set(fused[2].contributions) == {"sparse"}  # absent from a list: no contribution
    assert_contributions_sum(fused)


def test_rrf_weighted_k1_by_hand_with_tie() -> None:
    fused = RRF(RRFParams(k=1, weights=WEIGHTS)).fuse(THREE)
    # b: 1/(1+2) + 2/(1+1)              = 0.333333 + 1.0              = 1.333333
    # a: 1/(1+1) + 2/(1+3) + 0.5/(1+2)  = 0.5 + 0.5 + 0.166667        = 1.166667
    # d: 2/(1+2)                                                     = 0.666667
    # c: 1/(1+3) = 0.25 and e: 0.5/(1+1) = 0.25 tie: broken by id, c before e
    assert_table(fused, [("b", 1.333333333), ("a", 1.166666667), ("d", 0.666666667), ("c", 0.25), ("e", 0.25)])
    assert_contributions_sum(fused)


def test_rrf_default_weights_are_one() -> None:
    fused = RRF(RRFParams()).fuse(THREE)
    # a: 1/61 + 1/63 + 1/62 = 0.016393443 + 0.015873016 + 0.016129032 = 0.048395491
    # b: 1/62 + 1/61 = 0.032522475; e: 1/61 = 0.016393443; d: 1/62 = 0.016129032; c: 1/63 = 0.015873016
    assert_table(fused, [
        ("a", 0.048395491), ("b", 0.032522475), ("e", 0.016393443),
        ("d", 0.016129032), ("c", 0.015873016),
    ])


def test_rrf_weights_change_the_order() -> None:
    """The LlamaIndex trap: weights must not be silently ignored."""
    lists = {"dense": ranked("a", "b"), "sparse": ranked("b", "a")}
    plain = RRF(RRFParams()).fuse(lists)
    # both score 1/61 + 1/62: a tie, broken by id
    assert table(plain)[0][1] == table(plain)[1][1]
    assert [e.id for e in plain] == ["a", "b"]
    sparse_heavy = RRF(RRFParams(weights={"sparse": 2.0})).fuse(lists)
    # b: 1/62 + 2/61 = 0.048916 > a: 1/61 + 2/62 = 0.048651
    assert_table(sparse_heavy, [("b", 0.048915917), ("a", 0.048651507)])
    dense_off = RRF(RRFParams(weights={"dense": 0.0})).fuse(lists)
    assert_table(dense_off, [("b", 1 / 61), ("a", 1 / 62)])
    with pytest.raises(QueryError, match="weight 0"):
        RRF(RRFParams(weights={"dense": 0.0, "sparse": 0.0})).fuse(lists)


def test_rrf_merges_by_id_not_text() -> None:
    # the same id in two lists is one hit; two ids are two hits even if their texts were equal
    lists = {"dense": ranked("doc1#0", "doc2#0"), "sparse": ranked("doc1#0", "doc1#1")}
    fused = RRF(RRFParams(k=60)).fuse(lists)
    assert sorted(e.id for e in fused) == ["doc1#0", "doc1#1", "doc2#0"]
    assert fused[0].id == "doc1#0"
    assert fused[0].score == pytest.approx(2 / 61)
    assert set(fused[0].contributions) == {"dense", "sparse"}


def test_rrf_duplicate_id_in_one_list_counts_once() -> None:
    fused = RRF(RRFParams(k=60)).fuse({"dense": ranked("a", "a", "b")})
    # the first occurrence counts: a at rank 1, b at rank 2
    assert_table(fused, [("a", 1 / 61), ("b", 1 / 62)])


def test_rrf_k_zero_and_validation() -> None:
    assert_table(RRF(RRFParams(k=0)).fuse({"d": ranked("a", "b")}), [("a", 1.0), ("b", 0.5)])
    with pytest.raises(ValidationError):
        RRFParams(k=-1)
    with pytest.raises(ValidationError, match="non-negative"):
        RRFParams(weights={"dense": -1.0})
    with pytest.raises(ValidationError):
        RRFParams(weights={"dense": float("nan")})
    with pytest.raises(ValidationError):
        RRFParams.model_validate({"k": 60, "weigths": {}})  # a typo is an error, not ignored


def test_runtime_weight_override_is_checked() -> None:
    """Query-time overrides use model_copy, which skips validation: fuse checks again."""
    params = RRFParams().model_copy(update={"weights": {"dense": -2.0}})
    with pytest.raises(QueryError, match="non-negative"):
        RRF(params).fuse({"dense": ranked("a")})


# -------------------------------------------------------------------------------- check_weights


def test_check_weights() -> None:
    names = ["dense", "sparse"]
    check_weights(RRFParams(weights={"dense": 2.0}), names)
    check_weights(RRFParams(), names)
    with pytest.raises(ValueError, match=r"'imgs'.*dense, sparse"):
        check_weights(RRFParams(weights={"imgs": 1.0}), names)
    with pytest.raises(ValueError, match="non-negative"):
        check_weights(RRFParams().model_copy(update={"weights": {"dense": -1.0}}), names)
    with pytest.raises(ValueError, match="weight 0"):
        check_weights(DBSFParams(weights={"dense": 0.0, "sparse": 0.0}), names)
    check_weights(ConvexParams(weights={"dense": 0.0}), names)  # sparse still weighs 1.0


# ---------------------------------------------------------------------------- weighted (convex)


def test_convex_minmax_by_hand() -> None:
    lists = {"dense": scored(a=0.9, b=0.5, c=0.1), "sparse": scored(b=12.0, d=8.0, a=4.0)}
    fused = Convex(ConvexParams(weights={"dense": 3.0, "sparse": 1.0})).fuse(lists)
    # weights normalized: dense 3/4 = 0.75, sparse 1/4 = 0.25
    # dense minmax: a 1.0, b 0.5, c 0.0; sparse minmax: b 1.0, d 0.5, a 0.0; absent -> 0.0
    # a: 0.75*1.0 + 0.25*0.0 = 0.75;  b: 0.75*0.5 + 0.25*1.0 = 0.625
    # d: 0.75*0 (absent) + 0.25*0.5 = 0.125;  c: 0.75*0.0 + 0 (absent) = 0.0
    assert_table(fused, [("a", 0.75), ("b", 0.625), ("d", 0.125), ("c", 0.0)])
    by_id = {e.id: e for e in fused}
    assert by_id["a"].contributions == {"dense": 0.75, "sparse": 0.0}
    assert by_id["d"].contributions == {"sparse": 0.125}
    assert_contributions_sum(fused)


def test_convex_weights_normalized_over_the_call() -> None:
    # a weight for a retriever that did not answer (say, an image retriever for a text query)
    # does not change the others' shares
    lists = {"dense": scored(a=0.9, b=0.1), "sparse": scored(b=5.0, a=1.0)}
    fused = Convex(ConvexParams(weights={"dense": 1.0, "sparse": 1.0, "image": 8.0})).fuse(lists)
    assert_table(fused, [("a", 0.5), ("b", 0.5)])
    with pytest.raises(QueryError, match="weight 0"):
        Convex(ConvexParams(weights={"dense": 0.0, "sparse": 0.0})).fuse(lists)


def test_convex_minmax_all_equal_and_empty() -> None:
    # an all-equal list maps every hit to 1.0; an empty list adds nothing
    lists = {"dense": scored(a=0.5, b=0.5), "sparse": [], "bm25": scored(c=3.0)}
    fused = Convex(ConvexParams()).fuse(lists)
    # weights 1/3 each: a = b = 1/3 (dense); c = 1/3 (bm25, a single hit -> 1.0)
    assert_table(fused, [("a", 1 / 3), ("b", 1 / 3), ("c", 1 / 3)])
    assert Convex(ConvexParams()).fuse({}) == []
    assert Convex(ConvexParams()).fuse({"dense": [], "sparse": []}) == []


def test_convex_zscore_by_hand() -> None:
    lists = {"dense": scored(a=3.0, b=2.0, c=1.0), "sparse": scored(b=10.0, d=0.0)}
    # dense: mean 2, population std sqrt(2/3) = 0.816497 -> z: a 1.224745, b 0.0, c -1.224745
    # sparse: mean 5, std 5 -> z: b 1.0, d -1.0; weights 0.5 / 0.5
    # default missing = the list's lowest z: dense -1.224745, sparse -1.0
    # a: 0.5*1.224745 + 0.5*(-1.0)       =  0.112372
    # b: 0.5*0.0      + 0.5*1.0          =  0.5
    # c: 0.5*(-1.224745) + 0.5*(-1.0)    = -1.112372
    # d: 0.5*(-1.224745, absent) + 0.5*(-1.0) = -1.112372 (tie with c, broken by id)
    fused = Convex(ConvexParams(normalization="zscore")).fuse(lists)
    assert_table(fused, [("b", 0.5), ("a", 0.112372), ("c", -1.112372), ("d", -1.112372)])
    by_id = {e.id: e for e in fused}
    assert by_id["a"].contributions == pytest.approx({"dense": 0.612372, "sparse": -0.5}, abs=1e-6)
    assert_contributions_sum(fused)
    # with missing = 0 (the list mean): a 0.612372, b 0.5, d -0.5, c -0.612372
    fused0 = Convex(ConvexParams(normalization="zscore", missing=0.0)).fuse(lists)
    assert_table(fused0, [("a", 0.612372), ("b", 0.5), ("d", -0.5), ("c", -0.612372)])
    assert set({e.id: e for e in fused0}["c"].contributions) == {"dense"}


def test_convex_zscore_constant_list() -> None:
    # all-equal scores: hits get 0.0, absent ids the default -1.0
    fused = Convex(ConvexParams(normalization="zscore")).fuse(
        {"dense": scored(a=0.7), "sparse": scored(b=2.0, a=1.0)}
    )
    # a: 0.5*0.0 + 0.5*(-1.0) = -0.5; b: 0.5*(-1.0, absent) + 0.5*1.0 = 0.0
    assert_table(fused, [("b", 0.0), ("a", -0.5)])


def test_non_finite_scores_refused() -> None:
    with pytest.raises(QueryError, match="non-finite"):
        Convex(ConvexParams()).fuse({"dense": scored(a=float("nan"))})


# ----------------------------------------------------------------------------------------- dbsf


def test_dbsf_by_hand() -> None:
    lists = {
        "dense": scored(x=3.0, y=2.0, z=1.0),
        "sparse": scored(y=0.9, w=0.6, x=0.3),
        "image": scored(z=42.0),
    }
    # dense: mean 2, sample std 1 -> (s - 2 + 3) / 6: x 0.666667, y 0.5, z 0.333333
    # sparse: mean 0.6, sample std 0.3 -> (s - 0.6 + 0.9) / 1.8: y 0.666667, w 0.5, x 0.333333
    # image: one hit -> 0.5
    # x: 2/3 + 1/3 = 1.0; y: 1/2 + 2/3 = 1.166667; z: 1/3 + 1/2 = 0.833333; w: 0.5
    fused = DBSF(DBSFParams()).fuse(lists)
    assert_table(fused, [("y", 1.166666667), ("x", 1.0), ("z", 0.833333333), ("w", 0.5)])
    assert_contributions_sum(fused)
    # sparse weighted 2: x: 2/3 + 2/3 = 1.333333; y: 1/2 + 4/3 = 1.833333; w: 1.0; z: 0.833333
    weighted = DBSF(DBSFParams(weights={"sparse": 2.0})).fuse(lists)
    assert_table(weighted, [("y", 1.833333333), ("x", 1.333333333), ("w", 1.0), ("z", 0.833333333)])


def test_dbsf_constant_list_and_clip() -> None:
    # all-equal scores -> 0.5 each (Qdrant's guard against division by zero)
    assert_table(DBSF(DBSFParams()).fuse({"d": scored(a=1.0, b=1.0)}), [("a", 0.5), ("b", 0.5)])
    # ten zeros and one 1: mean 1/11, sample std 1/sqrt(11) = 0.301511
    # the 1 maps to 0.5 + (10/11) / (6/sqrt(11)) = 0.5 + 10*sqrt(11)/66 = 1.002519 (past 1: Qdrant does
    # not clip); each 0 maps to 0.5 - sqrt(11)/66 = 0.449748
    lst = {"d": [ScoredId("top", 1.0)] + [ScoredId(f"z{i:02d}", 0.0) for i in range(10)]}
    fused = DBSF(DBSFParams()).fuse(lst)
    assert fused[0].id == "top"
    assert fused[0].score == pytest.approx(0.5 + 10 * math.sqrt(11) / 66)
    assert fused[0].score == pytest.approx(1.002519, abs=1e-6)
    assert fused[1].score == pytest.approx(0.449748, abs=1e-6)
    clipped = DBSF(DBSFParams(clip=True)).fuse(lst)
    assert clipped[0].score == 1.0


def test_dbsf_empty() -> None:
    assert DBSF(DBSFParams()).fuse({}) == []
    assert DBSF(DBSFParams()).fuse({"a": [], "b": []}) == []
    assert_table(DBSF(DBSFParams()).fuse({"a": [], "b": scored(q=3.0)}), [("q", 0.5)])


# ----------------------------------------------------------------------------------- all three


@pytest.mark.parametrize("fusion", [RRF(RRFParams()), Convex(ConvexParams()), DBSF(DBSFParams())])
def test_ties_are_deterministic(fusion) -> None:
    # mirror-image lists give every id the same score: the order is by id, whatever the input order
    one = {"p": scored(b=2.0, a=1.0), "q": scored(a=2.0, b=1.0)}
    two = {"q": scored(a=2.0, b=1.0), "p": scored(b=2.0, a=1.0)}
    assert [e.id for e in fusion.fuse(one)] == ["a", "b"]
    assert [e.id for e in fusion.fuse(two)] == ["a", "b"]
    assert fusion.fuse(one) == fusion.fuse(one)


@pytest.mark.parametrize("fusion", [RRF(RRFParams()), Convex(ConvexParams()), DBSF(DBSFParams())])
def test_empty(fusion) -> None:
    assert fusion.fuse({}) == []
    assert fusion.fuse({"a": []}) == []


def test_registered() -> None:
    from prismrag.plugins import fusions

    reg = Registry(entry_points=False, plugins=[("fusions", fusions)])
    known = reg.components("fusion")
    assert {"rrf", "weighted", "dbsf"} <= set(known)
    assert all(info.cls.description for info in known.values())


# ------------------------------------------------------------------- against Qdrant's own fusion


def test_matches_qdrant_edge_fusion(tmp_path) -> None:
    """DBSF equals Qdrant's; unweighted RRF equals Qdrant's with its k = ours + 1."""
    qe = pytest.importorskip("qdrant_edge")
    rng = np.random.default_rng(1)
    n, dim, limits = 40, 4, {"a": 15, "b": 12}
    config = qe.EdgeConfig(vectors={
        name: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Dot) for name in limits
    })
    shard = qe.EdgeShard.create(str(tmp_path / "shard"), config)
    vecs = {name: rng.normal(size=(n, dim)) for name in limits}
    shard.update(qe.UpdateOperation.upsert_points(
        [qe.Point(i, {name: v[i].tolist() for name, v in vecs.items()}) for i in range(n)]
    ))
    queries = {name: rng.normal(size=dim).tolist() for name in limits}

    def nearest(name: str) -> object:
        return qe.Query.Nearest(queries[name], using=name)

    lists = {
        name: [ScoredId(str(p.id), p.score)
               for p in shard.query(qe.QueryRequest(limit=limit, query=nearest(name)))]
        for name, limit in limits.items()
    }
    prefetches = [qe.Prefetch(limit=limit, query=nearest(name)) for name, limit in limits.items()]
    for theirs_fusion, ours in [
        (qe.Fusion.Dbsf(), DBSF(DBSFParams())),
        (qe.Fusion.Rrf(k=61), RRF(RRFParams(k=60))),
    ]:
        theirs = {
            str(p.id): p.score
            for p in shard.query(qe.QueryRequest(limit=100, query=theirs_fusion, prefetches=prefetches))
        }
        mine = {e.id: e.score for e in ours.fuse(lists)}
        assert mine.keys() == theirs.keys()
        for item_id, score in mine.items():
            assert score == pytest.approx(theirs[item_id], abs=1e-5), (ours.name, item_id)
    shard.close()
