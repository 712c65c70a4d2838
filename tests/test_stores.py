"""The index kinds and both Qdrant stores, on the real engines with small synthetic data."""

from __future__ import annotations

import importlib.util
import math
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from pydantic import ValidationError

from prismrag.contracts import Condition, Context, Encoder, Filter, PointBatch, VectorField
from prismrag.errors import IndexMismatchError, MissingDependencyError, PluginError, QueryError
from prismrag.plugins.indexes import DenseIndex, MultiIndex, SparseIndex
from prismrag.plugins.qdrant_edge_store import QdrantEdgeStore
from prismrag.plugins.qdrant_store import QdrantStore
from prismrag.types import MultiBatch, SparseBatch

needs_client = pytest.mark.skipif(
    importlib.util.find_spec("qdrant_client") is None, reason="qdrant-client is not installed"
)

N = 60
DIM = 16
FIELDS = [
    VectorField("d", "dense", DIM, "cosine"),
    VectorField("e", "dense", DIM, "euclid", exact=True),
    VectorField("s", "sparse", idf=True),
    VectorField("m", "multi", 8, "dot"),
]


def make_store(kind: str, base: Path, recipe: str = "t"):
    """`qdrant` is qdrant-client's local mode on disk; `qdrant-memory` its in-memory mode (fast:
    the on-disk mode commits to SQLite once per point)."""
    ctx = Context(base_dir=base, recipe=recipe)
    if kind == "qdrant-edge":
        return QdrantEdgeStore(QdrantEdgeStore.Params(), ctx)
    if kind == "qdrant-memory":
        return QdrantStore(QdrantStore.Params(location=":memory:"), ctx)
    return QdrantStore(QdrantStore.Params(path="qdrant-local"), ctx)


def sparse_rows(rng: np.random.Generator, n: int, vocab: int = 200, nnz: int = 6):
    rows = []
    for _ in range(n):
        idx = np.sort(rng.choice(vocab, nnz, replace=False)).astype(np.int64)
        rows.append((idx, rng.uniform(0.1, 2.0, nnz).astype(np.float32)))
    return rows


def make_data(n: int = N, seed: int = 0, prefix: str = "doc"):
    rng = np.random.default_rng(seed)
    ids = [f"{prefix}-{i}" for i in range(n)]
    vectors = {
        "d": rng.normal(size=(n, DIM)).astype(np.float32),
        "e": rng.normal(size=(n, DIM)).astype(np.float32),
        "s": SparseBatch.from_rows(sparse_rows(rng, n)),
        "m": MultiBatch([rng.normal(size=(int(rng.integers(1, 5)), 8)).astype(np.float32) for _ in range(n)]),
    }
    payloads = [
        {"_id": ids[i], "_hash": f"h{i}", "n": i, "tag": ["red", "green", "blue"][i % 3], "w": i / 4, "ok": i % 2 == 0}
        for i in range(n)
    ]
    return PointBatch(ids, vectors, payloads)


@pytest.fixture(params=["qdrant-edge", pytest.param("qdrant-memory", marks=needs_client)])
def store(request, tmp_path):
    s = make_store(request.param, tmp_path)
    s.open(FIELDS)
    yield s
    s.close()


@pytest.fixture
def data():
    return make_data()


# ----------------------------------------------------------------------------------- round trips


