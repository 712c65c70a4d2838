"""Evaluate a recipe on a data set: index its corpus afresh, run every query, score the run.

    >>> from prismrag.datasets import load_dataset
    >>> from prismrag.evaluation import evaluate
    >>> report = evaluate("recipes/beir-hybrid.yaml", load_dataset("../shared/data/nfcorpus"))
    >>> report.metrics["nDCG@10"]

The recipe's retrievers, fusion and rerankers are used; its sources are not (the data set is the
corpus) and its store keeps its kind but moves to a temporary (or given) folder. Each query runs
twice: as the recipe searches (approximate where its indexes are) and exactly (brute force), so
the report also says how much the approximate search loses (ANN recall@10).

A media set (a `corpus/` folder of videos or recordings) is read through the recipe's own loader
for its files, pointed at that folder, so what is scored is the recipe's segmentation. When the
set declares time slots, the usual metrics judge segments (a segment is relevant when it lies in
a relevant file and overlaps the query's slot there), and the report adds video-level nDCG@10 and
time-code accuracy@1 (`metrics.SPAN_METRICS`).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from .datasets import Dataset, DatasetError
from .errors import ItemError, QueryError
from .metrics import (
    METRICS,
    SPAN_METRICS,
    SegmentHit,
    collapse,
    latency_percentiles,
    mean_metrics,
    overlap_at_k,
    score_run,
    score_spans,
    slot_qrels,
)
from .plan_recall import PlanRecall, format_lines, measure

if TYPE_CHECKING:
    from .contracts import Loader
    from .engine import Engine
    from .registry import Registry
    from .types import Item

ProgressFn = Callable[[str, int, int | None], None]


def _quiet(stage: str, done: int, total: int | None) -> None:
    pass


@dataclass
class QueryResult:
    """One query's ranking, metrics, timings and ANN agreement."""

    id: str
    text: str
    ranking: list[tuple[str, float]]
    metrics: dict[str, float]
    timings: dict[str, float]
    ann_recall: float | None = None
    relevant: int = 0
    top_span: dict[str, Any] | None = None
    """For a time-coded data set: the top hit's file and span (`file`, `t_start`, `t_end`)."""

    def to_dict(self, top: int = 10) -> dict[str, Any]:
        return {
            "query_id": self.id,
            "query": self.text,
            "relevant": self.relevant,
            **{k: round(v, 6) for k, v in self.metrics.items()},
            "ann_recall@10": self.ann_recall,
            "latency_ms": {k: round(v * 1000, 3) for k, v in self.timings.items()},
            "top": [d for d, _ in self.ranking[:top]],
            **({"top_span": self.top_span} if self.top_span is not None else {}),
        }


