"""Built-in fusions: weighted reciprocal rank fusion, a convex combination of normalized
scores, and distribution-based score fusion (DBSF, as Qdrant computes it).

Every method keys hits by item id (never by text), reads every knob from its `Params`, and
returns with each fused entry what each retriever added to its score (`contributions`, which
sum to the score). Ties are broken by id (`order_fused`), so results are deterministic.

A retriever's list is read in the order given (best first); when an id occurs twice in one
list, its first (best) occurrence counts and later ones are ignored.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from prismrag.contracts import (
    FusedEntry,
    Fusion,
    Params,
    QueryError,
    ScoredId,
    hookimpl,
    order_fused,
)

Lists = Mapping[str, Sequence[ScoredId]]


# ------------------------------------------------------------------------------------- weights


def _valid_weights(weights: dict[str, float]) -> dict[str, float]:
    bad = {k: w for k, w in weights.items() if not math.isfinite(w) or w < 0}
    if bad:
        raise ValueError(
            "weights must be finite and non-negative (0 switches a retriever off); got "
            + ", ".join(f"{k}: {w}" for k, w in sorted(bad.items()))
        )
    return weights


class WeightedParams(Params):
    """Params with per-retriever weights; a retriever missing from `weights` weighs 1.0."""

    weights: dict[str, float] = Field(default_factory=dict)

    @field_validator("weights")
    @classmethod
    def _check(cls, value: dict[str, float]) -> dict[str, float]:
        return _valid_weights(value)


def check_weights(params: Params, retrievers: Collection[str]) -> None:
    """Check a fusion's `weights` against the recipe's retriever names.

    Raises ValueError naming the problem: a key that names no retriever, a negative or
    non-finite weight, or every retriever weighted 0. Params without `weights` pass.
    """
    weights = getattr(params, "weights", None)
    if not weights:
        return
    names = sorted(retrievers)
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise ValueError(
            f"weights name no retriever: {', '.join(map(repr, unknown))}; "
            f"the recipe's retrievers are: {', '.join(names) or 'none'}"
        )
    _valid_weights(weights)
    if names and all(weights.get(n, 1.0) == 0 for n in names):
        raise ValueError("every retriever has weight 0, so fusion would rank nothing; give one a weight > 0")


def _weights_for(params: WeightedParams, names: Sequence[str], fusion: str) -> np.ndarray:
    """The weight of each retriever of this call.

    Query-time overrides are validated like the recipe's (`fusion_with` in prismrag.search), so
    the finiteness check is only a defence against params built without validation. The zero
    check is needed: a query may route to a subset of the retrievers, all weighted 0.
    """
    w = np.array([params.weights.get(n, 1.0) for n in names], dtype=np.float64)
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise QueryError(f"fusion {fusion!r}: weights must be finite and non-negative, got {dict(params.weights)}")
    if names and not w.any():
        raise QueryError(
            f"fusion {fusion!r}: the retrievers of this query ({', '.join(names)}) all have weight 0, "
            f"so nothing could be ranked; give one of them a weight above 0"
        )
    return w


# ------------------------------------------------------------------------------------- helpers


def _dedupe(hits: Sequence[ScoredId], retriever: str, fusion: str) -> tuple[list[str], np.ndarray]:
    """Ids (first occurrence wins) and their scores as float64; non-finite scores are refused."""
    first = dict.fromkeys(h.id for h in hits)  # the engines' lists rarely repeat an id
    if len(first) == len(hits):
        ids, scores = list(first), [h.score for h in hits]
    else:
        seen: set[str] = set()
        ids, scores = [], []
        for h in hits:
            if h.id not in seen:
                seen.add(h.id)
                ids.append(h.id)
                scores.append(h.score)
    arr = np.asarray(scores, dtype=np.float64)
    if arr.size and not np.isfinite(arr).all():
        raise QueryError(f"fusion {fusion!r}: retriever {retriever!r} returned a non-finite score")
    return ids, arr


def _weighted_lists(lists: Lists, params: WeightedParams, fusion: str) -> list[tuple[str, float, list[str], np.ndarray]]:
    """Per retriever, in order: its name, its weight, its ids (first occurrence wins) and their
    raw scores."""
    names = list(lists)
    weights = _weights_for(params, names, fusion)
    return [(name, float(w), *_dedupe(lists[name], name, fusion)) for name, w in zip(names, weights, strict=True)]


def _combine(
    parts: Mapping[str, tuple[list[str], np.ndarray]],
    absent: Mapping[str, float] | None = None,
) -> list[FusedEntry]:
    """Sum per-retriever contributions by id.

    `parts[r]` holds retriever r's ids and the amount each adds; `absent[r]` (if non-zero) is
    what r adds to an id missing from its list. The fused score is the sum of the recorded
    contributions, in retriever order, so the two agree exactly.
    """
    contributions: dict[str, dict[str, float]] = {}
    for name, (ids, values) in parts.items():  # in retriever order: each id's dict is too
        for item_id, value in zip(ids, values.tolist(), strict=True):
            contrib = contributions.get(item_id)
            if contrib is None:
                contributions[item_id] = {name: value}
            else:
                contrib[name] = value
    fill = {name: v for name, v in (absent or {}).items() if v != 0.0 and name in parts}
    if fill:
        order = list(parts)
        for item_id, contrib in contributions.items():
            if len(contrib) < len(order):
                contributions[item_id] = {n: contrib[n] if n in contrib else fill[n]
                                          for n in order if n in contrib or n in fill}
    scores = {i: sum(c.values()) for i, c in contributions.items()}
    return order_fused(scores, contributions)


# ----------------------------------------------------------------------------------------- rrf


class RRFParams(WeightedParams):
    k: int = Field(60, ge=0)
    """Rank offset: larger k flattens the difference between ranks."""


class RRF(Fusion):
    """Weighted reciprocal rank fusion: score(d) = Σ_r w_r / (k + rank_r(d)), rank 1-based.

    An id absent from a list gets nothing from it. Scores are ignored, only ranks count.
    Unweighted, this is Qdrant's RRF with its k = our k + 1 (Qdrant counts ranks from 0: its
    default k=2 is our k=1). Qdrant weights divide the rank instead, 1 / (rank / w + k_qdrant - 1),
    so weighted scores differ from Qdrant's.
    """

    name = "rrf"
    Params = RRFParams
    description = "weighted reciprocal rank fusion: sum of w / (k + rank) per retriever (k=60)"

    def fuse(self, lists: Lists) -> list[FusedEntry]:
        params: RRFParams = self.params  # type: ignore[assignment]
        return _combine({
            name: (ids, w / (params.k + np.arange(1, len(ids) + 1, dtype=np.float64)))
            for name, w, ids, _ in _weighted_lists(lists, params, self.name)
        })


# ------------------------------------------------------------------------------------ weighted


class ConvexParams(WeightedParams):
    normalization: Literal["minmax", "zscore"] = "minmax"
    missing: float | None = None
    """Normalized score of an id absent from a list. None: 0.0 for minmax; for zscore the
    list's lowest z-score (-1.0 for a list whose scores are all equal)."""