def test_round_trip(store, data):
    assert store.read_meta() is None
    assert store.manifest() == {}
    store.upsert(data)
    assert store.manifest() == {i: f"h{k}" for k, i in enumerate(data.ids)}
    assert store.info().points == N

    for k in (0, 7, 33):
        hits = store.search("d", data.vectors["d"][k : k + 1], 5)
        assert hits[0].id == data.ids[k] and hits[0].score == pytest.approx(1.0, abs=1e-5)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert store.search("s", data.vectors["s"].take([k]), 3)[0].id == data.ids[k]
        assert store.search("e", data.vectors["e"][k], 3)[0].id == data.ids[k]

    got = store.retrieve(["doc-3", "missing", "doc-5"], with_vectors=["d", "e", "s", "m"])
    assert set(got) == {"doc-3", "doc-5"}
    p = got["doc-3"]
    assert p.payload["tag"] == "red" and p.payload["_hash"] == "h3"
    assert p.vectors["d"].dtype == np.float32 and p.vectors["d"].shape == (DIM,)
    unit = data.vectors["d"][3] / np.linalg.norm(data.vectors["d"][3])  # cosine stores unit vectors
    np.testing.assert_allclose(p.vectors["d"], unit, rtol=1e-5, atol=1e-6)
    ind, val = p.vectors["s"]
    want_ind, want_val = data.vectors["s"].row(3)
    assert ind.dtype == np.int64 and val.dtype == np.float32
    np.testing.assert_array_equal(ind, want_ind)
    np.testing.assert_allclose(val, want_val, rtol=1e-6)
    np.testing.assert_allclose(p.vectors["e"], data.vectors["e"][3], rtol=1e-6)
    np.testing.assert_allclose(p.vectors["m"], data.vectors["m"].matrices[3], rtol=1e-6)
    assert store.retrieve(["doc-4"])["doc-4"].vectors == {}

    store.delete(["doc-3", "doc-4", "never-stored"])
    assert len(store.manifest()) == N - 2 and "doc-3" not in store.manifest()
    assert "doc-3" not in {h.id for h in store.search("d", data.vectors["d"][3:4], 10)}
    assert store.retrieve(["doc-3"]) == {}

    meta = {"version": 1, "encoders": {"d": "abc"}, "payload_keys": ["_id", "tag"]}
    store.write_meta(meta)
    assert store.read_meta() == meta
    store.write_meta({"version": 2})
    assert store.read_meta() == {"version": 2}
    assert store.info().points == N - 2  # the meta record is no point


def test_edge_search_reads_item_ids_once_and_skips_deleted_points(tmp_path, data, monkeypatch):
    """Searches ask qdrant-edge for no payload: item ids are read once per point and reused."""
    from prismrag.plugins import _edge_ids

    store = make_store("qdrant-edge", tmp_path)
    store.open(FIELDS)
    store.upsert(data)
    fetched: list[int] = []
    real = _edge_ids.ItemIds._learn

    def counting(self, points, fetch):
        fetched.append(len(points))
        return real(self, points, fetch)

    monkeypatch.setattr(_edge_ids.ItemIds, "_learn", counting)
    query = data.vectors["d"][4:5]
    first = store.search("d", query, 10)
    assert fetched == [10] and first[0].id == "doc-4"
    assert store.search("d", query, 10) == first and fetched == [10]  # known ids: no read
    assert store.search("d", query, 20)[:10] == first and fetched == [10, 10]  # only the 10 new ones

    store.delete(["doc-4"])
    after = store.search("d", query, 10)
    assert "doc-4" not in {h.id for h in after} and len(after) == 10
    store.close()


def test_edge_item_ids_left_out_when_gone_and_bounded():
    from prismrag.plugins._edge_ids import ItemIds

    points = [SimpleNamespace(id=uuid.uuid4(), score=float(s)) for s in (3, 2, 1)]
    ids = ItemIds(limit=4)
    stored = {points[0].id: "a", points[2].id: "c"}  # points[1] was deleted after the query

    def fetch(wanted):
        return [SimpleNamespace(id=p, payload={"_id": stored[p]}) for p in wanted if p in stored]

    ranked = ids.ranked([points], [-1.0], fetch)
    assert [(s.id, s.score) for s in ranked[0]] == [("a", -3.0), ("c", -1.0)] and len(ids) == 2
    more = [SimpleNamespace(id=uuid.uuid4(), score=0.0) for _ in range(3)]
    stored.update({p.id: f"m{k}" for k, p in enumerate(more)})
    assert [s.id for s in ids.ranked([more], [1.0], fetch)[0]] == ["m0", "m1", "m2"]
    assert len(ids) == 3  # 2 + 3 > 4: started again with the new ones