@dataclass
class EvalReport:
    """What `evaluate` measured. `metrics` maps each name of `METRICS` (and, for a data set with
    time slots, of `SPAN_METRICS`) to its mean."""

    recipe: str
    dataset: dict[str, Any]
    metrics: dict[str, float]
    queries: list[QueryResult]
    latency_ms: dict[str, dict[str, float]]
    ann_recall: float | None
    ingest: dict[str, Any] = field(default_factory=dict)
    depth: int = 100
    plan_recall: list[PlanRecall] = field(default_factory=list)
    """Per retriever whose plan is not exact search: each stage's recall against exact search."""

    @property
    def per_query(self) -> dict[str, dict[str, float]]:
        return {q.id: q.metrics for q in self.queries}

    def run(self) -> dict[str, list[str]]:
        return {q.id: [d for d, _ in q.ranking] for q in self.queries}

    def to_json(self) -> dict[str, Any]:
        """One object: the metric names as keys, then latency, ANN fidelity, ingest and data set."""
        return {
            **{m: round(self.metrics[m], 6) for m in METRICS},
            **{m: round(self.metrics[m], 6) for m in SPAN_METRICS if m in self.metrics},
            "ann_recall@10": None if self.ann_recall is None else round(self.ann_recall, 6),
            "latency_ms": {s: {k: round(v, 3) for k, v in row.items()} for s, row in self.latency_ms.items()},
            "queries": len(self.queries),
            "recipe": self.recipe,
            "dataset": self.dataset,
            "ingest": self.ingest,
            "depth": self.depth,
            "plan_recall": [p.to_json() for p in self.plan_recall],
        }

    @classmethod
    def read(cls, folder: str | Path) -> EvalReport:
        """A report written by `write` (rankings come back from run.trec when it is there)."""
        folder = Path(folder)
        data = json.loads((folder / "report.json").read_text(encoding="utf-8"))
        runs = read_trec_run(folder / "run.trec") if (folder / "run.trec").is_file() else {}
        queries = []
        for line in (folder / "per_query.jsonl").read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            ranking = runs.get(row["query_id"], [(d, 0.0) for d in row["top"]])
            timings = {k: v / 1000 for k, v in row["latency_ms"].items()}
            metrics = {m: row[m] for m in (*METRICS, *SPAN_METRICS) if m in row}
            queries.append(QueryResult(row["query_id"], row["query"], ranking, metrics,
                                       timings, row["ann_recall@10"], row["relevant"], row.get("top_span")))
        means = {m: data[m] for m in (*METRICS, *SPAN_METRICS) if m in data}
        return cls(data["recipe"], data["dataset"], means, queries,
                   data["latency_ms"], data["ann_recall@10"], data["ingest"], data["depth"],
                   [PlanRecall.from_json(p) for p in data.get("plan_recall", [])])

    def write(self, out: str | Path, run_name: str | None = None) -> list[Path]:
        """Write report.json, per_query.jsonl and run.trec into `out`; returns the paths."""
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        report = folder / "report.json"
        report.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        per_query = folder / "per_query.jsonl"
        with per_query.open("w", encoding="utf-8") as fh:
            for q in self.queries:
                fh.write(json.dumps(q.to_dict()) + "\n")
        run = folder / "run.trec"
        write_trec_run(run, {q.id: q.ranking for q in self.queries}, run_name or self.recipe)
        return [report, per_query, run]


def trec_id(value: str) -> str:
    """An id as one TREC column: `%` and white space percent-encoded (ids of labelled media are
    file paths and label texts, which may hold spaces); other ids pass unchanged."""
    if not any(c == "%" or c.isspace() for c in value):
        return value
    return "".join(f"%{ord(c):02X}" if c == "%" or c.isspace() else c for c in value)


def write_trec_run(path: str | Path, run: dict[str, list[tuple[str, float]]], name: str) -> None:
    """`qid Q0 docid rank score name` lines. Scores are nudged to be strictly decreasing so that
    trec_eval (which sorts by score) keeps the engine's order even where fused scores tie."""
    tag = "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "prismrag"
    with Path(path).open("w", encoding="utf-8") as fh:
        for qid, ranking in run.items():
            previous = float("inf")
            for rank, (doc, score) in enumerate(ranking, 1):
                value = min(float(score), previous - 1e-6) if rank > 1 else float(score)
                previous = value
                fh.write(f"{trec_id(qid)} Q0 {trec_id(doc)} {rank} {value:.6f} {tag}\n")


def read_trec_run(path: str | Path) -> dict[str, list[tuple[str, float]]]:
    """The rankings of a TREC run file, per query, in file order (ids decoded as `trec_id` wrote them)."""
    run: dict[str, list[tuple[str, float]]] = {}
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            if len(parts) != 6:
                raise ValueError(f"{len(parts)} columns, not 6")
            run.setdefault(unquote(parts[0]), []).append((unquote(parts[2]), float(parts[4])))
        except ValueError as exc:
            raise DatasetError(f"{path}:{n}: not a TREC run line (qid Q0 docid rank score tag): {exc}") from None
    return run


def _check_modalities(engine: Engine, dataset: Dataset, items: Sequence[Item]) -> None:
    recipe = engine.recipe
    for modality in sorted(dataset.query_modalities(), key=lambda m: m.value):
        if not any(r.encoder.accepts(modality, "query") for r in recipe.retrievers.values()):
            accepted = sorted({m.value for r in recipe.retrievers.values() for m in r.encoder.query_modalities})
            raise DatasetError(
                f"{recipe.source}: no retriever accepts {modality.value} queries, which data set "
                f"{dataset.name!r} asks; the recipe answers {', '.join(accepted) or 'no'} queries"
                + (" (for a labelled media folder, try --queries example)" if dataset.layout == "labelled" else "")
            )
    for modality in sorted({i.modality for i in items}, key=lambda m: m.value):
        if not any(r.encoder.accepts(modality, "document") for r in recipe.retrievers.values()):
            raise DatasetError(
                f"{recipe.source}: no retriever indexes {modality.value} documents, which make up "
                f"data set {dataset.name!r}"
            )