def _minmax(x: np.ndarray) -> np.ndarray:
    if x.size == 0:
        return x
    lo, hi = x.min(), x.max()
    if hi == lo:
        return np.ones_like(x)
    return (x - lo) / (hi - lo)


def _zscore(x: np.ndarray) -> np.ndarray:
    if x.size == 0:
        return x
    std = x.std()
    if std == 0:
        return np.zeros_like(x)
    return (x - x.mean()) / std


class Convex(Fusion):
    """Convex combination of normalized scores: score(d) = Σ_r ŵ_r · norm_r(d).

    ŵ_r = w_r / Σ w over the retrievers of this call (so the ŵ sum to 1). norm_r is
    - minmax: (s - min) / (max - min); a list whose scores are all equal (one hit included)
      maps every hit to 1.0;
    - zscore: (s - mean) / std with the population std (ddof 0); an all-equal list maps to 0.0.
    An id absent from list r scores `missing` there (see ConvexParams.missing). An empty list
    adds the same constant to every id, so it never changes the order.
    """

    name = "weighted"
    Params = ConvexParams
    description = "convex combination of min-max or z-score normalized scores, weights summing to 1"

    def fuse(self, lists: Lists) -> list[FusedEntry]:
        params: ConvexParams = self.params  # type: ignore[assignment]
        if not lists:
            return []
        entries = _weighted_lists(lists, params, self.name)
        total = sum(w for _, w, _, _ in entries)
        normalize = _minmax if params.normalization == "minmax" else _zscore
        parts: dict[str, tuple[list[str], np.ndarray]] = {}
        absent: dict[str, float] = {}
        for name, weight, ids, raw in entries:
            w = weight / total
            normed = normalize(raw)
            parts[name] = (ids, w * normed)
            absent[name] = float(w * self._missing(params, normed))
        return _combine(parts, absent)

    @staticmethod
    def _missing(params: ConvexParams, normed: np.ndarray) -> float:
        if params.missing is not None:
            return params.missing
        if params.normalization == "minmax" or normed.size == 0:
            return 0.0
        low = float(normed.min())
        return -1.0 if low == 0.0 and float(normed.max()) == 0.0 else low


# ---------------------------------------------------------------------------------------- dbsf


class DBSFParams(WeightedParams):
    clip: bool = False
    """Clip normalized scores to [0, 1]. Qdrant does not clip (a hit beyond mean ± 3σ, possible
    in lists of more than 10 hits, scores past 0 or 1), so the default matches Qdrant."""


def _distr_norm(x: np.ndarray) -> np.ndarray:
    """Qdrant's distribution normalization: map [mean - 3σ, mean + 3σ] onto [0, 1] with the
    sample std (ddof 1); one hit, or all-equal scores, map to 0.5."""
    if x.size < 2:
        return np.full_like(x, 0.5)
    std = x.std(ddof=1)
    if std == 0:
        return np.full_like(x, 0.5)
    lo = x.mean() - 3.0 * std
    return (x - lo) / (6.0 * std)


class DBSF(Fusion):
    """Distribution-based score fusion: score(d) = Σ_r w_r · (s_r(d) - μ_r + 3σ_r) / (6σ_r).

    μ_r and σ_r are the mean and sample standard deviation of list r's scores; an id absent
    from a list gets nothing from it; weights (default 1.0) are not normalized. This is
    Qdrant's `Fusion.DBSF` (lib/segment/src/common/score_fusion.rs), computed in float64.
    """

    name = "dbsf"
    Params = DBSFParams
    description = "distribution-based score fusion (Qdrant's): scores scaled by mean ± 3 std, summed"

    def fuse(self, lists: Lists) -> list[FusedEntry]:
        params: DBSFParams = self.params  # type: ignore[assignment]
        parts = {}
        for name, w, ids, raw in _weighted_lists(lists, params, self.name):
            normed = _distr_norm(raw)
            if params.clip:
                normed = np.clip(normed, 0.0, 1.0)
            parts[name] = (ids, w * normed)
        return _combine(parts)


@hookimpl
def register_fusions(register: Callable[[type[Fusion]], None]) -> None:
    for cls in (RRF, Convex, DBSF):
        register(cls)
