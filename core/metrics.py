"""Ranking metrics (trec_eval definitions) and latency percentiles, computed with numpy.

Conventions follow trec_eval / pytrec_eval so numbers compare with published BEIR results:
a document is relevant when its grade is >= 1; nDCG uses the grade as gain and log2(rank + 1)
as discount, with the ideal ranking built from every judged document; P@k divides by k even when
fewer documents were returned; MAP@k divides by the number of relevant documents; MRR@k is the
reciprocal rank of the first relevant document within the top k (0 when there is none).
A run is the ranked list of document ids per query, best first.

Time-coded results (segments of a video or recording, each with a parent file and a span) are
also scored per file (`collapse`) and by whether the top hit's span overlaps the query's time slot
(`score_spans`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

METRICS = ("nDCG@10", "Recall@10", "Recall@100", "MRR@10", "MAP@100", "P@10")
"""The metric names, in report order; they are the keys of every metric mapping."""

Run = Mapping[str, Sequence[str]]
Qrels = Mapping[str, Mapping[str, int]]


def _cut(name: str) -> int:
    return int(name.split("@", 1)[1])


def gain_matrix(run: Run, qrels: Qrels, qids: Sequence[str], depth: int) -> np.ndarray:
    """Grades of the returned documents, [n_queries, depth] (0 for unjudged or padding)."""
    gains = np.zeros((len(qids), depth), np.float64)
    for row, qid in enumerate(qids):
        judged = qrels.get(qid, {})
        ranked = list(dict.fromkeys(run.get(qid, ())))[:depth]  # a document counts once
        if ranked:
            gains[row, : len(ranked)] = [judged.get(d, 0) for d in ranked]
    return np.maximum(gains, 0.0)


def ideal_matrix(qrels: Qrels, qids: Sequence[str], depth: int) -> np.ndarray:
    """Grades of each query's judged documents sorted best first, [n_queries, depth]."""
    ideal = np.zeros((len(qids), depth), np.float64)
    for row, qid in enumerate(qids):
        grades = sorted((g for g in qrels.get(qid, {}).values() if g > 0), reverse=True)[:depth]
        ideal[row, : len(grades)] = grades
    return ideal


def score_run(
    run: Run, qrels: Qrels, metrics: Iterable[str] = METRICS, qids: Sequence[str] | None = None
) -> dict[str, dict[str, float]]:
    """Per-query metric values: `{query id: {metric: value}}` for `qids` (default: judged queries)."""
    names = list(metrics)
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; known: {', '.join(METRICS)}")
    qids = list(qrels) if qids is None else list(qids)
    values = score_matrix(run, qrels, names, qids)
    return {qid: {m: float(values[m][i]) for m in names} for i, qid in enumerate(qids)}


def score_matrix(run: Run, qrels: Qrels, metrics: Sequence[str], qids: Sequence[str]) -> dict[str, np.ndarray]:
    """Each metric as a vector over `qids`."""
    depth = max(_cut(m) for m in metrics)
    gains = gain_matrix(run, qrels, qids, depth)
    rel = gains >= 1.0
    n_rel = np.array([sum(1 for g in qrels.get(q, {}).values() if g > 0) for q in qids], np.float64)
    safe_n_rel = np.maximum(n_rel, 1.0)
    ranks = np.arange(1, depth + 1, dtype=np.float64)
    discount = 1.0 / np.log2(ranks + 1.0)
    out: dict[str, np.ndarray] = {}
    for name in metrics:
        k = _cut(name)
        kind = name.split("@", 1)[0]
        g, r = gains[:, :k], rel[:, :k]
        if kind == "nDCG":
            ideal = ideal_matrix(qrels, qids, k)
            idcg = ideal @ discount[:k]
            out[name] = np.divide(g @ discount[:k], idcg, out=np.zeros(len(qids)), where=idcg > 0)
        elif kind == "Recall":
            out[name] = r.sum(1) / safe_n_rel
        elif kind == "P":
            out[name] = r.sum(1) / k
        elif kind == "MRR":
            first = np.where(r.any(1), r.argmax(1) + 1, 0)
            out[name] = np.divide(1.0, first, out=np.zeros(len(qids)), where=first > 0)
        elif kind == "MAP":
            precision = np.cumsum(r, axis=1) / ranks[:k]
            out[name] = (precision * r).sum(1) / safe_n_rel
        out[name] = np.where(n_rel > 0, out[name], 0.0)
    return out


