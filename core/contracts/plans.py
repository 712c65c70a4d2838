"""Search plans: how a retriever's fields are searched, in stages.

A plan is a sequence of stages. The first searches its field over the whole collection (with the
query's filter) and keeps `limit` candidates; every later stage rescores the candidates of the
stage before it on its own field and keeps its own `limit`. A one-stage plan is a plain nearest-
neighbour search. Examples: a Matryoshka shortlist (first 64 dimensions, 200 candidates) rescored
at full dimension; a MUVERA fixed-dimensional first stage rescored by exact MaxSim.

Stores run plans with Qdrant's prefetch/query API; `rescore_client_side` is the fallback a store
without multi-stage queries uses (and says so).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..types import ScoredId, SparseBatch, Vectors


@dataclass(frozen=True)
class Stage:
    """One stage: search (first stage) or rescore (later stages) on `field`, keep `limit`."""

    field: str
    limit: int
    exact: bool | None = None
    """True: brute force; False: the field's ANN index; None: the field's own setting. A
    rescoring stage only ever scores its candidates, so it is exact by nature."""


@dataclass(frozen=True)
class SearchPlan:
    """The stages of one retriever's search; the last stage's list is the retriever's result."""

    stages: tuple[Stage, ...]

    def __post_init__(self) -> None:
        if not self.stages:
            raise ValueError("a search plan needs at least one stage")
        for s in self.stages:
            if s.limit < 1:
                raise ValueError(f"stage on {s.field!r}: limit must be positive, got {s.limit}")

    @staticmethod
    def single(field: str, limit: int, exact: bool | None = None) -> SearchPlan:
        return SearchPlan((Stage(field, limit, exact),))

    @property
    def fields(self) -> list[str]:
        return list(dict.fromkeys(s.field for s in self.stages))

    @property
    def limit(self) -> int:
        return self.stages[-1].limit

    def with_limit(self, limit: int) -> SearchPlan:
        """The same plan returning `limit` results (earlier stages keep at least that many)."""
        stages = [replace(s, limit=max(s.limit, limit)) for s in self.stages[:-1]]
        return SearchPlan((*stages, replace(self.stages[-1], limit=limit)))

    def prefix(self, n: int) -> SearchPlan:
        """The first `n` stages: what a store runs to report an intermediate stage's list."""
        return SearchPlan(self.stages[:n])


StageLists = list[list[ScoredId]]
"""One ranked list per stage of a plan, best first; the last is the plan's result."""


def score_rows(query: Any, rows: Sequence[Any], kind: str, distance: str) -> np.ndarray:
    """Scores (higher is better) of stored rows against one query row, as the stores compute them:
    dense by `distance` (euclid/manhattan negated), multi by MaxSim of that similarity, sparse by
    dot product (without IDF)."""
    if kind == "sparse":
        q_idx, q_val = query
        weights = dict(zip(np.asarray(q_idx).tolist(), np.asarray(q_val, dtype=np.float64).tolist(), strict=True))
        return np.array(
            [sum(weights.get(i, 0.0) * v for i, v in zip(np.asarray(ix).tolist(), np.asarray(vs).tolist(), strict=True))
             for ix, vs in rows],
            dtype=np.float64,
        )
    q = np.asarray(query, dtype=np.float64)
    if kind == "dense":
        docs = np.stack([np.asarray(r, dtype=np.float64) for r in rows]) if rows else np.zeros((0, q.shape[-1]))
        return _similarity(q[None, :], docs, distance)[0]
    return np.array([_similarity(q, np.asarray(r, dtype=np.float64), distance).max(axis=1).sum() for r in rows])


def _similarity(a: np.ndarray, b: np.ndarray, distance: str) -> np.ndarray:
    """[len(a), len(b)] similarities."""
    if distance == "cosine":
        a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
        b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
        return a @ b.T
    if distance == "dot":
        return a @ b.T
    if distance == "euclid":
        return -np.sqrt(np.maximum(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1), 0.0))
    return -np.abs(a[:, None, :] - b[None, :, :]).sum(-1)


def query_row(vectors: Vectors) -> Any:
    """The one row of a batch-of-one query: dense [d], multi [n, d], sparse (indices, values)."""
    if isinstance(vectors, SparseBatch):
        return vectors.row(0)
    if isinstance(vectors, np.ndarray):
        return vectors[0]
    return vectors.matrices[0]


def order_scored(ids: Sequence[str], scores: np.ndarray, limit: int) -> list[ScoredId]:
    """Best first, ties by id, at most `limit`."""
    pairs = sorted(zip(ids, scores.tolist(), strict=True), key=lambda p: (-p[1], p[0]))
    return [ScoredId(i, float(s)) for i, s in pairs[:limit]]


def stage_field_vectors(plan: SearchPlan, vectors: Mapping[str, Vectors]) -> None:
    """Check that every field of the plan has a query vector."""
    missing = [f for f in plan.fields if f not in vectors]
    if missing:
        raise ValueError(f"no query vector for field(s) {', '.join(missing)} of the plan")