def _without(hits: Any, exclude: str | None) -> list[Any]:
    """Hits other than the query's own item (and its chunks), for leave-one-out queries."""
    if exclude is None:
        return list(hits)
    return [h for h in hits if h.id != exclude and h.payload.get("parent_id") != exclude]


def _repointed(loader: Loader, corpus: Path) -> Loader:
    """A copy of a recipe source reading the whole of `corpus` with ids relative to it (its other
    settings, e.g. how it segments, kept)."""
    import dataclasses

    fields = type(loader.params).model_fields
    update = {k: v for k, v in {"path": str(corpus), "glob": "**/*", "exclude": [], "id_prefix": ""}.items()
              if k in fields}
    context = dataclasses.replace(loader.context, where=f"{loader.context.where} (reading {corpus} for eval)")
    return type(loader)(loader.params.model_copy(update=update), context)


def _media_loaders(engine: Engine, dataset: Dataset, corpus: Path) -> list[Loader]:
    """For each kind of file in the set, the recipe's source that reads it, re-pointed at `corpus`
    (or, when the recipe has none, the installed loader claiming the extension, with defaults)."""
    from .contracts import Context

    chosen: dict[int, Loader] = {}
    for suffix in sorted({Path(i.id).suffix.lower() for i in dataset.items}):
        source = next((s for s in engine.recipe.sources if s is not None and suffix in type(s).extensions), None)
        if source is not None:
            chosen.setdefault(id(source), _repointed(source, corpus))
            continue
        found = [info.cls for info in engine.registry.components("loader").values() if suffix in info.cls.extensions]  # type: ignore[attr-defined]
        if not found:
            raise DatasetError(f"{corpus}: no installed loader reads {suffix} files; remove them or install a plugin that does")
        cls = found[0]
        context = Context(base_dir=corpus, recipe=engine.name, where=f"{cls.name} loader reading {corpus} for eval",
                          resolve_model=engine.registry.resolve_model)
        chosen.setdefault(id(cls), cls(cls.Params.model_validate({"path": str(corpus)}), context))  # type: ignore[call-arg]
    return list(chosen.values())


def corpus_items(engine: Engine, dataset: Dataset) -> list[Item]:
    """The items evaluation indexes: the data set's own, or for a media set what the recipe's
    loaders make of its files (a file's segments stand for it). A file the loader skips is noted
    in the data set's report; items that name no file of the set are an error (their hits could
    never match a judgment)."""
    if dataset.layout != "media":
        return list(dataset.items)
    corpus = dataset.path / "corpus"
    wanted = {i.id for i in dataset.items}
    items: list[Item] = []
    strangers: list[str] = []
    for loader in _media_loaders(engine, dataset, corpus):
        for entry in loader.load():
            if isinstance(entry, ItemError):
                dataset.report.skipped_items.append(str(entry))
                continue
            root = entry.parent_id or entry.id
            if root in wanted:
                items.append(entry)
            elif root not in dataset.left_out:
                strangers.append(f"{entry.id} (from {type(loader).name})")
    if strangers:
        raise DatasetError(
            f"{corpus}: the recipe's loaders made {len(strangers)} items whose id or parent id names no file of "
            f"corpus/ (e.g. {strangers[0]}), so judgments cannot reach them; a loader for eval must use the path "
            f"relative to corpus/ as the file's id"
        )
    if not items:
        raise DatasetError(
            f"{corpus}: the recipe's loaders made no item of its files"
            + (f" (e.g. {dataset.report.skipped_items[0]})" if dataset.report.skipped_items else "")
        )
    return items


