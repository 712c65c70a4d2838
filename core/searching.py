"""Search: route the query by modality, search each retriever, fuse, rerank, explain."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .components import Candidate, FusedEntry, RerankContext
from .errors import QueryError
from .types import (
    Hit,
    Media,
    Modality,
    Provenance,
    Query,
    RerankTrace,
    RetrieverTrace,
    ScoredId,
    SparseBatch,
    Vectors,
    modality_of_path,
)

if TYPE_CHECKING:
    from .components import Filter
    from .engine import Engine


@dataclass
class SearchResult:
    """Hits plus what it took: per-stage seconds and the retrievers the query was routed to."""

    hits: list[Hit]
    timings: dict[str, float] = field(default_factory=dict)
    retrievers: list[str] = field(default_factory=list)


def as_query(value: Any, modality: Modality | str | None = None) -> Query:
    """A Query from text, a file path (modality from its extension), or bytes with a modality."""
    if isinstance(value, Query):
        return value
    if modality is not None:
        modality = Modality(modality)
    if isinstance(value, bytes):
        if modality is None:
            raise QueryError("a query given as bytes needs its modality (image, audio, video, shape)")
        return Query(modality, Media(data=value))
    if isinstance(value, Path) or (isinstance(value, str) and _is_file(value)):
        path = Path(value)
        if not path.is_file():
            raise QueryError(f"query file {str(path)!r} does not exist")
        detected = modality or modality_of_path(path)
        if detected is None:
            raise QueryError(f"cannot tell the modality of {str(path)!r} from its extension; pass it explicitly")
        if detected == Modality.TEXT:
            return Query.text(path.read_text(encoding="utf-8"))
        return Query(detected, Media(path=path.resolve()))
    if isinstance(value, str):
        if not value.strip():
            raise QueryError("the query is empty")
        if modality not in (None, Modality.TEXT):  # a file that is not there, not text to embed
            raise QueryError(f"query file {value!r} does not exist (a {modality.value} query needs a file or bytes)")
        return Query(Modality.TEXT, value)
    raise QueryError(f"cannot search with a {type(value).__name__}; give text, a path, bytes or a Query")


def _tie_key(s: ScoredId) -> tuple[float, str]:
    return (-round(s.score, 6), s.id)


def _is_file(text: str) -> bool:
    if len(text) > 4096 or "\n" in text:
        return False
    try:
        return Path(text).expanduser().is_file()
    except OSError:
        return False


class _EngineRerankContext(RerankContext):
    def __init__(self, engine: Engine, query: Query, query_vectors: dict[str, Vectors]):
        self.engine, self.query, self.query_vectors = engine, query, query_vectors

    def vectors(self, retriever: str, ids: Sequence[str]) -> np.ndarray:
        points = self.engine.store.retrieve(ids, with_vectors=[retriever])
        missing = [i for i in ids if i not in points or retriever not in points[i].vectors]
        if missing:
            raise QueryError(f"retriever {retriever!r} has no stored vector for {missing[:3]}")
        return np.stack([np.asarray(points[i].vectors[retriever], dtype=np.float32) for i in ids])

    def query_vector(self, retriever: str) -> np.ndarray:
        if retriever not in self.query_vectors:
            encoder = self.engine.recipe.retrievers[retriever].encoder
            self.query_vectors[retriever] = encoder.encode_query(self.query)
        vec = self.query_vectors[retriever]
        if isinstance(vec, SparseBatch):
            raise QueryError(f"retriever {retriever!r} is sparse; this reranker needs dense vectors")
        return np.asarray(vec)[0]


def run_search(
    engine: Engine,
    query: Query,
    top_k: int,
    flt: Filter | None,
    weights: Mapping[str, float] | None,
    exact: bool | None = None,
) -> SearchResult:
    recipe = engine.recipe
    routed = [r for r in recipe.retrievers.values() if r.encoder.accepts(query.modality, "query")]
    if not routed:
        accepted = sorted({m.value for r in recipe.retrievers.values() for m in r.encoder.query_modalities})
        raise QueryError(
            f"{recipe.source}: no retriever of recipe {recipe.spec.name!r} accepts {query.modality.value} "
            f"queries; this recipe answers queries of: {', '.join(accepted)}"
        )
    engine.open()
    if not engine.ingested():
        raise QueryError(
            f"{recipe.source}: nothing is indexed yet for recipe {recipe.spec.name!r}; "
            f"run `prism ingest {recipe.source}` first"
        )
    if flt is not None:
        engine.check_filter(flt)
    timings: dict[str, float] = {}
    lists: dict[str, list[ScoredId]] = {}
    qvecs: dict[str, Vectors] = {}
    for r in routed:
        t = time.perf_counter()
        qvecs[r.name] = r.encoder.encode_query(query)
        t1 = time.perf_counter()
        found = engine.store.search(r.name, qvecs[r.name], r.top_k, flt, exact)
        # Engines break exact ties in their own order; by id, every backend ranks alike.
        lists[r.name] = sorted(found, key=_tie_key)
        t2 = time.perf_counter()
        timings[f"encode:{r.name}"] = t1 - t
        timings[f"search:{r.name}"] = t2 - t1

    t = time.perf_counter()
    fusion = engine.fusion_with(weights)
    if fusion is not None and len(lists) > 1:
        fused = fusion.fuse(lists)
        fusion_name: str | None = fusion.name
    else:
        name, only = next(iter(lists.items()))
        fused = [FusedEntry(s.id, s.score, {name: s.score}) for s in only]
        fusion_name = None
    timings["fusion"] = time.perf_counter() - t

    head = max([top_k] + [rr.params.top_n for rr in recipe.rerankers])  # type: ignore[attr-defined]
    fused = fused[:head]
    t = time.perf_counter()
    payloads = engine.store.retrieve([f.id for f in fused]) if fused else {}
    timings["payload"] = time.perf_counter() - t

    order = [f.id for f in fused]
    scores = {f.id: f.score for f in fused}
    traces: dict[str, list[RerankTrace]] = {i: [] for i in order}
    ctx = _EngineRerankContext(engine, query, qvecs)
    for stage, reranker in enumerate(recipe.rerankers):
        t = time.perf_counter()
        n = reranker.params.top_n  # type: ignore[attr-defined]
        head_ids, tail = order[:n], order[n:]
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

    per_retriever = {name: {s.id: RetrieverTrace(k + 1, s.score) for k, s in enumerate(lst)} for name, lst in lists.items()}
    fused_by_id = {f.id: f for f in fused}
    hits = []
    for rank, item_id in enumerate(order[:top_k], start=1):
        point = payloads.get(item_id)
        payload = {k: v for k, v in (point.payload if point else {}).items() if not k.startswith("_")}
        f = fused_by_id[item_id]
        provenance = Provenance(
            retrievers={n: m[item_id] for n, m in per_retriever.items() if item_id in m},
            fusion=fusion_name,
            contributions=dict(f.contributions),
            fused_score=f.score if fusion_name else None,
            rerank=tuple(traces[item_id]),
        )
        modality = Modality(payload.get("modality", "text"))
        hits.append(Hit(item_id, float(scores[item_id]), rank, modality, payload, provenance))
    return SearchResult(hits, timings, [r.name for r in routed])
