"""Contract checks for plugin authors, and a pytest plugin.

Call the checks from your tests (`from prismrag.testing import check_encoder`); each raises an
`AssertionError` whose message starts with the check and the part that failed, e.g.
`check_encoder: dimension: encoder 'x' declares 64 but returned 32 for text documents`.
pytest loads this module by itself (the `pytest11` entry point), which adds the `prism_registry`
fixture. Nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import tempfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .contracts import Context, Encoder, Loader, Role, Vectors
from .contracts.plans import SearchPlan, Stage
from .contracts.ranking import Candidate, FusedEntry, Fusion, RerankContext, Reranker
from .contracts.storage import HASH_KEY, ID_KEY, Condition, Filter, PointBatch, Store, VectorField
from .errors import ItemError
from .registry import Registry, declaration_problems
from .types import Content, Item, Media, Modality, MultiBatch, Query, ScoredId, SparseBatch, rows_of

__all__ = ["DEFAULT_SAMPLES", "check_encoder", "check_fusion", "check_loader", "check_reranker", "check_store", "prism_registry"]

DEFAULT_SAMPLES: Mapping[Modality, Sequence[Content]] = {Modality.TEXT: [
    "Apples grow on trees in orchards.", "Rivers flow into the sea through wide deltas.",
    "A plugin registers its components through an entry point."]}
"""What `check_encoder` encodes for a modality when no samples are given for it."""


class _Check:
    """One check's failures: `check(ok, part, message)` fails unless `ok`, saying `<check>: <part>:
    <message>`; `check.step(part)` reports what the component raises."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, ok: object, part: str, message: str) -> None:
        if not ok:
            raise AssertionError(f"{self.name}: {part}: {message}")

    @contextlib.contextmanager
    def step(self, part: str) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            self(False, part, f"raised {type(exc).__name__}: {exc}")

    def declared(self, cls: type, kind: str) -> None:
        problems = declaration_problems(kind, cls)
        self(not problems, "declaration", f"{cls.__qualname__} cannot be registered as a {kind}: " + "; ".join(problems))

    def instance(self, obj: Any, kind: str) -> tuple[Any, bool]:
        """The component (a class is built with default params) and whether it was built here."""
        self.declared(obj if isinstance(obj, type) else type(obj), kind)
        if not isinstance(obj, type):
            return obj, False
        with self.step("construct"):
            return obj(), True


_ENC, _STORE, _LOADER, _FUSION, _RERANK = (_Check(f"check_{k}") for k in ("encoder", "store", "loader", "fusion", "reranker"))


def _same(a: Vectors, b: Vectors, atol: float = 1e-5) -> bool:
    """Whether two batches hold the same vectors (sparse rows compared as index -> value)."""
    if type(a) is not type(b) or len(a) != len(b):
        return False
    for x, y in zip(rows_of(a), rows_of(b), strict=True):
        if isinstance(x, tuple):
            dx, dy = (dict(zip(np.asarray(r[0]).tolist(), np.asarray(r[1]).tolist(), strict=True)) for r in (x, y))
            if dx.keys() != dy.keys() or not all(math.isclose(dx[k], dy[k], rel_tol=1e-4, abs_tol=atol) for k in dx):
                return False
        elif np.shape(x) != np.shape(y) or not np.allclose(x, y, rtol=1e-4, atol=atol):
            return False
    return True


def _best_first(scores: Sequence[float]) -> bool:
    return all(math.isfinite(s) for s in scores) and all(a >= b for a, b in zip(scores, scores[1:], strict=False))


def check_encoder(encoder: Encoder | type[Encoder], samples: Mapping[Modality, Sequence[Content]] | None = None) -> None:
    """Check an encoder (a class is built with default params): it can be registered; for every
    modality it declares, as documents and as queries, `encode`, `encode_batch` and
    `encode_query` return the declared `output` kind, one row per input, of the declared
    `dimension()` (dense, multi), finite and deterministic; `fingerprint()` is stable. `samples`
    gives contents per modality (text has defaults); a declared modality without samples fails."""
    enc, owned = _ENC.instance(encoder, "encoder")
    pool = {**DEFAULT_SAMPLES, **(samples or {})}
    try:
        for role, modalities in (("document", enc.document_modalities), ("query", enc.query_modalities)):
            for modality in sorted(modalities, key=lambda m: m.value):
                _ENC(pool.get(modality), "samples", f"encoder {enc.name!r} embeds {modality.value} {role}s; pass "
                     f"samples={{Modality.{modality.name}: [...]}} with a few of them")
                _check_encodings(enc, list(pool[modality]), modality, role)  # type: ignore[arg-type]
        with _ENC.step("fingerprint"):
            prints = [enc.fingerprint(), enc.fingerprint(), type(enc)(enc.params, enc.context).fingerprint()]
        _ENC(isinstance(prints[0], str) and prints[0] and len(set(prints)) == 1, "fingerprint",
             f"encoder {enc.name!r} gave {prints} for the same params; it must be one non-empty string")
    finally:
        if owned:
            enc.close()


def _check_encodings(enc: Encoder, contents: list[Content], modality: Modality, role: Role) -> None:
    what, head = f"{modality.value} {role}s", contents[: enc.max_batch]
    with _ENC.step("encode"):
        raw = enc.encode(head, modality, role)
    _check_batch(enc, raw, len(head), what)
    with _ENC.step("encode_batch"):
        out, again = enc.encode_batch(contents, modality, role), enc.encode_batch(contents, modality, role)
    _check_batch(enc, out, len(contents), what)
    _ENC(_same(out, again), "deterministic", f"encoder {enc.name!r} gave other vectors for the same {what} twice")
    if role == "query":
        with _ENC.step("encode_query"):
            one = enc.encode_query(Query(modality, contents[0]))
        _check_batch(enc, one, 1, f"one {modality.value} query")
        _ENC(_same(one, out[:1] if isinstance(out, np.ndarray) else out.take([0]), atol=1e-3), "deterministic",
             f"encoder {enc.name!r} encodes a {modality.value} query alone unlike the same query in a batch")


def _check_batch(enc: Encoder, vecs: Vectors, n: int, what: str) -> None:
    name, expected = enc.name, {"dense": np.ndarray, "sparse": SparseBatch, "multi": MultiBatch}[enc.output]
    _ENC(isinstance(vecs, expected) and not (isinstance(vecs, np.ndarray) and vecs.ndim != 2), "output",
         f"encoder {name!r} declares output {enc.output!r} but returned {type(vecs).__name__} "
         f"{getattr(vecs, 'shape', '')} for {what} (expected {expected.__name__})")
    _ENC(len(vecs) == n, "rows", f"encoder {name!r} returned {len(vecs)} rows for {n} {what}")
    if isinstance(vecs, SparseBatch):
        return _check_sparse(name, vecs, what)
    with _ENC.step("dimension"):
        declared = enc.dimension()
    for m in [vecs] if isinstance(vecs, np.ndarray) else [np.asarray(m) for m in vecs.matrices]:
        _ENC(m.ndim == 2 and m.shape[0] > 0 and np.issubdtype(m.dtype, np.floating), "output",
             f"encoder {name!r} returned {m.dtype} of shape {m.shape} for {what}; expected float rows")
        _ENC(isinstance(declared, int) and declared == m.shape[1], "dimension",
             f"encoder {name!r} declares {declared} but returned {m.shape[1]} for {what}")
        _ENC(np.all(np.isfinite(m)), "finite", f"encoder {name!r} returned NaN or infinity for {what}")


def _check_sparse(name: str, vecs: SparseBatch, what: str) -> None:
    indptr, indices, values = (np.asarray(a) for a in (vecs.indptr, vecs.indices, vecs.values))
    _ENC(indptr[0] == 0 and np.all(np.diff(indptr) >= 0) and indptr[-1] == len(indices) == len(values), "output",
         f"encoder {name!r} returned a malformed SparseBatch for {what}")
    _ENC(not indices.size or (np.issubdtype(indices.dtype, np.integer) and indices.min() >= 0 and indices.max() < 2**32),
         "output", f"encoder {name!r} returned sparse indices outside [0, 2**32) for {what}")
    _ENC(np.all(np.isfinite(values)), "finite", f"encoder {name!r} returned NaN or infinity for {what}")
    for i, (idx, _) in enumerate(vecs.rows()):
        _ENC(len(np.unique(idx)) == len(idx), "output", f"encoder {name!r} repeats an index in row {i} of {what}")


_S = 0.70710677
_DENSE = {"doc/a": [1, 0, 0, 0], "doc/b": [0, 1, 0, 0], "doc/c": [0, 0, 1, 0], "doc/d": [0, 0, 0, 1], "doc/e": [_S, _S, 0, 0]}
_SPARSE = {"doc/a": {1: 1.0}, "doc/b": {2: 1.0, 3: 0.5}, "doc/c": {3: 1.0}, "doc/d": {4: 1.0}, "doc/e": {1: 0.5, 2: 0.5}}
_GROUP = {"doc/a": "x", "doc/b": "y", "doc/c": "x", "doc/d": "y", "doc/e": "x"}
_FIELDS = [VectorField("dense", "dense", 4, "cosine"), VectorField("far", "dense", 4, "euclid"), VectorField("sparse", "sparse")]


def _dense(*rows: Sequence[float]) -> np.ndarray:
    return np.asarray(rows, dtype=np.float32)


def _sparse(*rows: Mapping[int, float]) -> SparseBatch:
    return SparseBatch.from_rows([(np.array(list(r), np.int64), np.array(list(r.values()), np.float32)) for r in rows])


def _points(ids: Sequence[str], hashes: Mapping[str, str]) -> PointBatch:
    dense = _dense(*(_DENSE[i] for i in ids))
    vectors = {"dense": dense, "far": dense, "sparse": _sparse(*(_SPARSE[i] for i in ids))}
    return PointBatch(ids, vectors, [{ID_KEY: i, HASH_KEY: hashes[i], "group": _GROUP[i]} for i in ids])


def check_store(store_factory: Callable[..., Store], tmp_path: str | Path | None = None) -> None:
    """Check a store on five points: `open` (dense cosine and euclid fields, a sparse one),
    `upsert`, `search` (nearest first, higher-is-better scores, at most `limit`), a `Filter` of
    an `eq` Condition, `retrieve` (payloads, vectors), `manifest` (ids with their `_hash`), a
    two-stage `search_plan` (one list per stage, the second rescoring the first's candidates),
    `search_plans` (several plans at once, answered as `search_plan` answers each), a replacing
    upsert, `info`, `delete`, `write_meta`/`read_meta` and `close()` twice.
    `store_factory` returns a fresh, unopened store; it is given a folder for the data (`tmp_path`
    or a temporary one) when it takes an argument."""
    with tempfile.TemporaryDirectory(prefix="prism-store-", ignore_cleanup_errors=True) as tmp:
        root = Path(tmp_path) if tmp_path is not None else Path(tmp)
        with _STORE.step("factory"):
            takes = [p for p in inspect.signature(store_factory).parameters.values()
                     if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
            store = store_factory(root) if takes else store_factory()
        _STORE(isinstance(store, Store), "factory", f"the factory returned {type(store).__name__}, not a Store")
        _STORE.declared(type(store), "store")
        try:
            _store_steps(store)
            with _STORE.step("close"):
                store.close()
                store.close()
        finally:
            with contextlib.suppress(Exception):
                store.close()


def _ranked(part: str, hits: Any, expected: Sequence[str], what: str) -> list[str]:
    """The ids of `hits`, after checking they are ScoredIds, best first, led by `expected`."""
    _STORE(isinstance(hits, list) and all(isinstance(h, ScoredId) for h in hits), part, f"{what} must return ScoredIds: {hits!r}")
    ids, scores = [h.id for h in hits], [h.score for h in hits]
    _STORE(ids[: len(expected)] == list(expected), part, f"{what} returned {ids}; expected the nearest first: {list(expected)}")
    _STORE(_best_first(scores), part, f"{what} returned scores {scores}; they must be finite, higher-is-better, best "
           f"first (negate euclid and manhattan distances)")
    return ids


def _store_steps(store: Store) -> None:
    hashes, near_a = {i: f"hash-{i}" for i in _DENSE}, _dense([0.9, 0.1, 0, 0])
    with _STORE.step("open"):
        store.open(list(_FIELDS))
    with _STORE.step("read_meta"):
        meta = store.read_meta()
    _STORE(meta is None, "read_meta", f"a new store must return None, got {meta!r}")
    with _STORE.step("upsert"):
        store.upsert(_points(list(_DENSE), hashes))
    with _STORE.step("manifest"):
        manifest = store.manifest()
    _STORE(manifest == hashes, "manifest", f"expected the ids with their {HASH_KEY!r} {hashes}, got {manifest}")
    with _STORE.step("search"):
        hits = {f: store.search(f, near_a, 3) for f in ("dense", "far")}
        sparse_hits = store.search("sparse", _sparse({2: 1.0}), 5)
        filtered = store.search("dense", near_a, 5, Filter((Condition("group", "eq", "y"),)))
    for f, found in hits.items():
        _STORE(len(_ranked("search", found, ["doc/a", "doc/e", "doc/b"], f"search on the {f} field")) == 3, "search",
               f"search on {f!r} with limit 3 returned {len(found)} hits")
    _ranked("search", sparse_hits, ["doc/b", "doc/e"], "search on the sparse field")
    _STORE(set(_ranked("filter", filtered, ["doc/b"], "search with group == 'y'")) <= {"doc/b", "doc/d"}, "filter",
           f"Condition('group', 'eq', 'y') let through {[h.id for h in filtered]}")
    with _STORE.step("retrieve"):
        got, bare = store.retrieve(["doc/c", "doc/missing"], with_vectors=["dense", "sparse"]), store.retrieve(["doc/b"])
    _STORE(set(got) == {"doc/c"} and set(bare) == {"doc/b"}, "retrieve",
           f"retrieve must return exactly the ids that exist, got {sorted(got)}, {sorted(bare)}")
    payload, vecs = got["doc/c"].payload, got["doc/c"].vectors
    _STORE(payload.get("group") == "x" and payload.get(HASH_KEY) == hashes["doc/c"], "retrieve",
           f"the payload of doc/c came back as {dict(payload)}")
    _STORE(np.allclose(vecs.get("dense", np.zeros(1)), _DENSE["doc/c"], atol=1e-5) and "sparse" in vecs
           and _same(_sparse(_SPARSE["doc/c"]), SparseBatch.from_rows([vecs["sparse"]])), "retrieve",
           f"the vectors of doc/c came back as {dict(vecs)}")
    plan = SearchPlan((Stage("sparse", 4), Stage("dense", 2)))
    with _STORE.step("search_plan"):
        lists = store.search_plan(plan, {"sparse": _sparse({2: 1.0, 3: 1.0}), "dense": _dense([0, 0.5, 1, 1.5])})
    _STORE(isinstance(lists, list) and len(lists) == 2, "search_plan", f"a two-stage plan must give two lists, got {lists!r}")
    _ranked("search_plan", lists[0], ["doc/b", "doc/c", "doc/e"], "the plan's first stage (sparse)")
    second = _ranked("search_plan", lists[1], ["doc/c", "doc/b"], "the plan's second stage (dense, rescoring)")
    _STORE(len(second) == 2, "search_plan", f"the second stage must keep its limit of 2, got {second}")
    with _STORE.step("search_plans"):
        together = store.search_plans([(plan, {"sparse": _sparse({2: 1.0, 3: 1.0}), "dense": _dense([0, 0.5, 1, 1.5])}),
                                       (SearchPlan.single("dense", 3), {"dense": near_a})])
    _STORE(isinstance(together, list) and [len(x) for x in together] == [2, 1], "search_plans",
           f"two plans (of 2 stages and 1) must give 2 and 1 lists, got {together!r}")
    _STORE([[h.id for h in lst] for lst in together[0]] == [[h.id for h in lst] for lst in lists], "search_plans",
           "search_plans must give each plan the lists search_plan gives it")
    _ranked("search_plans", together[1][0], ["doc/a", "doc/e", "doc/b"], "the second plan (dense, limit 3)")
    with _STORE.step("upsert"):
        store.upsert(_points(["doc/b"], {"doc/b": "hash-2"}))
        manifest, info = store.manifest(), store.info()
    _STORE(manifest.get("doc/b") == "hash-2" and info.points == 5, "upsert",
           f"an upsert must replace the point of the same id; got {manifest}, {info.points} points")
    with _STORE.step("delete"):
        store.delete(["doc/a"])
        left, gone, after = store.manifest(), store.retrieve(["doc/a"]), store.search("dense", near_a, 5)
    _STORE("doc/a" not in left and not gone and "doc/a" not in [h.id for h in after], "delete",
           "doc/a is still stored after delete(['doc/a'])")
    meta = {"version": 1, "retrievers": {"dense": {"dimension": 4}}, "note": "ünïcode"}
    with _STORE.step("meta"):
        store.write_meta({"version": 0})
        store.write_meta(meta)
        back = store.read_meta()
    _STORE(back == meta, "meta", f"write_meta({meta!r}) then read_meta() gave {back!r}")


def check_loader(loader_factory: Callable[[Path], Loader] | type[Loader], good_files: Sequence[str | Path],
                 bad_file: str | Path) -> None:
    """Check a loader: each good file loads (by a loader of that one file: `loader_factory(path)`,
    or a Loader class given `Params(path=...)`) to items with unique ids that two loads repeat,
    that hold no absolute path and are not the text, and no errors; the bad file gives an
    `ItemError`, yielded rather than raised."""
    _LOADER(good_files, "files", "give at least one good file")
    for path in map(Path, good_files):
        first = _load(loader_factory, path, "good file")
        items, errors = [x for x in first if isinstance(x, Item)], [str(x) for x in first if isinstance(x, ItemError)]
        _LOADER(items and not errors, "good file", f"{path.name} gave {len(items)} items and errors {errors}")
        ids = [i.id for i in items]
        _LOADER(len(set(ids)) == len(ids), "ids", f"{path.name} gave duplicate ids: {sorted(ids)}")
        for it in items:
            _LOADER(isinstance(it.id, str) and it.id and isinstance(it.modality, Modality) and isinstance(it.content, (str, Media)),
                    "items", f"{path.name}: {it!r} needs a str id, a Modality, str or Media content")
            _LOADER(str(path.resolve().parent) not in it.id and not (it.text and it.id == it.text), "ids",
                    f"id {it.id!r} must not hold the absolute path nor be the text")
        second = [x for x in _load(loader_factory, path, "good file") if isinstance(x, Item)]
        _LOADER([(i.id, i.content_hash()) for i in second] == [(i.id, i.content_hash()) for i in items], "stable ids",
                f"two loads of {path.name} gave ids {ids} and {[i.id for i in second]}")
    bad = _load(loader_factory, Path(bad_file), "bad file")
    errs = [x for x in bad if isinstance(x, ItemError)]
    _LOADER(errs and all(e.where and e.message for e in errs), "bad file", f"{Path(bad_file).name} gave no ItemError "
            f"with `where` and `message` ({len(bad)} items); yield prismrag.ItemError for an input you skip")


def _load(factory: Callable[[Path], Loader] | type[Loader], path: Path, what: str) -> list[Any]:
    with _LOADER.step("factory"):
        if isinstance(factory, type):
            loader = factory(factory.Params(path=str(path)), Context(base_dir=path.parent))  # type: ignore[call-arg]
        else:
            loader = factory(path)
    _LOADER(isinstance(loader, Loader), "factory", f"the factory returned {type(loader).__name__}, not a Loader")
    _LOADER.declared(type(loader), "loader")
    try:
        with _LOADER.step(what):
            out = list(loader.load())
    finally:
        loader.close()
    strays = [type(x).__name__ for x in out if not isinstance(x, (Item, ItemError))]
    _LOADER(not strays, "items", f"load() may yield only Item and ItemError, got {strays}")
    return out


_LISTS = {"dense": [ScoredId("doc/a", 0.9), ScoredId("doc/b", 0.8), ScoredId("doc/c", 0.1)],
          "sparse": [ScoredId("doc/a", 12.0), ScoredId("doc/d", 7.0), ScoredId("doc/b", 1.0)]}


def check_fusion(fusion: Fusion | type[Fusion], lists: Mapping[str, Sequence[ScoredId]] | None = None) -> None:
    """Check a fusion: entries keyed by id, each id of the lists exactly once, best first, an id
    first in every list first, one list's order kept, contributions naming retrievers and summing
    to the score, deterministic, and no lists fusing to nothing."""
    fus, _ = _FUSION.instance(fusion, "fusion")
    lists = lists or _LISTS
    with _FUSION.step("fuse"):
        fused, again = fus.fuse(lists), fus.fuse(lists)
        single, empty = fus.fuse({"dense": _LISTS["dense"]}), fus.fuse({})
    _FUSION(isinstance(fused, list) and all(isinstance(e, FusedEntry) for e in fused), "result",
            f"fuse() must return a list of FusedEntry, got {fused!r}")
    ids, wanted = [e.id for e in fused], {h.id for hits in lists.values() for h in hits}
    _FUSION(len(ids) == len(set(ids)) and set(ids) == wanted, "ids", f"fuse() returned {ids}; expected each of {sorted(wanted)} once")
    _FUSION(_best_first([e.score for e in fused]), "order", f"scores {[e.score for e in fused]} must be finite, best first")
    tops = {hits[0].id for hits in lists.values() if hits}
    _FUSION(len(tops) != 1 or ids[0] in tops, "order", f"{tops} is first in every list but not fused first: {ids}")
    _FUSION([e.id for e in single] == [h.id for h in _LISTS["dense"]] and empty == [], "order",
            f"one list must keep its order and no lists fuse to []; got {single}, {empty}")
    for e in fused:
        _FUSION(set(e.contributions) <= set(lists) and math.isclose(sum(e.contributions.values()), e.score, rel_tol=1e-6,
                abs_tol=1e-9), "contributions", f"{e.id!r}: contributions {dict(e.contributions)} must name retrievers "
                f"of {sorted(lists)} and sum to the score {e.score}")
    _FUSION([(e.id, e.score) for e in again] == [(e.id, e.score) for e in fused], "deterministic",
            "fusing the same lists twice gave different results")


class _HashContext(RerankContext):
    """Fixed dense vectors (dimension 8) for any retriever and id, made from their names."""

    def _vector(self, key: str) -> np.ndarray:
        return np.random.default_rng(zlib.crc32(key.encode())).normal(size=8).astype(np.float32)

    def rows(self, retriever: str, ids: Sequence[str]) -> list[Any]:
        return [self._vector(f"{retriever}/{i}") for i in ids]

    def query_vectors(self, retriever: str) -> Vectors:
        return self._vector(f"{retriever}?")[None, :]


def check_reranker(reranker: Reranker | type[Reranker], query: Query | None = None,
                   candidates: Sequence[Candidate] | None = None, ctx: RerankContext | None = None) -> None:
    """Check a reranker: it returns exactly the candidates it was given (none dropped, added or
    repeated; also for a shorter head and for none) as ScoredIds with finite scores,
    deterministically. The default `ctx` serves fixed dense vectors for any retriever name."""
    rr, _ = _RERANK.instance(reranker, "reranker")
    query, ctx = query or Query.text("where do rivers flow"), ctx or _HashContext()
    texts = [*DEFAULT_SAMPLES[Modality.TEXT], "Deltas form where rivers meet the sea.", "Orchards need bees."]
    candidates = list(candidates or [Candidate(f"doc/{k}", 1 - k / 10, {"text": t}) for k, t in enumerate(texts)])
    for given in (candidates, candidates[:2], []):
        with _RERANK.step("rerank"):
            out, again = rr.rerank(query, given, ctx), rr.rerank(query, given, ctx)
        _RERANK(isinstance(out, list) and all(isinstance(s, ScoredId) for s in out), "result",
                f"rerank() must return a list of ScoredId, got {out!r}")
        _RERANK(sorted(s.id for s in out) == sorted(c.id for c in given), "candidates",
                f"given {[c.id for c in given]}, rerank() returned {[s.id for s in out]}; return each exactly once, none added")
        _RERANK(all(math.isfinite(s.score) for s in out), "scores", f"scores must be finite: {out}")
        _RERANK(out == again, "deterministic", "reranking the same candidates twice gave different results")


@pytest.fixture
def prism_registry() -> Callable[..., Registry]:
    """A factory for this test: `prism_registry(*plugins, entry_points=False)` returns a fresh
    `Registry` holding the given plugin objects (modules, or objects with `@hookimpl` methods);
    installed plugins join it only with `entry_points=True`."""

    def make(*plugins: object, entry_points: bool = False) -> Registry:
        registry = Registry(entry_points=entry_points)
        for k, plugin in enumerate(plugins):
            registry.add_plugin(plugin, name=f"{getattr(plugin, '__name__', None) or type(plugin).__name__}#{k}")
        return registry

    return make