def evaluate_engine(
    engine: Engine,
    dataset: Dataset,
    *,
    depth: int = 100,
    ann_check: bool = True,
    progress: ProgressFn | None = None,
) -> EvalReport:
    """Index the data set's items into `engine` (only them) and run and score every query."""
    progress = progress or _quiet
    if depth < 10:
        raise QueryError(f"depth must be at least 10 (the @10 metrics need ten results), got {depth}")
    _check_modalities(engine, dataset, [])
    t0 = time.perf_counter()
    items = corpus_items(engine, dataset)
    _check_modalities(engine, dataset, items)
    ingest = engine.ingest_items(items, progress, owner="sources", delete_missing=True)
    ingest_s = time.perf_counter() - t0
    ingest_info = {
        "seconds": round(ingest_s, 3),
        "items": ingest.loaded,
        "encoded": dict(ingest.encoded),
        "cache_hits": dict(ingest.cache_hits),
        "items_per_second": round(ingest.loaded / ingest_s, 2) if ingest_s else None,
        "errors": len(ingest.errors),
    }

    if dataset.queries:  # the first search loads lazy state (models, segments): keep it out of the timings
        engine.search_detailed(dataset.queries[0].query, top_k=depth)
    results: list[QueryResult] = []
    segments: dict[str, list[SegmentHit]] = {}
    total = len(dataset.queries)
    for n, q in enumerate(dataset.queries, 1):
        t = time.perf_counter()
        extra = 1 if q.exclude else 0
        found = engine.search_detailed(q.query, top_k=depth + extra)
        timings = dict(found.timings)
        timings["total"] = time.perf_counter() - t
        hits = _without(found.hits, q.exclude)[:depth]
        ranking = [(h.id, float(h.score)) for h in hits]
        segments[q.id] = [SegmentHit.of(h.id, h.payload.get("parent_id"), h.payload.get("span")) for h in hits]
        ann = None
        if ann_check:
            exact = engine.search_detailed(q.query, top_k=10 + extra, exact=True)
            ann = overlap_at_k([d for d, _ in ranking], [h.id for h in _without(exact.hits, q.exclude)], 10)
        relevant = sum(1 for g in dataset.qrels[q.id].values() if g > 0)
        results.append(QueryResult(q.id, q.text, ranking, {}, timings, ann, relevant))
        progress("query", n, total)

    qids = [r.id for r in results]
    if dataset.slots:  # judge segments by their time spans, and add the file-level and time-code metrics
        judged = slot_qrels((SegmentHit.of(i.id, i.parent_id, i.span.to_payload() if i.span else None) for i in items),
                            dataset.slots)
        per_query = score_run({r.id: [d for d, _ in r.ranking] for r in results}, judged, METRICS, qids)
        spans = score_spans(segments, dataset.qrels, dataset.slots, qids)
        for r in results:
            per_query[r.id].update(spans[r.id])
            r.relevant = len(judged.get(r.id, {}))
            top = segments[r.id][:1]
            r.top_span = {"file": top[0].parent, "t_start": top[0].t_start, "t_end": top[0].t_end} if top else None
    elif dataset.layout == "media":  # judgments name files: a file's best segment stands for it
        per_query = score_run({q: collapse(segments[q]) for q in qids}, dataset.qrels, METRICS, qids)
    else:
        per_query = score_run({r.id: [d for d, _ in r.ranking] for r in results}, dataset.qrels, METRICS, qids)
    for r in results:
        r.metrics = per_query[r.id]
    anns = [r.ann_recall for r in results if r.ann_recall is not None]
    plan_recall = []
    if ann_check or any(r.min_recall is not None for r in engine.recipe.retrievers.values()):
        plan_recall = measure(engine, [q.query for q in dataset.queries])
    names = (*METRICS, *SPAN_METRICS) if dataset.slots else METRICS
    return EvalReport(
        recipe=engine.name,
        dataset=dataset.describe(),
        metrics=mean_metrics(per_query, names),
        queries=results,
        latency_ms=latency_percentiles([r.timings for r in results]),
        ann_recall=sum(anns) / len(anns) if anns else None,
        ingest=ingest_info,
        depth=depth,
        plan_recall=plan_recall,
    )


_WHERE_KEYS = {"path", "url", "location", "api_key", "host", "port", "prefer_grpc", "shards", "replicas"}
"""Store parameters that say where (and on which servers) the data lives: eval replaces them."""