def test_upsert_replaces_and_partial_vectors(store, data):
    store.upsert(data)
    again = PointBatch(data.ids[:10], {"d": data.vectors["d"][:10]}, [dict(p, _hash="new") for p in data.payloads[:10]])
    store.upsert(again)
    manifest = store.manifest()
    assert len(manifest) == N and manifest["doc-0"] == "new" and manifest["doc-10"] == "h10"
    # a point upserted with only some vectors is found by those and not by the others
    assert store.search("d", data.vectors["d"][2:3], 1)[0].id == "doc-2"
    assert "doc-2" not in {h.id for h in store.search("s", data.vectors["s"].take([2]), N)}


def test_euclid_scores_are_negated_distances(store, data):
    store.upsert(data)
    q = data.vectors["e"][5] + 0.01
    hits = store.search("e", q, 4)
    dist = np.linalg.norm(data.vectors["e"] - q, axis=1)
    order = np.argsort(dist)[:4]
    assert [h.id for h in hits] == [data.ids[i] for i in order]
    assert [h.score for h in hits] == pytest.approx([-dist[i] for i in order], rel=1e-4)


def test_multivector_maxsim(store, data):
    store.upsert(data)
    q = np.random.default_rng(5).normal(size=(3, 8)).astype(np.float32)
    want = np.array([(q @ m.T).max(axis=1).sum() for m in data.vectors["m"].matrices])
    hits = store.search("m", MultiBatch([q]), 5)
    assert [h.id for h in hits] == [data.ids[i] for i in np.argsort(-want)[:5]]
    assert hits[0].score == pytest.approx(want.max(), rel=1e-4)


# --------------------------------------------------------------------------------------- filters


def _ids(store, data, *conditions, limit=N):
    hits = store.search("d", data.vectors["d"][0:1], limit, Filter(tuple(conditions)))
    return {h.id for h in hits}


def test_filters(store, data):
    store.upsert(data)
    idx = range(N)
    by = lambda pred: {f"doc-{i}" for i in idx if pred(i)}  # noqa: E731
    assert _ids(store, data, Condition("tag", "eq", "red")) == by(lambda i: i % 3 == 0)
    assert _ids(store, data, Condition("tag", "in", ["red", "blue"])) == by(lambda i: i % 3 != 1)
    assert _ids(store, data, Condition("n", "in", [1, 2, 50])) == {"doc-1", "doc-2", "doc-50"}
    assert _ids(store, data, Condition("tag", "ne", "red")) == by(lambda i: i % 3 != 0)
    assert _ids(store, data, Condition("n", "gte", 10), Condition("n", "lt", 20)) == by(lambda i: 10 <= i < 20)
    assert _ids(store, data, Condition("n", "gt", 55)) == by(lambda i: i > 55)
    assert _ids(store, data, Condition("w", "lte", 2.0)) == by(lambda i: i / 4 <= 2.0)
    assert _ids(store, data, Condition("w", "eq", 2.5)) == {"doc-10"}
    assert _ids(store, data, Condition("ok", "eq", True), Condition("tag", "eq", "green")) == by(lambda i: i % 6 == 4)
    assert _ids(store, data, Condition("tag", "in", [])) == set()
    assert _ids(store, data, Condition("n", "in", [1, "x", 2.0])) == {"doc-1", "doc-2"}  # mixed
    assert _ids(store, data, Condition("ok", "ne", False), Condition("n", "lt", 5)) == {"doc-0", "doc-2", "doc-4"}
    assert _ids(store, data, Condition("_id", "eq", "doc-7")) == {"doc-7"}
    top = store.search("d", data.vectors["d"][0:1], 3, Filter((Condition("tag", "eq", "blue"),)))
    assert len(top) == 3 and all(int(h.id.split("-")[1]) % 3 == 2 for h in top)
    with pytest.raises(QueryError):
        store.search("d", data.vectors["d"][0:1], 3, Filter((Condition("n", "gt", [1]),)))