def mean_metrics(per_query: Mapping[str, Mapping[str, float]], metrics: Iterable[str] = METRICS) -> dict[str, float]:
    """The mean of each metric over the queries (0.0 for an empty set)."""
    names = list(metrics)
    if not per_query:
        return dict.fromkeys(names, 0.0)
    table = np.array([[v[m] for m in names] for v in per_query.values()], np.float64)
    return dict(zip(names, table.mean(0).tolist(), strict=True))


def overlap_at_k(approx: Sequence[str], exact: Sequence[str], k: int = 10) -> float:
    """Recall@k of an approximate ranking against the exact one (1.0 when exact is empty)."""
    truth = set(exact[:k])
    if not truth:
        return 1.0
    return len(truth.intersection(approx[:k])) / len(truth)


def latency_percentiles(
    timings: Sequence[Mapping[str, float]], quantiles: Sequence[int] = (50, 95, 99)
) -> dict[str, dict[str, float]]:
    """Per stage, milliseconds at each percentile plus the mean and the number of samples."""
    stages: dict[str, list[float]] = {}
    for t in timings:
        for stage, seconds in t.items():
            stages.setdefault(stage, []).append(seconds)
    out = {}
    for stage, values in stages.items():
        ms = np.asarray(values, np.float64) * 1000.0
        row = {f"p{q}": float(v) for q, v in zip(quantiles, np.percentile(ms, quantiles), strict=True)}
        row["mean"] = float(ms.mean())
        row["n"] = float(len(ms))
        out[stage] = row
    return out


# --------------------------------------------------------------------- time-coded (segment) hits

SPAN_METRICS = ("video_nDCG@10", "timecode_acc@1")
"""Reported when a data set declares time slots: nDCG@10 of the run collapsed to the files its
segments come from (a file's best-ranked segment stands for it), and the share of queries whose
top hit lies in a right file and overlaps the query's slot there."""


@dataclass(frozen=True)
class TimeSlot:
    """Where in which file (a video, a recording) the answer to a query is, in seconds."""

    doc: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class SegmentHit:
    """A ranked item as the time-coded metrics see it: its id, the file it is part of (its parent,
    or itself for a whole file) and its time span when it has one."""

    id: str
    parent: str
    t_start: float | None = None
    t_end: float | None = None

    @classmethod
    def of(cls, item_id: str, parent_id: str | None, span: Mapping[str, object] | None) -> SegmentHit:
        """From an item's id, parent id and span payload (`{"t_start", "t_end"}`)."""
        span = span or {}
        t0, t1 = span.get("t_start"), span.get("t_end")
        timed = isinstance(t0, int | float) and isinstance(t1, int | float)
        return cls(item_id, parent_id or item_id, float(t0) if timed else None, float(t1) if timed else None)  # type: ignore[arg-type]


def overlaps(hit: SegmentHit, slot: TimeSlot) -> bool:
    """Whether the hit lies in the slot's file and its span shares some time with the slot (touching
    ends do not count). A hit without a span gives no time code, so it never matches."""
    if hit.parent != slot.doc or hit.t_start is None or hit.t_end is None:
        return False
    return min(hit.t_end, slot.end_s) > max(hit.t_start, slot.start_s)


def collapse(hits: Sequence[SegmentHit]) -> list[str]:
    """The files of a ranking, each once, at the rank of its best segment."""
    return list(dict.fromkeys(h.parent for h in hits))


def slot_qrels(items: Iterable[SegmentHit], slots: Mapping[str, Sequence[TimeSlot]]) -> dict[str, dict[str, int]]:
    """Segment-level judgments: per query, the indexed segments that overlap one of its slots."""
    by_parent: dict[str, list[SegmentHit]] = {}
    for item in items:
        by_parent.setdefault(item.parent, []).append(item)
    return {
        qid: {h.id: 1 for s in qslots for h in by_parent.get(s.doc, ()) if overlaps(h, s)}
        for qid, qslots in slots.items()
    }


def score_spans(
    runs: Mapping[str, Sequence[SegmentHit]], qrels: Qrels, slots: Mapping[str, Sequence[TimeSlot]],
    qids: Sequence[str],
) -> dict[str, dict[str, float]]:
    """Per query, `SPAN_METRICS`: file-level nDCG@10 against `qrels` (which name files) and
    time-code accuracy@1 against `slots` (0 for a query without a slot or without results)."""
    video = score_run({q: collapse(runs.get(q, ())) for q in qids}, qrels, ["nDCG@10"], qids)
    out = {}
    for qid in qids:
        top = runs.get(qid, ())[:1]
        hit = bool(top) and any(overlaps(top[0], s) for s in slots.get(qid, ()))
        out[qid] = {"video_nDCG@10": video[qid]["nDCG@10"], "timecode_acc@1": float(hit)}
    return out