def store_override(recipe: str | Path, folder: Path) -> dict[str, Any]:
    """The recipe's store kind and tuning, moved to `folder` (the recipe's own location, local or
    a server, is never touched)."""
    from .recipe import load_recipe_spec

    spec, _, _ = load_recipe_spec(recipe)
    tuning = {k: v for k, v in spec.store.params.items() if k not in _WHERE_KEYS}
    return {"use": spec.store.use, **tuning, "path": str(folder)}


EVAL_MARKER = "prism-eval-index.txt"
"""Left in an index folder that `evaluate` built: only such a folder is reused."""


def _check_eval_folder(folder: Path) -> None:
    """Refuse an `index_dir` holding anything but an index `evaluate` built (e.g. a recipe's own
    store, whose documents the evaluation would replace with the data set's)."""
    if folder.is_dir() and any(folder.iterdir()) and not (folder / EVAL_MARKER).is_file():
        from .errors import PrismError

        raise PrismError(
            f"{folder}: --index-dir holds files that `prism eval` did not make (a recipe's own store?). The "
            f"evaluation replaces every document of its index with the data set's: give it a new or empty folder."
        )


def evaluate(
    recipe: str | Path,
    dataset: Dataset,
    *,
    registry: Registry | None = None,
    index_dir: str | Path | None = None,
    depth: int = 100,
    ann_check: bool = True,
    progress: ProgressFn | None = None,
) -> EvalReport:
    """Build the recipe on a fresh index (a temporary folder, or `index_dir`, which is reused
    incrementally when it already holds this corpus) and evaluate it on `dataset`."""
    from .engine import Engine

    with tempfile.TemporaryDirectory(prefix="prism-eval-") as tmp:
        folder = Path(index_dir) if index_dir is not None else Path(tmp) / "index"
        _check_eval_folder(folder)
        store = store_override(recipe, folder.resolve())
        engine = Engine.from_file(recipe, registry=registry, store=store)
        try:
            engine.open()
            if folder.is_dir():
                (folder / EVAL_MARKER).write_text("built by `prism eval`; it replaces every document here\n")
            return evaluate_engine(engine, dataset, depth=depth, ann_check=ann_check, progress=progress)
        finally:
            engine.close()


def format_report(report: EvalReport, notes: Sequence[str] = ()) -> str:
    """A plain-text summary: metrics, ANN fidelity, latency per stage, data set notes."""
    ds = report.dataset
    lines = [
        f"recipe {report.recipe} on {ds['name']} ({ds['layout']}, split {ds['split']}): "
        f"{ds['documents']} documents, {len(report.queries)} queries",
        "  " + "  ".join(f"{m} {report.metrics[m]:.4f}" for m in METRICS),
    ]
    if "timecode_acc@1" in report.metrics:
        lines[-1] += "  (segments: relevant where they overlap the query's time slot)"
        lines.append(f"  video-level nDCG@10 {report.metrics['video_nDCG@10']:.4f}  "
                     f"time-code accuracy@1 {report.metrics['timecode_acc@1']:.4f} "
                     f"(the top hit in the right file, its span overlapping the slot)")
    elif ds.get("layout") == "media":
        lines[-1] += "  (per file: a file's best segment stands for it)"
    if report.depth < 100:
        lines.append(f"  (depth {report.depth}: Recall@100 and MAP@100 count only the first {report.depth} results)")
    if report.ann_recall is not None:
        lines.append(f"  ANN recall@10 vs exact search: {report.ann_recall:.4f}")
    lines.extend(format_lines(report.plan_recall))
    ing = report.ingest
    lines.append(
        f"  ingest: {ing.get('items')} items in {ing.get('seconds')} s"
        + (f" ({ing['items_per_second']} items/s)" if ing.get("items_per_second") else "")
        + (f"; from cache: {ing['cache_hits']}" if any(ing.get("cache_hits", {}).values()) else "")
    )
    lines.append(f"  {'latency (ms)':<22} {'p50':>9} {'p95':>9} {'p99':>9}")
    for stage, row in report.latency_ms.items():
        lines.append(f"  {stage:<22} {row['p50']:>9.2f} {row['p95']:>9.2f} {row['p99']:>9.2f}")
    for note in list(notes) + list(ds.get("notes", [])):
        lines.append(f"  note: {note}")
    return "\n".join(lines)