def test_numbers_match_whatever_their_type_in_the_payload_and_the_filter(store):
    # A field holding 0.5, 1.0, 1.5, 2, 3 (floats and integers mixed, as JSON metadata is).
    prices = [0.5, 1.0, 1.5, 2, 3]
    data = make_data(len(prices))
    for payload, price in zip(data.payloads, prices, strict=True):
        payload["price"] = price
    store.upsert(data)
    # The first filter is an integer one: on qdrant-edge it creates the field's payload index,
    # which must still serve the float values afterwards.
    assert _ids(store, data, Condition("price", "gte", 1)) == {"doc-1", "doc-2", "doc-3", "doc-4"}
    assert _ids(store, data, Condition("price", "gte", 1.0)) == {"doc-1", "doc-2", "doc-3", "doc-4"}
    assert _ids(store, data, Condition("price", "eq", 1)) == {"doc-1"}  # stored as 1.0
    assert _ids(store, data, Condition("price", "eq", 2.0)) == {"doc-3"}  # stored as 2
    assert _ids(store, data, Condition("price", "eq", 1.5)) == {"doc-2"}
    assert _ids(store, data, Condition("price", "in", [1, 2])) == {"doc-1", "doc-3"}
    assert _ids(store, data, Condition("price", "ne", 1)) == {"doc-0", "doc-2", "doc-3", "doc-4"}


def test_edge_indexes_filtered_payload_keys(tmp_path, data):
    plain = QdrantEdgeStore(QdrantEdgeStore.Params(path="a", payload_indexes=False), Context(base_dir=tmp_path))
    indexed = QdrantEdgeStore(QdrantEdgeStore.Params(path="b"), Context(base_dir=tmp_path))
    filters = [
        Filter((Condition("tag", "in", ["red", "green"]), Condition("n", "gte", 20))),
        Filter((Condition("w", "lt", 5.5), Condition("ok", "eq", False))),
        Filter((Condition("n", "eq", 7),)),
    ]
    for s in (plain, indexed):
        s.open(FIELDS)
        s.upsert(data)
    for flt in filters:
        a, b = (s.search("d", data.vectors["d"][1:2], 25, flt) for s in (plain, indexed))
        assert a == b and a
    assert set(indexed._shard.info().payload_schema) == {"tag", "n", "w", "ok"}
    assert plain._shard.info().payload_schema == {}
    indexed.close()
    indexed.open(FIELDS)  # the indexes persist
    assert set(indexed._shard.info().payload_schema) == {"tag", "n", "w", "ok"}
    for s in (plain, indexed):
        s.close()


def test_bad_queries(store, data):
    store.upsert(data)
    with pytest.raises(QueryError, match="nope"):
        store.search("nope", data.vectors["d"][0:1], 3)
    with pytest.raises(QueryError, match="16-d"):
        store.search("d", np.zeros((1, 5), np.float32), 3)
    with pytest.raises(QueryError, match="sparse"):
        store.search("s", data.vectors["d"][0:1], 3)
    assert store.search("s", SparseBatch.from_rows([(np.zeros(0, np.int64), np.zeros(0, np.float32))]), 3) == []


def test_search_plans_answer_several_plans_in_one_call(store, data):
    from prismrag.contracts import SearchPlan, Stage

    store.upsert(data)
    empty = SparseBatch.from_rows([(np.zeros(0, np.int64), np.zeros(0, np.float32))])
    two_stage = SearchPlan((Stage("s", 20), Stage("d", 5)))
    searches = [
        (SearchPlan.single("d", 5), {"d": data.vectors["d"][7:8]}),
        (SearchPlan.single("s", 4), {"s": empty}),  # no term: every list empty, the others still answered
        (two_stage, {"s": data.vectors["s"].take([9]), "d": data.vectors["d"][9:10]}),
        (SearchPlan.single("e", 3), {"e": data.vectors["e"][2:3]}),
    ]
    together = store.search_plans(searches)
    assert [len(lists) for lists in together] == [1, 1, 2, 1]
    assert together[1] == [[]]
    for (plan, vectors), lists in zip(searches, together, strict=True):
        alone = store.search_plan(plan, vectors)  # as one plan at a time answers it
        assert [[h.id for h in lst] for lst in lists] == [[h.id for h in lst] for lst in alone]
        assert [h.score for lst in lists for h in lst] == pytest.approx([h.score for lst in alone for h in lst])
    assert together[0][0][0].id == "doc-7" and together[2][1][0].id == "doc-9" and together[3][0][0].id == "doc-2"
    with pytest.raises(QueryError, match="16-d"):  # a bad vector in any plan fails the call, naming it
        store.search_plans([searches[0], (SearchPlan.single("d", 3), {"d": np.zeros((1, 5), np.float32)})])


