"""The ranking contracts: fusions merge retrievers' lists, rerankers rescore the head of one."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from ..errors import QueryError
from ..types import Query, Row, ScoredId, Vectors
from .base import Component, Params


@dataclass(frozen=True)
class FusedEntry:
    id: str
    score: float
    contributions: Mapping[str, float]


class Fusion(Component):
    """Merges the ranked lists of several retrievers (keyed by item id) into one."""

    kind = "fusion"

    @abstractmethod
    def fuse(self, lists: Mapping[str, Sequence[ScoredId]]) -> list[FusedEntry]:
        """Best first. `contributions` says what each retriever added to the fused score."""


def order_fused(scores: Mapping[str, float], contributions: Mapping[str, dict[str, float]]) -> list[FusedEntry]:
    """Sort by fused score, ties broken by id so results are deterministic."""
    ordered = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    return [FusedEntry(i, float(s), contributions[i]) for i, s in ordered]


@dataclass(frozen=True)
class Candidate:
    """One candidate handed to a reranker: its id, its score so far and its stored payload."""

    id: str
    score: float
    payload: Mapping[str, Any] = field(default_factory=dict)


class RerankContext(ABC):
    """What a reranker may ask of the engine: stored vectors and query vectors per retriever."""

    @abstractmethod
    def rows(self, retriever: str, ids: Sequence[str]) -> list[Row]:
        """Each id's stored vector of the retriever's main field, in the order of `ids`: dense
        float32 [d], multi float32 [n_i, d] (ragged), or sparse (indices, values)."""

    @abstractmethod
    def query_vectors(self, retriever: str) -> Vectors:
        """The query encoded by the retriever's encoder, as a batch of one."""

    def vectors(self, retriever: str, ids: Sequence[str]) -> np.ndarray:
        """Dense rows stacked as float32 [len(ids), d]."""
        rows = self.rows(retriever, ids)
        if rows and not all(isinstance(r, np.ndarray) and r.ndim == 1 for r in rows):
            raise QueryError(f"retriever {retriever!r} does not store one dense vector per item; use rows()")
        return np.stack(rows).astype(np.float32, copy=False) if rows else np.zeros((0, 0), np.float32)

    def query_vector(self, retriever: str) -> np.ndarray:
        """The dense query vector [d] (or the [n, d] matrix of a multi-vector retriever)."""
        vec = self.query_vectors(retriever)
        if not isinstance(vec, np.ndarray):
            matrices = getattr(vec, "matrices", None)
            if matrices is None:
                raise QueryError(f"retriever {retriever!r} is sparse; this reranker needs dense vectors")
            return np.asarray(matrices[0], dtype=np.float32)
        return np.asarray(vec)[0]


class RerankParams(Params):
    top_n: int = Field(50, ge=1)
    """How many of the best candidates this stage rescores; the rest keep their order below."""


class Reranker(Component):
    """Rescores the head of a candidate list: the engine hands it the `top_n` best."""

    kind = "reranker"
    Params: ClassVar[type[Params]] = RerankParams

    @property
    def top_n(self) -> int:
        """How many candidates this stage rescores (the `top_n` param)."""
        return int(getattr(self.params, "top_n", 50))

    @classmethod
    def declaration_problems(cls) -> list[str]:
        problems = super().declaration_problems()
        if isinstance(cls.Params, type) and "top_n" not in cls.Params.model_fields:
            problems.append("its `Params` has no `top_n`; subclass prismrag.contracts.RerankParams")
        return problems

    @abstractmethod
    def rerank(self, query: Query, candidates: Sequence[Candidate], ctx: RerankContext) -> list[ScoredId]:
        """The candidates in their new order with this stage's scores (all of them, none added)."""
