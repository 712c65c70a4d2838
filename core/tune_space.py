"""The settings `prism tune` tries: fusion method and its parameters, per-retriever weights and
per-retriever candidate depth, as a finite grid that is walked whole when it fits the budget and
sampled (seeded, without replacement) when it does not.

Why a grid and random search rather than TPE: every candidate is drawn before any query is
scored, so one pass over the cached candidate lists scores each setting on every query, and each
cross-validation fold then picks its best setting from the same table. An adaptive search (TPE,
Bayesian optimisation) would have to run once per fold, and over a few hundred settings of a
handful of knobs random search is as good (Bergstra and Bengio, 2012).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

RRF_K = (1, 5, 10, 20, 40, 60, 100)
"""RRF rank offsets tried."""
WEIGHT_LEVELS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)
"""Weight levels per retriever; weight vectors are scaled so the largest is 1 (all three
built-in fusions rank alike under a common scale), so duplicates up to scale are tried once."""
NORMALIZATIONS = ("minmax", "zscore")
"""Normalizations of the `weighted` fusion tried."""
TUNED_FUSIONS = ("rrf", "weighted", "dbsf")
"""Fusions whose parameters tune knows; other installed fusions are tuned by weights only."""


@dataclass(frozen=True)
class Setting:
    """One point of the space: a fusion by name with its parameters (weights apart), each
    retriever's weight and each retriever's candidate depth."""

    fusion: str
    params: tuple[tuple[str, Any], ...]
    weights: tuple[tuple[str, float], ...]
    depths: tuple[tuple[str, int], ...]

    def fusion_params(self) -> dict[str, Any]:
        """The fusion's parameters as a recipe writes them (`weights` included when set)."""
        out = dict(self.params)
        if self.weights:
            out["weights"] = dict(self.weights)
        return out

    def describe(self) -> str:
        """One line: `rrf k=60; weights dense=1 keywords=0.5; depth dense=100 keywords=50`."""
        params = " ".join(f"{k}={v}" for k, v in self.params)
        weights = " ".join(f"{n}={w:g}" for n, w in self.weights) or "recipe's"
        depths = " ".join(f"{n}={d}" for n, d in self.depths)
        return f"{self.fusion}{' ' + params if params else ''}; weights {weights}; depth {depths}"

    def to_json(self) -> dict[str, Any]:
        return {"fusion": self.fusion, "params": dict(self.params), "weights": dict(self.weights),
                "depths": dict(self.depths)}


def depth_choices(top_k: int, deepest: int | None = None) -> list[int]:
    """Depths tried for a retriever whose recipe keeps `top_k`: a quarter, half, all and twice,
    never under 10 nor over `deepest` (when given)."""
    picks = {max(10, top_k // 4), max(10, top_k // 2), top_k, top_k * 2}
    cap = min(deepest if deepest is not None else 10_000, 10_000)
    return sorted({min(p, cap) for p in picks})


def weight_vectors(names: Sequence[str]) -> list[tuple[float, ...]]:
    """Every vector of `WEIGHT_LEVELS` over `names` with its largest weight 1 (not all zero)."""
    out = []
    for combo in itertools.product(WEIGHT_LEVELS, repeat=len(names)):
        if max(combo) == 1.0:
            out.append(combo)
    return out


def fusion_grids(installed: Sequence[str], weighted: Mapping[str, bool]) -> dict[str, list[dict[str, Any]]]:
    """Per installed fusion, the parameter dicts (weights apart) tried."""
    grids: dict[str, list[dict[str, Any]]] = {}
    for name in installed:
        if name == "rrf":
            grids[name] = [{"k": k} for k in RRF_K]
        elif name == "weighted":
            grids[name] = [{"normalization": n} for n in NORMALIZATIONS]
        elif name == "dbsf" or weighted.get(name, False):
            grids[name] = [{}]
    return grids


def build_space(
    base: Setting,
    fusions: Mapping[str, list[dict[str, Any]]],
    base_params: Mapping[str, Mapping[str, Any]],
    depths: Mapping[str, Sequence[int]],
    tune_weights: Mapping[str, bool],
) -> list[Setting]:
    """Every setting of the grid, the recipe's own (`base`) first and not repeated. A fusion's
    parameters start from the recipe's (when it is the recipe's fusion) and the grid overrides
    them; a fusion that takes no weights is tried without."""
    names = [n for n, _ in base.depths]
    vectors = weight_vectors(names)
    out = [base]
    seen = {base}
    for fusion, grid in fusions.items():
        for params, ws, ds in itertools.product(grid, vectors if tune_weights.get(fusion) else [None],
                                                itertools.product(*(depths[n] for n in names))):
            merged = {**base_params.get(fusion, {}), **params}
            merged.pop("weights", None)
            setting = Setting(
                fusion,
                tuple(sorted(merged.items())),
                tuple(zip(names, ws, strict=True)) if ws is not None else (),
                tuple(zip(names, ds, strict=True)),
            )
            if setting not in seen:
                seen.add(setting)
                out.append(setting)
    return out


def pick(space: Sequence[Setting], budget: int, seed: int) -> tuple[list[Setting], str]:
    """The settings to try: all of them when they fit `budget`, else the recipe's own plus a
    seeded random sample of the rest. Returns them and the method's name."""
    if len(space) <= budget:
        return list(space), "grid"
    rng = np.random.default_rng(seed)
    chosen = rng.choice(np.arange(1, len(space)), size=max(budget - 1, 0), replace=False)
    return [space[0]] + [space[i] for i in sorted(chosen.tolist())], "random"