# ---------------------------------------------------------------------------------------- sparse


def test_sparse_idf_matches_bm25_idf(store):
    docs = {"a": ([0, 1], [1.0, 2.0]), "b": ([0], [3.0]), "c": ([0, 2], [1.0, 1.0]), "d": ([2], [0.5])}
    ids = list(docs)
    rows = [(np.array(docs[i][0], np.int64), np.array(docs[i][1], np.float32)) for i in ids]
    store.upsert(PointBatch(ids, {"s": SparseBatch.from_rows(rows)}, [{"_id": i, "_hash": "x"} for i in ids]))
    q = {0: 1.0, 1: 0.5, 2: 2.0}
    df = {0: 3, 1: 1, 2: 2}
    idf = {t: math.log((4 - n + 0.5) / (n + 0.5) + 1) for t, n in df.items()}
    want = {i: sum(q[t] * w * idf[t] for t, w in zip(*docs[i], strict=True)) for i in ids}
    qrow = (np.array(list(q), np.int64), np.array(list(q.values()), np.float32))
    hits = store.search("s", SparseBatch.from_rows([qrow]), 4)
    assert [h.id for h in hits] == sorted(want, key=want.get, reverse=True)
    assert {h.id: h.score for h in hits} == pytest.approx(want, rel=1e-5)


def test_sparse_without_idf_is_plain_dot(tmp_path):
    s = make_store("qdrant-edge", tmp_path)
    s.open([VectorField("s", "sparse", idf=False)])
    rows = [(np.array([0, 1], np.int64), np.array([1.0, 2.0], np.float32)), (np.array([0], np.int64), np.array([3.0], np.float32))]
    s.upsert(PointBatch(["a", "b"], {"s": SparseBatch.from_rows(rows)}, [{"_id": "a"}, {"_id": "b"}]))
    hits = s.search("s", (np.array([0, 1]), np.array([1.0, 0.5])), 2)
    assert [(h.id, round(h.score, 5)) for h in hits] == [("b", 3.0), ("a", 2.0)]
    s.close()


# --------------------------------------------------------------------------------- persistence


def test_edge_reopen_keeps_points_and_meta(tmp_path, data):
    s = make_store("qdrant-edge", tmp_path)
    s.open(FIELDS)
    s.upsert(data)
    s.write_meta({"version": 1})
    s.close()
    assert (tmp_path / ".prism" / "t" / "prism-meta.json").is_file()
    s2 = make_store("qdrant-edge", tmp_path)
    s2.open(FIELDS)
    assert s2.manifest() == {i: f"h{k}" for k, i in enumerate(data.ids)}
    assert s2.read_meta() == {"version": 1}
    assert s2.search("d", data.vectors["d"][9:10], 1)[0].id == "doc-9"
    info = s2.info()
    assert info.points == N and info.location.endswith(str(Path(".prism") / "t")) and info.disk_bytes > 0
    assert info.fields["d"]["hnsw"] == {"m": 16, "ef_construct": 100, "ef": 128}
    s2.drop()
    s2.open(FIELDS)
    assert s2.manifest() == {} and s2.read_meta() is None
    s2.close()


@needs_client
def test_qdrant_local_path_reopen(tmp_path, data):
    few = PointBatch(data.ids[:8], {"d": data.vectors["d"][:8]}, data.payloads[:8])
    s = make_store("qdrant", tmp_path)
    s.open(FIELDS)
    s.upsert(few)
    s.write_meta({"version": 1})
    s.close()
    s = make_store("qdrant", tmp_path)
    s.open(FIELDS)
    assert s.manifest() == {i: f"h{k}" for k, i in enumerate(few.ids)}
    assert s.read_meta() == {"version": 1}
    assert s.search("d", data.vectors["d"][5], 1)[0].id == "doc-5"
    info = s.info()
    assert info.points == 8 and info.disk_bytes > 0 and info.location.endswith("qdrant-local#t")
    s.close()


