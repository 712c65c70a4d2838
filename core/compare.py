"""Compare two evaluated recipes on the same queries: deltas, paired significance, wins and losses.

The test is Fisher's paired randomization test (as used for IR evaluation, Smucker et al. 2007):
under the null hypothesis the sign of each query's difference is arbitrary, so the p-value is
the share of random sign flips whose mean difference is at least as large in magnitude as the
observed one. The 95% confidence interval beside it inverts the same test (the mean shifts it does
not reject), so a difference is starred exactly when its interval excludes zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .evaluation import EvalReport
from .metrics import METRICS


@dataclass(frozen=True)
class MetricDelta:
    """One metric of B against A over the shared queries."""

    metric: str
    a: float
    b: float
    delta: float
    p_value: float
    ci_low: float
    ci_high: float
    wins: int
    losses: int
    ties: int

    @property
    def significant(self) -> bool:
        return self.p_value < 0.05

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in self.__dict__.items()} | {
            "significant": self.significant
        }


@dataclass(frozen=True)
class QueryDelta:
    query_id: str
    query: str
    a: float
    b: float

    @property
    def delta(self) -> float:
        return self.b - self.a


@dataclass
class Comparison:
    """B (`b_name`) against A (`a_name`) on the queries both ran."""

    a_name: str
    b_name: str
    queries: int
    deltas: dict[str, MetricDelta]
    by_metric: str
    wins: list[QueryDelta] = field(default_factory=list)
    losses: list[QueryDelta] = field(default_factory=list)
    reports: tuple[EvalReport, EvalReport] | None = None
    permutations: int = 10_000
    """Sign flips the randomization test drew for each metric's p-value."""

    def to_json(self) -> dict[str, Any]:
        def q(d: QueryDelta) -> dict[str, Any]:
            return {"query_id": d.query_id, "query": d.query, "a": round(d.a, 6), "b": round(d.b, 6),
                    "delta": round(d.delta, 6)}

        out: dict[str, Any] = {
            "a": self.a_name,
            "b": self.b_name,
            "queries": self.queries,
            "test": "paired randomization (sign flip), two-sided",
            "permutations": self.permutations,
            "metrics": {m: d.to_dict() for m, d in self.deltas.items()},
            "by": self.by_metric,
            "wins": [q(d) for d in self.wins],
            "losses": [q(d) for d in self.losses],
        }
        if self.reports:
            out["latency_ms"] = {"a": self.reports[0].latency_ms, "b": self.reports[1].latency_ms}
            out["ann_recall@10"] = {"a": self.reports[0].ann_recall, "b": self.reports[1].ann_recall}
        return out


class SignFlips:
    """Fisher's paired sign-flip randomization test on per-query differences, and the confidence
    interval that inverts the same test, so the interval excludes 0 exactly when p < 1 - level.

    The flips are drawn once: for a shift `delta`, each flip's mean of (d - delta) is
    `(S @ d - delta * S @ 1) / n`, so testing many shifts costs O(permutations) each.
    """

    def __init__(self, diffs: np.ndarray, permutations: int = 10_000, seed: int = 0) -> None:
        if permutations < 1:
            raise ValueError(f"permutations must be at least 1, got {permutations}")
        self.diffs = np.asarray(diffs, np.float64)
        self.permutations = permutations
        n = len(self.diffs)
        self._flipped = np.empty(permutations)  # S @ d / n
        self._signsum = np.empty(permutations)  # S @ 1 / n
        rng = np.random.default_rng(seed)
        for start in range(0, permutations, 2000):  # chunks keep memory at 2000 x n
            k = min(2000, permutations - start)
            signs = (rng.integers(0, 2, size=(k, n), dtype=np.int8) * 2 - 1).astype(np.float64)
            self._flipped[start : start + k] = signs @ self.diffs / max(n, 1)
            self._signsum[start : start + k] = signs.sum(1) / max(n, 1)

    def p_value(self, delta: float = 0.0) -> float:
        """Two-sided p-value of the null hypothesis "the mean difference is `delta`"."""
        if len(self.diffs) == 0 or (delta == 0.0 and np.allclose(self.diffs, 0.0)):
            return 1.0
        observed = abs(self.diffs.mean() - delta)
        means = np.abs(self._flipped - delta * self._signsum)
        hits = int((means >= observed - 1e-12).sum())
        return (hits + 1) / (self.permutations + 1)

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """The shifts the test does not reject at 1 - `level`, found by bisection on each side.

        p(delta) never rises as delta moves away from the observed mean (each flip's statistic
        |a - delta * b| changes at rate |b| <= 1, the observed |mean - delta| at rate 1), so
        bisection finds the exact edges and 0 lies outside exactly when p(0) < 1 - level.
        """
        d = self.diffs
        if len(d) == 0 or np.allclose(d, 0.0):
            return 0.0, 0.0
        alpha, mean = 1 - level, float(d.mean())
        reach = float(np.abs(d).max()) * 2 + 1e-9  # no mean of flipped differences lies beyond this

        def edge(direction: float) -> float:
            inside, outside = mean, mean + direction * reach
            for _ in range(50):
                mid = (inside + outside) / 2
                if self.p_value(mid) >= alpha:
                    inside = mid
                else:
                    outside = mid
            return inside

        return edge(-1.0), edge(1.0)


