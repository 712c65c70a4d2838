"""Search as a pipeline: route the query by modality -> encode -> run each retriever's plan ->
fuse -> rerank -> assemble hits with provenance, for one query or a batch of them. It receives
the recipe and the collection; the engine says when it may read the store
(`search_prepared(reading=...)`, its read lock, taken after the encoders)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from .collection import Collection
from .contracts import Candidate, Filter, FusedEntry, Fusion, RerankContext, SearchPlan, StageLists
from .errors import QueryError
from .recipe import BuiltRecipe, Retriever
from .types import (
    Hit,
    Modality,
    Provenance,
    Query,
    RerankTrace,
    RetrieverTrace,
    Row,
    ScoredId,
    StageTrace,
    Vectors,
    rows_of,
    take_rows,
)


@dataclass
class SearchResult:
    """Hits plus what it took: per-stage seconds and the retrievers the query was routed to."""

    hits: list[Hit]
    timings: dict[str, float] = field(default_factory=dict)
    retrievers: list[str] = field(default_factory=list)
    top_ks: dict[str, int] = field(default_factory=dict)
    """Each routed retriever's list length (for "not in its top N" in explanations)."""
    notes: list[str] = field(default_factory=list)
    """Hints for the user, e.g. which values a field holds when a filter matched nothing."""


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """The threads that run a query's other retrievers beside its first (shared by every engine).
    As many as a server's concurrent searches may need, so they do not cap a micro-batch."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=32, thread_name_prefix="prism-retriever")
        return _POOL


T = TypeVar("T")


def _each_retriever(fn: Callable[[Retriever], T], routed: Sequence[Retriever]) -> list[T]:
    """`fn` of each retriever, in order, at once: the first on the calling thread (no hand-off;
    torch keeps its thread team), the others on the pool (encoders release the GIL)."""
    futures = [_pool().submit(fn, r) for r in routed[1:]]
    return [fn(routed[0])] + [f.result() for f in futures]


_MODALITIES = {m.value: m for m in Modality}


def _tie_key(s: ScoredId) -> tuple[float, str]:
    return (-round(s.score, 6), s.id)


class _StoreRerankContext(RerankContext):
    def __init__(self, recipe: BuiltRecipe, collection: Collection, query: Query, query_vectors: dict[str, Vectors]):
        self.recipe, self.collection, self.query, self._query_vectors = recipe, collection, query, query_vectors

    def rows(self, retriever: str, ids: Sequence[str]) -> list[Row]:
        if retriever not in self.recipe.retrievers:
            raise QueryError(f"no retriever named {retriever!r}; retrievers: {', '.join(self.recipe.retrievers)}")
        main = self.collection.fields_of(retriever)[0].name
        points = self.collection.store.retrieve(ids, with_vectors=[main])
        missing = [i for i in ids if i not in points or main not in points[i].vectors]
        if missing:
            raise QueryError(f"retriever {retriever!r} has no stored vector for {missing[:3]}")
        return [points[i].vectors[main] for i in ids]

    def query_vectors(self, retriever: str) -> Vectors:
        if retriever not in self._query_vectors:
            self._query_vectors[retriever] = self.recipe.retrievers[retriever].encoder.encode_query(self.query)
        return self._query_vectors[retriever]


@dataclass(eq=False)
class PreparedSearch:
    """One query made ready to search (`SearchPipeline.prepare`): routed, its fusion and filter
    checked. `encode_many` sets its `vectors` (or its `error`); `search_prepared` searches it."""

    query: Query
    top_k: int
    filter: Filter | None
    exact: bool | None
    routed: list[Retriever]
    fusion: Fusion | None
    vectors: dict[str, Vectors] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    error: Exception | None = None
    """Why this query failed on its own (its encode or its search); the others go on."""

    def retrievers_to_encode(self) -> list[Retriever]:
        """Its retrievers whose query vectors are still missing (none once it failed)."""
        return [] if self.error is not None else [r for r in self.routed if r.name not in self.vectors]


class SearchPipeline:
    """Runs queries through the recipe's retrievers, fusion and rerankers, one or many at once:
    `prepare` each, then `encode_many` (one encoder call per retriever and modality) and
    `search_prepared` (one store call for all). A single search is a batch of one."""

    def __init__(self, recipe: BuiltRecipe, collection: Collection):
        self.recipe, self.collection = recipe, collection

    # ---------------------------------------------------------------- route

    def route(self, query: Query, only: Sequence[str] | None = None) -> list[Retriever]:
        """The retrievers whose encoders accept the query's modality (of those named in `only`)."""
        if only is not None:
            unknown = sorted(set(only) - set(self.recipe.retrievers))
            if unknown:
                raise QueryError(f"no retriever named {', '.join(map(repr, unknown))}; "
                                 f"retrievers: {', '.join(self.recipe.retrievers)}")
        routed = [r for r in self.recipe.retrievers.values()
                  if r.encoder.accepts(query.modality, "query") and (only is None or r.name in only)]
        if not routed and only is not None:
            raise QueryError(f"none of the retrievers {', '.join(only) or '(none named)'} accepts "
                             f"{query.modality.value} queries")
        if not routed:
            accepted = sorted({m.value for r in self.recipe.retrievers.values() for m in r.encoder.query_modalities})
            raise QueryError(
                f"{self.recipe.source}: no retriever of recipe {self.recipe.spec.name!r} accepts "
                f"{query.modality.value} queries; this recipe answers queries of: {', '.join(accepted)}"
            )
        return routed

    def prepare(
        self, query: Query, top_k: int, flt: Filter | None, weights: Mapping[str, float] | None,
        exact: bool | None = None, only: Sequence[str] | None = None,
    ) -> PreparedSearch:
        """Check a query before any encoding: its retrievers, fusion weights and filter fields."""
        routed = self.route(query, only)
        fusion = self.fusion_with(weights)
        if not self.collection.ingested():
            raise self.collection.nothing_indexed()
        if flt is not None:
            self.collection.check_filter(flt)
        return PreparedSearch(query, top_k, flt, exact, routed, fusion)

    # ---------------------------------------------------------------- plan

    def plan(self, retriever: Retriever, exact: bool | None) -> SearchPlan:
        """The retriever's plan; `exact=True` replaces it with brute force on the main field."""
        fields = self.collection.fields_of(retriever.name)
        if exact:
            return SearchPlan.single(fields[0].name, retriever.top_k, exact=True)
        return retriever.index.plan(fields, retriever.top_k)

    def retrieve(
        self, retriever: Retriever, query: Query, flt: Filter | None, exact: bool | None, timings: dict[str, float],
    ) -> tuple[Vectors, SearchPlan, StageLists]:
        """The retriever's query vectors, plan and lists (its stages' lists, the last one final)."""
        prepared = PreparedSearch(query, retriever.top_k, flt, exact, [retriever], None, timings=timings)
        self.encode_many([prepared])
        [found] = self._search_many([prepared]) if prepared.error is None else [prepared.error]
        if isinstance(found, Exception):
            raise found
        [(plan, lists)] = found
        return prepared.vectors[retriever.name], plan, lists

    def _search_many(self, prepared: Sequence[PreparedSearch]) -> list[list[tuple[SearchPlan, StageLists]] | Exception]:
        """Every query's plans and lists from one `Store.search_many` call (a batched engine call
        or HTTP request where the store has one); if it fails, query by query, so a bad one
        fails alone."""
        t = time.perf_counter()
        requests = []
        for p in prepared:
            searches = []
            for r in p.routed:
                plan = self.plan(r, p.exact)
                by_field = self.collection.field_vectors(r, p.vectors[r.name], role="query")
                searches.append((plan, {f: by_field[f] for f in plan.fields}))
            requests.append((searches, p.filter, p.exact))
        store = self.collection.store
        found: list[list[StageLists] | Exception]
        try:
            found = list(store.search_many(requests))
        except Exception:
            found = []
            for request in requests:
                try:
                    found.append(store.search_plans(*request))
                except Exception as exc:
                    found.append(exc)
        elapsed = time.perf_counter() - t
        out: list[list[tuple[SearchPlan, StageLists]] | Exception] = []
        for p, (searches, _, _), lists in zip(prepared, requests, found, strict=True):
            p.timings["search"] = elapsed
            if isinstance(lists, Exception):
                out.append(lists)
                continue
            # Engines break exact ties in their own order; by id, every backend ranks alike.
            out.append([(plan, [sorted(lst, key=_tie_key) for lst in stage_lists])
                        for (plan, _), stage_lists in zip(searches, lists, strict=True)])
        return out

    # ---------------------------------------------------------------- encode

    def encode_many(self, prepared: Sequence[PreparedSearch]) -> None:
        """Set each query's vectors: per retriever (the retrievers at once), one `encode_batch`
        call per query modality. A batch that fails is encoded query by query, so a bad query
        gets its own `error` and the others their vectors."""
        todo = [(p, {r.name: r for r in p.retrievers_to_encode()}) for p in prepared]
        retrievers = list({name: r for _, rs in todo for name, r in rs.items()}.values())
        if retrievers:
            _each_retriever(lambda r: self._encode_for(r, [p for p, rs in todo if r.name in rs]), retrievers)

    @staticmethod
    def _encode_for(retriever: Retriever, prepared: Sequence[PreparedSearch]) -> None:
        by_modality: dict[Modality, list[PreparedSearch]] = {}
        for p in prepared:
            by_modality.setdefault(p.query.modality, []).append(p)
        key = f"encode:{retriever.name}"
        for modality, group in by_modality.items():
            t = time.perf_counter()
            try:
                if len(group) == 1:
                    rows = [retriever.encoder.encode_query(group[0].query)]
                else:
                    batch = retriever.encoder.encode_batch([p.query.content for p in group], modality, "query")
                    rows = [take_rows(batch, [i]) for i in range(len(group))]
            except Exception as exc:
                if len(group) == 1:
                    group[0].error = exc
                    continue
                for p in group:
                    try:
                        t = time.perf_counter()
                        p.vectors[retriever.name] = retriever.encoder.encode_query(p.query)
                        p.timings[key] = time.perf_counter() - t
                    except Exception as own:
                        p.error = own
                continue
            elapsed = time.perf_counter() - t
            for p, row in zip(group, rows, strict=True):
                p.vectors[retriever.name] = row
                p.timings[key] = elapsed

    # ---------------------------------------------------------------- fuse

    def fusion_with(self, weights: Mapping[str, float] | None) -> Fusion | None:
        """The recipe's fusion, with `weights` over the recipe's for the named retrievers."""
        fusion = self.recipe.fusion
        if fusion is None or not weights:
            return fusion
        unknown = set(weights) - set(self.recipe.retrievers)
        if unknown:
            raise QueryError(f"weights name unknown retriever(s) {sorted(unknown)}; retrievers: {sorted(self.recipe.retrievers)}")
        if "weights" not in type(fusion.params).model_fields:
            raise QueryError(f"fusion {fusion.name!r} takes no weights")
        data = fusion.params.model_dump(by_alias=True)
        data["weights"] = {**data.get("weights", {}), **weights}
        try:  # validated like the recipe's own weights
            params = type(fusion.params).model_validate(data)
        except ValueError as exc:
            raise QueryError(f"invalid fusion weights {dict(weights)}: {exc}") from exc
        return type(fusion)(params, fusion.context)

    @staticmethod
    def fuse(fusion: Fusion | None, lists: Mapping[str, list[ScoredId]]) -> tuple[list[FusedEntry], str | None]:
        if fusion is not None and len(lists) > 1:
            return fusion.fuse(lists), fusion.name
        name, only = next(iter(lists.items()))
        return [FusedEntry(s.id, s.score, {name: s.score}) for s in only], None

    # ---------------------------------------------------------------- rerank

    def rerank(
        self, query: Query, fused: list[FusedEntry], payloads: Mapping[str, Any], ctx: RerankContext,
        timings: dict[str, float],
    ) -> tuple[list[str], dict[str, float], dict[str, list[RerankTrace]]]:
        order = [f.id for f in fused]
        scores = {f.id: f.score for f in fused}
        traces: dict[str, list[RerankTrace]] = {}
        if not self.recipe.rerankers:
            return order, scores, traces
        traces = {i: [] for i in order}
        for stage, reranker in enumerate(self.recipe.rerankers):
            t = time.perf_counter()
            head_ids, tail = order[: reranker.top_n], order[reranker.top_n :]
            candidates = [Candidate(i, scores[i], payloads[i].payload if i in payloads else {}) for i in head_ids]
            reranked = reranker.rerank(query, candidates, ctx)
            if sorted(s.id for s in reranked) != sorted(head_ids):
                raise QueryError(f"reranker {reranker.name!r} returned other candidates than it was given")
            before = {i: k + 1 for k, i in enumerate(order)}
            order = [s.id for s in reranked] + tail
            label = f"{stage}:{reranker.name}"
            for k, s in enumerate(reranked):
                scores[s.id] = s.score
                traces[s.id].append(RerankTrace(label, float(s.score), before[s.id], k + 1))
            timings[f"rerank:{label}"] = time.perf_counter() - t
        return order, scores, traces

    # ---------------------------------------------------------------- run

    def search_prepared(
        self, prepared: Sequence[PreparedSearch], reading: Callable[[], AbstractContextManager[Any]] = nullcontext,
    ) -> list[SearchResult | Exception]:
        """Search the encoded queries inside one `reading()` section (the engine's read lock, taken
        after the encoders ran: they touch no store, so a query being encoded holds back no ingest):
        one store call for all their plans and one payload read for all their hits, then each
        query's fusion, rerankers and hits. A query that fails (its `error`, or its own search)
        gets its exception in its place."""
        live = [p for p in prepared if p.error is None]
        with reading():
            found = dict(zip(map(id, live), self._search_many(live), strict=True)) if live else {}
            fused = {}
            for p in live:
                try:
                    if not isinstance(found[id(p)], Exception):
                        fused[id(p)] = self._fuse(p, found[id(p)])
                except Exception as exc:  # this query's fusion failed: it alone
                    found[id(p)] = exc
            t = time.perf_counter()
            wanted = list(dict.fromkeys(f.id for entries, *_ in fused.values() for f in entries))
            payloads = self.collection.store.retrieve(wanted) if wanted else {}
            elapsed = time.perf_counter() - t
            out: list[SearchResult | Exception] = []
            for p in prepared:
                outcome = p.error or found.get(id(p))
                if isinstance(outcome, Exception):
                    out.append(outcome)
                    continue
                p.timings["payload"] = elapsed
                try:
                    out.append(self._finish(p, *fused[id(p)], payloads))
                except Exception as exc:
                    out.append(exc)
        return out

    def _fuse(self, p: PreparedSearch, searched: list[tuple[SearchPlan, StageLists]]) -> tuple[
            list[FusedEntry], str | None, dict[str, list[ScoredId]], dict[str, dict[str, tuple[StageTrace, ...]]]]:
        lists: dict[str, list[ScoredId]] = {}
        stages: dict[str, dict[str, tuple[StageTrace, ...]]] = {}
        for r, (plan, found) in zip(p.routed, searched, strict=True):
            lists[r.name] = found[-1]
            if len(plan.stages) > 1:
                stages[r.name] = _stage_traces(plan, found)
        t = time.perf_counter()
        fused, fusion_name = self.fuse(p.fusion, lists)
        p.timings["fusion"] = time.perf_counter() - t
        return fused[: max([p.top_k] + [rr.top_n for rr in self.recipe.rerankers])], fusion_name, lists, stages

    def _finish(
        self, p: PreparedSearch, fused: list[FusedEntry], fusion_name: str | None, lists: dict[str, list[ScoredId]],
        stages: dict[str, dict[str, tuple[StageTrace, ...]]], payloads: Mapping[str, Any],
    ) -> SearchResult:
        ctx = _StoreRerankContext(self.recipe, self.collection, p.query, p.vectors)
        order, scores, traces = self.rerank(p.query, fused, payloads, ctx, p.timings)
        parts = self.locate_parts(p.routed, order[: p.top_k], lists, payloads, p.vectors)
        hits = self.assemble(order[: p.top_k], scores, traces, fused, fusion_name, lists, stages, payloads, parts)
        return SearchResult(hits, p.timings, [r.name for r in p.routed], {r.name: r.top_k for r in p.routed})

    # ---------------------------------------------------------------- parts

    def locate_parts(
        self, routed: Sequence[Retriever], ids: Sequence[str], lists: Mapping[str, list[ScoredId]],
        payloads: Mapping[str, Any], qvecs: Mapping[str, Vectors],
    ) -> dict[str, dict[str, tuple[int, Any]]]:
        """For retrievers whose encoder names its parts (a video's keyframes): which stored vector
        of each final hit the query matched best, and that part's payload entry. One read of
        the hits' vectors per such retriever; other recipes pay nothing."""
        out: dict[str, dict[str, tuple[int, Any]]] = {}
        for r in routed:
            key = r.encoder.parts_key
            main = self.collection.fields_of(r.name)[0]
            if key is None or main.kind != "multi":
                continue
            found = {s.id for s in lists.get(r.name, [])}
            wanted = [i for i in ids if i in found]
            if not wanted:
                continue
            query = np.asarray(rows_of(qvecs[r.name])[0], np.float32)  # [m, d]
            points = self.collection.store.retrieve(wanted, with_vectors=[main.name])
            located: dict[str, tuple[int, Any]] = {}
            for item_id in wanted:
                point = points.get(item_id)
                if point is None or main.name not in point.vectors:
                    continue
                doc = np.asarray(point.vectors[main.name], np.float32)  # [n, d]
                if doc.ndim != 2 or not len(doc) or doc.shape[1] != query.shape[-1]:
                    continue
                best = int((doc @ query.T).max(axis=1).argmax())
                labels = (payloads[item_id].payload if item_id in payloads else {}).get(key)
                label = labels[best] if isinstance(labels, list) and best < len(labels) else None
                located[item_id] = (best, label)
            out[r.name] = located
        return out

    # ---------------------------------------------------------------- assemble

    @staticmethod
    def assemble(
        order: Sequence[str], scores: Mapping[str, float], traces: Mapping[str, list[RerankTrace]],
        fused: Sequence[FusedEntry], fusion_name: str | None, lists: Mapping[str, list[ScoredId]],
        stages: Mapping[str, Mapping[str, tuple[StageTrace, ...]]], payloads: Mapping[str, Any],
        parts: Mapping[str, Mapping[str, tuple[int, Any]]] | None = None,
    ) -> list[Hit]:
        parts = parts or {}
        # Per retriever: each listed id's trace, made for the final hits only.
        per_retriever = [(name, {s.id: k for k, s in enumerate(lst, start=1)}, lst, stages.get(name, {}),
                          parts.get(name, {})) for name, lst in lists.items()]
        fused_by_id = {f.id: f for f in fused}
        hits = []
        for rank, item_id in enumerate(order, start=1):
            point = payloads.get(item_id)
            payload = {k: v for k, v in point.payload.items() if k[:1] != "_"} if point else {}
            f = fused_by_id[item_id]
            retrievers = {}
            for name, positions, lst, staged, located in per_retriever:
                k = positions.get(item_id)
                if k is not None:
                    retrievers[name] = RetrieverTrace(k, lst[k - 1].score, staged.get(item_id, ()),
                                                      *located.get(item_id, (None, None)))
            provenance = Provenance(retrievers, fusion_name, dict(f.contributions),
                                    f.score if fusion_name else None, tuple(traces.get(item_id, ())))
            kind = payload.get("modality", "text")
            modality = _MODALITIES.get(kind) or Modality(kind)
            hits.append(Hit(item_id, float(scores[item_id]), rank, modality, payload, provenance))
        return hits


def _stage_traces(plan: SearchPlan, lists: StageLists) -> dict[str, tuple[StageTrace, ...]]:
    """For each id of the final list, its rank and score in every stage."""
    per_stage = [{s.id: (k + 1, s.score) for k, s in enumerate(lst)} for lst in lists]
    out: dict[str, tuple[StageTrace, ...]] = {}
    for s in lists[-1]:
        out[s.id] = tuple(
            StageTrace(stage.field, *ranked[s.id], stage.limit)
            for stage, ranked in zip(plan.stages, per_stage, strict=True) if s.id in ranked
        )
    return out

