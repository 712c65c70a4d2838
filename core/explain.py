"""Why a hit ranked where it did, as data: one model that the CLI prints as text and the TUI
renders with styles, so the two never disagree."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .types import Hit, StageTrace, time_code


@dataclass(frozen=True)
class RetrieverLine:
    """One routed retriever: where the hit stood in its list (None: not in its top `top_k`)."""

    name: str
    rank: int | None
    score: float | None
    top_k: int | None
    share: float | None
    """What this retriever added to the fused score (None without fusion)."""
    share_percent: float | None
    stages: tuple[StageTrace, ...] = ()
    best_part: str | None = None
    """Which part of the hit matched best (`at 00:04.1` for a keyframe time), when the encoder names parts."""


@dataclass(frozen=True)
class RerankLine:
    stage: str
    score: float
    rank_before: int
    rank_after: int
    moved: int
    """Places gained (positive) or lost (negative)."""


@dataclass(frozen=True)
class Explanation:
    retrievers: tuple[RetrieverLine, ...]
    fusion: str | None
    fused_score: float | None
    rerank: tuple[RerankLine, ...]


def explain(hit: Hit, routed: Sequence[str], top_ks: Mapping[str, int]) -> Explanation:
    """The explanation of `hit` for a query routed to the retrievers `routed`."""
    prov = hit.provenance
    total = sum(prov.contributions.values()) or 0.0
    lines = []
    for name in routed:
        trace = prov.retrievers.get(name)
        share = prov.contributions.get(name) if prov.fusion and trace is not None else None
        pct = 100 * share / total if share is not None and total > 0 else None
        lines.append(RetrieverLine(
            name, trace.rank if trace else None, trace.score if trace else None, top_ks.get(name), share, pct,
            trace.stages if trace else (), _part(trace.best_part, trace.part_label) if trace else None,
        ))
    rerank = tuple(
        RerankLine(r.stage.split(":", 1)[-1], r.score, r.rank_before, r.rank_after, r.rank_before - r.rank_after)
        for r in prov.rerank
    )
    return Explanation(tuple(lines), prov.fusion, prov.fused_score, rerank)


def _part(index: int | None, label: object) -> str | None:
    if index is None:
        return None
    if isinstance(label, (int, float)) and not isinstance(label, bool):  # a time in the recording
        return f"at {time_code(float(label))}"
    return f"part {index}" + (f" ({label})" if label is not None else "")


def explanation_lines(e: Explanation) -> list[str]:
    """The explanation as plain text lines (the CLI's `--explain`)."""
    out = []
    for r in e.retrievers:
        if r.rank is None:
            out.append(f"{r.name}: not in its top {r.top_k if r.top_k is not None else '?'}")
            continue
        extra = f", adds {r.share:.4f} to {e.fusion}" if e.fusion and r.share is not None else ""
        best = f", best match {r.best_part}" if r.best_part else ""
        out.append(f"{r.name}: rank {r.rank}, score {r.score:.4f}{extra}{best}")
        for s in r.stages:
            out.append(f"  stage {s.field}: rank {s.rank} of {s.limit}, score {s.score:.4f}")
    for r in e.rerank:
        out.append(f"{r.stage}: score {r.score:.4f}, rank {r.rank_before} -> {r.rank_after}")
    return out
