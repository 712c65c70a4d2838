"""The three built-in fusions (`rrf`, `weighted`, `dbsf`) computed with numpy on cached candidate
lists, for `prism tune`, which scores hundreds of settings on every query.

Each function follows its plugin (prismrag.plugins.fusions) operation for operation, in float64,
adding the retrievers' contributions in the same order, so the fused scores are bit-identical and
the order (score descending, ties by id) is the same; tests/test_tune.py checks this against the
plugins on random settings. Fusions installed by other plugins are run through the plugin itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

FAST_FUSIONS = frozenset({"rrf", "weighted", "dbsf"})


@dataclass
class QueryLists:
    """One query's lists over the union of their ids: `pos[r]` indexes `ids` in r's order."""

    ids: list[str]
    id_rank: np.ndarray
    """Each id's place in string order (the tie-break)."""
    pos: dict[str, np.ndarray]
    raw: dict[str, np.ndarray]


def prepare(lists: Mapping[str, Sequence[object]]) -> QueryLists:
    """Index one query's ranked lists (`ScoredId`s; an id's first occurrence in a list counts)."""
    index: dict[str, int] = {}
    pos, raw = {}, {}
    for name, found in lists.items():
        seen: set[str] = set()
        p, s = [], []
        for hit in found:
            if hit.id in seen:  # type: ignore[attr-defined]
                continue
            seen.add(hit.id)  # type: ignore[attr-defined]
            p.append(index.setdefault(hit.id, len(index)))  # type: ignore[attr-defined]
            s.append(hit.score)  # type: ignore[attr-defined]
        pos[name], raw[name] = np.asarray(p, np.int64), np.asarray(s, np.float64)
    ids = list(index)
    id_rank = np.empty(len(ids), np.int64)
    id_rank[sorted(range(len(ids)), key=ids.__getitem__)] = np.arange(len(ids))
    return QueryLists(ids, id_rank, pos, raw)


def _minmax(x: np.ndarray) -> np.ndarray:
    if x.size == 0:
        return x
    lo, hi = x.min(), x.max()
    return np.ones_like(x) if hi == lo else (x - lo) / (hi - lo)


def _zscore(x: np.ndarray) -> np.ndarray:
    if x.size == 0:
        return x
    std = x.std()
    return np.zeros_like(x) if std == 0 else (x - x.mean()) / std


def _distr(x: np.ndarray) -> np.ndarray:
    if x.size < 2:
        return np.full_like(x, 0.5)
    std = x.std(ddof=1)
    if std == 0:
        return np.full_like(x, 0.5)
    return (x - (x.mean() - 3.0 * std)) / (6.0 * std)


def fuse_order(
    q: QueryLists, fusion: str, params: Mapping[str, object], depths: Mapping[str, int], top: int
) -> list[str] | None:
    """The first `top` ids of the fused list, or None when every retriever of this query weighs 0."""
    names = list(q.pos)
    if len(names) == 1:  # as SearchPipeline.fuse: a lone list is not fused
        return [q.ids[i] for i in q.pos[names[0]][: depths[names[0]]][:top]]
    weights = params.get("weights") or {}
    w = np.array([float(weights.get(n, 1.0)) for n in names], np.float64)  # type: ignore[attr-defined]
    if names and not w.any():
        return None
    n_ids = len(q.ids)
    total = np.zeros(n_ids, np.float64)
    present = np.zeros(n_ids, bool)
    parts = []
    for name in names:
        d = depths[name]
        parts.append((q.pos[name][:d], q.raw[name][:d]))
        present[q.pos[name][:d]] = True
    if fusion == "weighted":
        share = w / sum(w.tolist())  # summed in order, as the plugin does
        normalize = _minmax if params.get("normalization", "minmax") == "minmax" else _zscore
        missing = params.get("missing")
        for (pos, raw), wr in zip(parts, share, strict=True):
            normed = normalize(raw)
            if missing is not None:
                low = float(missing)  # type: ignore[arg-type]
            elif params.get("normalization", "minmax") == "minmax" or normed.size == 0:
                low = 0.0
            else:
                low = float(normed.min())
                low = -1.0 if low == 0.0 and float(normed.max()) == 0.0 else low
            column = np.full(n_ids, float(wr * low))
            column[pos] = wr * normed
            total = total + column
    else:
        for (pos, raw), wr in zip(parts, w, strict=True):
            if fusion == "rrf":
                values = wr / (int(params.get("k", 60)) + np.arange(1, len(pos) + 1, dtype=np.float64))  # type: ignore[call-overload]
            else:
                values = _distr(raw)
                if params.get("clip"):
                    values = np.clip(values, 0.0, 1.0)
                values = wr * values
            column = np.zeros(n_ids, np.float64)
            column[pos] = values
            total = total + column
    keep = np.flatnonzero(present)
    order = keep[np.lexsort((q.id_rank[keep], -total[keep]))][:top]
    return [q.ids[i] for i in order]
