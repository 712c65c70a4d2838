"""What a retriever's search plan loses: each stage's recall against exact search on the same index.

A plan that is not exact (a shortlist, quantized candidates, a fixed-dimensional first stage)
trades recall for speed and memory. For every such retriever (and every retriever with a
`min_recall`), each query runs twice on the same stored vectors: with the retriever's plan as it
searches (its `top_k`), and by brute force on its main, uncompressed field. A stage's recall@k is
the share of the exact top k that it keeps: among its candidates for an earlier stage (what it
hands on), among its first k results for the last stage (what the retriever returns). Items whose
exact score ties the k-th count as part of the exact top k.

`gate_failures` lists the retrievers whose `min_recall` a stage does not meet (recall@10).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .contracts import SearchPlan
from .types import Query, ScoredId

if TYPE_CHECKING:
    from .engine import Engine
    from .recipe import Retriever

KS = (10, 100)
GATE_K = 10
TIE = 1e-6


@dataclass
class StageRecall:
    """One stage of one retriever's plan: its field, candidate count and mean recall@k."""

    stage: int
    """1-based position in the plan."""
    field: str
    limit: int
    recall: dict[int, float | None] = field(default_factory=dict)
    """k -> mean recall@k over the queries (None where the plan returns fewer than k results)."""

    def label(self, stages: int) -> str:
        return f"stage {self.stage} of {stages} on {self.field!r} ({self.limit} candidates)"


@dataclass
class PlanRecall:
    retriever: str
    stages: list[StageRecall]
    queries: int
    min_recall: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "retriever": self.retriever,
            "queries": self.queries,
            "min_recall": self.min_recall,
            "stages": [
                {"stage": s.stage, "field": s.field, "limit": s.limit,
                 **{f"recall@{k}": None if v is None else round(v, 6) for k, v in s.recall.items()}}
                for s in self.stages
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlanRecall:
        stages = [
            StageRecall(s["stage"], s["field"], s["limit"],
                        {int(k.split("@")[1]): v for k, v in s.items() if k.startswith("recall@")})
            for s in data["stages"]
        ]
        return cls(data["retriever"], stages, data["queries"], data.get("min_recall"))


def measured(engine: Engine) -> list[Retriever]:
    """The retrievers whose plan is not exact search (several stages, or quantized vectors),
    and those with a `min_recall`."""
    out = []
    for r in engine.recipe.retrievers.values():
        fields = engine.collection.fields_of(r.name)
        plan = r.index.plan(fields, r.top_k)
        compressed = any(getattr(f, "quantization", "none") != "none" for f in fields)
        if len(plan.stages) > 1 or compressed or r.min_recall is not None:
            out.append(r)
    return out


def _recall(found: Sequence[str], exact: list[ScoredId], k: int) -> float | None:
    if not exact:
        return None
    k_eff = min(k, len(exact))
    cut = exact[k_eff - 1].score - TIE
    wanted = {s.id for s in exact if s.score >= cut}
    return min(k_eff, len(wanted.intersection(found))) / k_eff


def stage_recalls(plan: SearchPlan, lists: list[list[ScoredId]], exact: list[ScoredId], ks: Sequence[int]) -> list[dict[int, float | None]]:
    """Per stage, recall@k of its candidates (the last stage: of its first k) against `exact`."""
    out = []
    for n, (stage, found) in enumerate(zip(plan.stages, lists, strict=True)):
        last = n == len(plan.stages) - 1
        row: dict[int, float | None] = {}
        for k in ks:
            if last and stage.limit < k:
                row[k] = None
                continue
            ids = [s.id for s in (found[:k] if last else found)]
            row[k] = _recall(ids, exact, k)
        out.append(row)
    return out


def measure(engine: Engine, queries: Sequence[Query], ks: Sequence[int] = KS) -> list[PlanRecall]:
    """Run every query routed to a measured retriever with its plan and exactly; mean recalls.
    The caller holds the engine's index still (no writes meanwhile)."""
    engine.open()
    store = engine.collection.store
    out = []
    for r in measured(engine):
        fields = engine.collection.fields_of(r.name)
        plan = r.index.plan(fields, r.top_k)
        main = fields[0].name
        exact_plan = SearchPlan.single(main, 2 * max(ks), exact=True)
        sums: list[dict[int, list[float]]] = [{k: [] for k in ks} for _ in plan.stages]
        n = 0
        for q in queries:
            if not r.encoder.accepts(q.modality, "query"):
                continue
            by_field = engine.collection.field_vectors(r, r.encoder.encode_query(q), role="query")
            lists = store.search_plan(plan, {f: by_field[f] for f in plan.fields})
            exact = store.search_plan(exact_plan, {main: by_field[main]}, exact=True)[-1]
            for acc, row in zip(sums, stage_recalls(plan, lists, exact, ks), strict=True):
                for k, v in row.items():
                    if v is not None:
                        acc[k].append(v)
            n += 1
        stages = [
            StageRecall(i + 1, s.field, s.limit, {k: sum(v) / len(v) if v else None for k, v in acc.items()})
            for i, (s, acc) in enumerate(zip(plan.stages, sums, strict=True))
        ]
        out.append(PlanRecall(r.name, stages, n, r.min_recall))
    return out


def gate_failures(recalls: Sequence[PlanRecall]) -> list[str]:
    """One message per retriever whose plan misses its `min_recall`, naming the first stage below it."""
    problems = []
    for p in recalls:
        if p.min_recall is None:
            continue
        if p.queries == 0:
            problems.append(f"retriever {p.retriever!r} has min_recall {p.min_recall} but no query was routed to it")
            continue
        for s in p.stages:
            value = s.recall.get(GATE_K)
            if value is not None and value < p.min_recall:
                problems.append(
                    f"retriever {p.retriever!r}: {s.label(len(p.stages))} keeps recall@{GATE_K} "
                    f"{value:.4f} of exact search on the same index, below its min_recall {p.min_recall}"
                )
                break
    return problems


def format_lines(recalls: Sequence[PlanRecall], ks: Sequence[int] = KS) -> list[str]:
    """Plain-text lines for `prism eval`."""
    lines = []
    for p in recalls:
        gate = f", min_recall {p.min_recall}" if p.min_recall is not None else ""
        lines.append(f"  plan recall vs exact search, retriever {p.retriever} ({p.queries} queries{gate}):")
        for s in p.stages:
            values = "  ".join(f"recall@{k} {'-' if s.recall.get(k) is None else f'{s.recall[k]:.4f}'}" for k in ks)
            lines.append(f"    stage {s.stage} {s.field} ({s.limit} candidates): {values}")
    return lines