def test_edge_path_param_and_tuning_changes(tmp_path, data):
    ctx = Context(base_dir=tmp_path, recipe="t")
    fields = [VectorField("d", "dense", DIM, "cosine", quantization="scalar", oversampling=3.0)]
    s = QdrantEdgeStore(QdrantEdgeStore.Params(path="idx/here", max_search_threads=1), ctx)
    s.open(fields)
    s.upsert(PointBatch(data.ids, {"d": data.vectors["d"]}, data.payloads))
    assert s.search("d", data.vectors["d"][4:5], 1)[0].id == "doc-4"
    s.close()
    assert (tmp_path / "idx" / "here" / "shard").is_dir()
    # HNSW and quantization settings may change without a re-index
    s = QdrantEdgeStore(QdrantEdgeStore.Params(path="idx/here"), ctx)
    s.open([VectorField("d", "dense", DIM, "cosine", hnsw_m=8, quantization="binary")])
    assert s.search("d", data.vectors["d"][4:5], 1, exact=True)[0].id == "doc-4"
    s.close()


@pytest.mark.parametrize("kind", ["qdrant-edge", pytest.param("qdrant", marks=needs_client)])
@pytest.mark.parametrize(
    ("changed", "expect"),
    [
        (VectorField("d", "dense", 32, "cosine"), ["'d'", "dimension", "16", "32"]),
        (VectorField("d", "dense", DIM, "dot"), ["'d'", "distance", "cosine", "dot"]),
        (VectorField("s", "sparse", idf=False), ["'s'", "idf", "True", "False"]),
        (VectorField("x", "dense", DIM, "cosine"), ["'x'", "not in the stored index"]),
    ],
)
def test_layout_mismatch(tmp_path, kind, changed, expect):
    s = make_store(kind, tmp_path, recipe="docs")
    base = [VectorField("d", "dense", DIM, "cosine"), VectorField("s", "sparse", idf=True)]
    s.open(base)
    s.close()
    fields = [f for f in base if f.name != changed.name] + [changed]
    s = make_store(kind, tmp_path, recipe="docs")
    with pytest.raises(IndexMismatchError) as err:
        s.open(fields)
    msg = str(err.value)
    for part in [*expect, "prism ingest", "--rebuild", "docs", "restore the previous recipe"]:
        assert part in msg
    s.close()
    s = make_store(kind, tmp_path, recipe="docs")
    s.open(base)  # the original layout still opens
    s.close()