def randomization_test(diffs: np.ndarray, permutations: int = 10_000, seed: int = 0) -> float:
    """Two-sided p-value of a paired sign-flip randomization test on per-query differences."""
    return SignFlips(diffs, permutations, seed).p_value()


def compare_reports(
    a: EvalReport,
    b: EvalReport,
    *,
    metrics: Sequence[str] = METRICS,
    by: str = "nDCG@10",
    show: int = 5,
    permutations: int = 10_000,
    seed: int = 0,
) -> Comparison:
    """Compare two reports on the queries they share (normally all of them)."""
    if by not in metrics:
        raise ValueError(f"--metric {by!r} is not one of {', '.join(metrics)}")
    pa, pb = a.per_query, b.per_query
    shared = [q for q in pa if q in pb]
    texts = {q.id: q.text for q in a.queries}
    deltas = {}
    for m in metrics:
        va = np.array([pa[q][m] for q in shared], np.float64)
        vb = np.array([pb[q][m] for q in shared], np.float64)
        diff = vb - va
        test = SignFlips(diff, permutations, seed)
        lo, hi = test.interval()
        deltas[m] = MetricDelta(
            m, float(va.mean()) if len(va) else 0.0, float(vb.mean()) if len(vb) else 0.0,
            float(diff.mean()) if len(diff) else 0.0, test.p_value(), lo, hi,
            int((diff > 1e-12).sum()), int((diff < -1e-12).sum()), int((np.abs(diff) <= 1e-12).sum()),
        )
    rows = [QueryDelta(q, texts.get(q, q), pa[q][by], pb[q][by]) for q in shared]
    ordered = sorted(rows, key=lambda d: (d.delta, d.query_id))
    losses = [d for d in ordered[:show] if d.delta < 0]
    wins = [d for d in reversed(ordered[-show:]) if d.delta > 0] if show else []
    return Comparison(a.recipe, b.recipe, len(shared), deltas, by, wins, losses, (a, b), permutations)


def format_comparison(c: Comparison) -> str:
    """A plain-text table of the deltas and the queries that moved most."""
    a, b = c.a_name, c.b_name
    if a == b:
        a, b = "A", "B"
    lines = [
        f"B = {c.b_name} vs A = {c.a_name} on {c.queries} queries "
        f"(paired randomization test, {c.permutations:,} sign flips; "
        f"* p < 0.05, when the 95% interval of the same test excludes 0)",
        f"  {'metric':<11} {'A':>8} {'B':>8} {'B-A':>9} {'95% CI':>19} {'p':>8}  {'B wins/losses/ties':>18}",
    ]
    for m, d in c.deltas.items():
        star = "*" if d.significant else " "
        lines.append(
            f"  {m:<11} {d.a:8.4f} {d.b:8.4f} {d.delta:+9.4f} [{d.ci_low:+8.4f},{d.ci_high:+8.4f}] "
            f"{d.p_value:8.4f}{star} {d.wins:>6}/{d.losses}/{d.ties}"
        )
    if c.reports:
        ra, rb = c.reports
        ta, tb = ra.latency_ms.get("total"), rb.latency_ms.get("total")
        if ta and tb:
            lines.append(f"  latency p50 (ms): A {ta['p50']:.2f}, B {tb['p50']:.2f}; p95: A {ta['p95']:.2f}, B {tb['p95']:.2f}")
    for title, rows in ((f"B won most ({c.by_metric})", c.wins), (f"B lost most ({c.by_metric})", c.losses)):
        lines.append(f"  {title}:")
        if not rows:
            lines.append("    none")
        for d in rows:
            text = d.query if len(d.query) <= 60 else d.query[:59] + "…"
            lines.append(f"    {d.delta:+.4f}  ({d.a:.4f} -> {d.b:.4f})  {d.query_id}  {text}")
    return "\n".join(lines)