def test_edge_second_process_is_refused(tmp_path):
    s = make_store("qdrant-edge", tmp_path)
    s.open(FIELDS)
    code = textwrap.dedent(f"""
        from pathlib import Path
        from prismrag.contracts import Context, VectorField
        from prismrag.errors import PrismError
        from prismrag.plugins.qdrant_edge_store import QdrantEdgeStore
        s = QdrantEdgeStore(QdrantEdgeStore.Params(), Context(base_dir=Path({str(tmp_path)!r}), recipe="t"))
        try:
            s.open({FIELDS!r})
        except PrismError as exc:
            print("refused:", exc)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "refused:" in out.stdout and "another process" in out.stdout, out.stdout + out.stderr
    s.close()


@needs_client
def test_qdrant_params_and_memory_mode(tmp_path, data):
    with pytest.raises(ValidationError, match="one of url, path and location"):
        QdrantStore.Params(url="http://localhost:6333", path="x")
    s = QdrantStore(QdrantStore.Params(location=":memory:", collection="c1"), Context(base_dir=tmp_path, recipe="r"))
    assert s.location == ":memory:#c1"
    s.open(FIELDS)
    s.upsert(data)
    s.write_meta({"k": [1, 2]})
    assert s.read_meta() == {"k": [1, 2]} and len(s.manifest()) == N
    s.drop()
    assert s.read_meta() is None
    s.close()


@needs_client
def test_qdrant_server_tuning_updates_only_what_changed(tmp_path):
    from qdrant_client import models as m

    s = QdrantStore(QdrantStore.Params(url="http://qdrant.invalid:6333"), Context(base_dir=tmp_path))
    calls = []
    s._client = SimpleNamespace(update_collection=lambda name, vectors_config: calls.append(vectors_config))
    base = VectorField("d", "dense", DIM, "cosine")
    stored = SimpleNamespace(
        params=SimpleNamespace(vectors={"d": s._vector_params(base)}),
        hnsw_config=m.HnswConfig(m=16, ef_construct=100, full_scan_threshold=10000),
        quantization_config=None,
    )
    s._update_tuning(stored, {"d": base})
    assert calls == []
    s._update_tuning(stored, {"d": VectorField("d", "dense", DIM, "cosine", hnsw_m=8, quantization="scalar")})
    (diff,) = calls
    assert diff["d"].hnsw_config.m == 8 and isinstance(diff["d"].quantization_config, m.ScalarQuantization)


def test_qdrant_without_client_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "qdrant_client", None)
    s = QdrantStore(QdrantStore.Params(location=":memory:"), Context(base_dir=tmp_path))
    with pytest.raises(MissingDependencyError, match=r'pip install "prismrag\[qdrant\]"'):
        s.open(FIELDS)


# ------------------------------------------------------------------------------------- parity


@needs_client
def test_parity_exact_top10(tmp_path):
    rng = np.random.default_rng(42)
    n = 400
    ids = [f"p{i}" for i in range(n)]
    dense = rng.normal(size=(n, 32)).astype(np.float32)
    sparse = SparseBatch.from_rows(sparse_rows(rng, n, vocab=60, nnz=8))
    fields = [VectorField("d", "dense", 32, "cosine"), VectorField("s", "sparse", idf=True)]
    batch = PointBatch(ids, {"d": dense, "s": sparse}, [{"_id": i, "_hash": "x"} for i in ids])
    stores = [make_store("qdrant-edge", tmp_path / "a"), make_store("qdrant-memory", tmp_path / "b")]
    for s in stores:
        s.open(fields)
        s.upsert(batch)
    queries_d = rng.normal(size=(10, 32)).astype(np.float32)
    queries_s = sparse_rows(rng, 10, vocab=60, nnz=4)
    for k in range(10):
        a, b = (s.search("d", queries_d[k], 10, exact=True) for s in stores)
        assert [h.id for h in a] == [h.id for h in b]
        assert [h.score for h in a] == pytest.approx([h.score for h in b], rel=1e-4)
        a, b = (s.search("s", SparseBatch.from_rows([queries_s[k]]), 10) for s in stores)
        assert [h.id for h in a] == [h.id for h in b]
        assert [h.score for h in a] == pytest.approx([h.score for h in b], rel=1e-4)
    for s in stores:
        s.close()


# ------------------------------------------------------------------------------------- crashes

_WRITER = """
import sys, numpy as np
from pathlib import Path
from prismrag.contracts import Context, PointBatch, VectorField
from prismrag.plugins.qdrant_edge_store import QdrantEdgeStore
from prismrag.types import SparseBatch
sys.path.insert(0, {tests!r})
from test_stores import crash_batch, CRASH_FIELDS
s = QdrantEdgeStore(QdrantEdgeStore.Params(), Context(base_dir=Path({base!r}), recipe="crash"))
s.open(CRASH_FIELDS)
for b in range(10_000):
    s.upsert(crash_batch(b))
    print(b, flush=True)
"""

CRASH_FIELDS = [VectorField("d", "dense", 24, "cosine"), VectorField("s", "sparse", idf=True)]


def crash_batch(b: int, size: int = 40) -> PointBatch:
    rng = np.random.default_rng(b)
    ids = [f"b{b}-{j}" for j in range(size)]
    vectors = {"d": rng.normal(size=(size, 24)).astype(np.float32), "s": SparseBatch.from_rows(sparse_rows(rng, size))}
    return PointBatch(ids, vectors, [{"_id": i, "_hash": f"h{b}"} for i in ids])


def test_sigkill_during_upserts_loses_nothing_reported(tmp_path):
    code = _WRITER.format(tests=str(Path(__file__).parent), base=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reported = []
    try:
        while len(reported) < 8:
            line = proc.stdout.readline()
            if not line:
                pytest.fail(f"writer exited early: {proc.stderr.read()}")
            reported.append(int(line))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    s = QdrantEdgeStore(QdrantEdgeStore.Params(), Context(base_dir=tmp_path, recipe="crash"))
    s.open(CRASH_FIELDS)  # loads after the kill (WAL replay)
    manifest = s.manifest()
    for b in reported:
        batch = crash_batch(b)
        assert all(manifest.get(i) == f"h{b}" for i in batch.ids), f"batch {b} was reported durable but is missing"
    last = crash_batch(reported[-1])
    assert s.search("d", last.vectors["d"][0:1], 1, exact=True)[0].id == last.ids[0]
    # the writer may have got further than we read before the kill landed
    written = max(int(i[1:].split("-")[0]) for i in manifest) + 1
    assert written >= len(reported)
    for b in range(written):
        s.upsert(crash_batch(b))
    manifest = s.manifest()
    assert len(manifest) == written * 40
    assert s.info().points == len(manifest)
    s.close()


# --------------------------------------------------------------------------------------- indexes


class _Enc(Encoder):
    name = "stub"
    metric = "dot"
    sparse_idf = True

    def encode(self, contents, modality, role):  # pragma: no cover - never called
        raise NotImplementedError


class _NoMetric(_Enc):
    metric = None


def test_dense_index_fields():
    enc = _Enc()
    f = DenseIndex().field("r", enc, 384)
    assert (f.kind, f.dimension, f.distance, f.hnsw_m, f.search_ef, f.quantization, f.exact) == ("dense", 384, "dot", 16, 128, "none", False)
    p = DenseIndex.Params.model_validate(
        {"distance": "euclid", "hnsw": {"m": 32, "ef_construct": 200, "ef": 64}, "quantization": {"type": "scalar", "oversampling": 3.0}, "exact": True, "on_disk": True}
    )
    f = DenseIndex(p).field("r", enc, 8)
    assert (f.distance, f.hnsw_m, f.hnsw_ef_construct, f.search_ef) == ("euclid", 32, 200, 64)
    assert (f.quantization, f.oversampling, f.rescore, f.exact, f.on_disk) == ("scalar", 3.0, True, True, True)
    assert DenseIndex(DenseIndex.Params(quantization="binary")).field("r", enc, 8).quantization == "binary"
    assert DenseIndex().field("r", _NoMetric(), 8).distance == "cosine"
    with pytest.raises(PluginError, match="dimension"):
        DenseIndex().field("r", enc, None)
    with pytest.raises(PluginError, match="dimension"):
        MultiIndex().field("r", enc, None)
    with pytest.raises(ValidationError):
        DenseIndex.Params.model_validate({"distance": "hamming"})
    with pytest.raises(ValidationError):
        DenseIndex.Params.model_validate({"hnsw": {"m": 16, "efc": 3}})


def test_sparse_and_multi_index_fields():
    enc = _Enc()
    assert SparseIndex().field("k", enc, None).idf is True
    assert SparseIndex(SparseIndex.Params(idf=False)).field("k", enc, None).idf is False
    f = MultiIndex(MultiIndex.Params(distance="cosine")).field("m", enc, 128)
    assert (f.kind, f.dimension, f.distance) == ("multi", 128, "cosine")
    for cls in (DenseIndex, SparseIndex, MultiIndex):
        assert cls.description and cls.vector_kind == cls.name


def test_registered_by_entry_points():
    from prismrag.registry import Registry

    r = Registry()
    assert {"qdrant-edge", "qdrant"} <= set(r.components("store"))
    assert {"dense", "sparse", "multi"} <= set(r.components("index"))
