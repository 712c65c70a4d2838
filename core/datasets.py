"""Evaluation data sets: a BEIR folder, a media set or a labelled media folder, read into items,
queries, qrels.

Three layouts are recognised:

- BEIR: `corpus.jsonl`, `queries.jsonl` and `qrels/<split>.tsv` (`query-id corpus-id score`, tab
  separated with a header, or the 4-column TREC qrels form). Relevance is graded.
- Labelled media: a folder of files plus `labels.csv` with a file column (`file`, `path`, `id`
  or `shape_id`; a value may be a relative path or a bare file name or stem found anywhere in the
  folder), a `label` column and an optional `split` column. An item is relevant to a query when
  their labels match. Queries are either the label text (`queries="label"`: one text query per
  label) or held-out items (`queries="example"`, query by example: the rows of the chosen split,
  or without a split column every fifth item of each label, are the queries and the rest the
  corpus).
- Media set: a `corpus/` folder of media files (videos, recordings, images) with BEIR
  `queries.jsonl` and `qrels/<split>.tsv`, whose corpus ids are the files' paths relative to
  `corpus/` (`slideshow-00.mp4`). Evaluation reads the files through the recipe's own loader for
  them, so a video or a long recording is indexed as the segments the recipe makes.

Either BEIR-style layout may add `qrels/<split>.spans.tsv` (`query-id corpus-id start_s end_s`,
tab separated, header optional): the time slot in that file where the query's answer is. With
slots, `prism eval` also reports video-level nDCG@10 and time-code accuracy@1 (see `metrics`).

Judgments naming unknown queries or documents are counted and reported, never fatal.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .errors import ItemError, PrismError
from .metrics import TimeSlot
from .types import Item, Media, Modality, Query, modality_of_path

if TYPE_CHECKING:
    from .registry import Registry

QueryMode = Literal["auto", "label", "example", "leave-one-out"]
Layout = Literal["beir", "media", "labelled"]
_HEADER_NAMES = {"score", "relevance", "rel", "grade", "label", "judgment"}
_BEIR_FILES = "corpus.jsonl, queries.jsonl and qrels/<split>.tsv"
_MEDIA_FILES = "a corpus/ folder of media files, queries.jsonl and qrels/<split>.tsv"
SPANS_SUFFIX = ".spans.tsv"
"""`qrels/<split>.spans.tsv` holds the time slots of the split's queries."""


class DatasetError(PrismError):
    """A data folder cannot be evaluated: unknown layout, missing files, an empty split."""


@dataclass(frozen=True)
class EvalQuery:
    """One query of a data set: its id, what is searched, and a label for reports."""

    id: str
    query: Query
    text: str
    """The query text, or for a media query the file it came from."""
    exclude: str | None = None
    """An indexed item that is the query itself (leave-one-out): dropped from its results."""


@dataclass
class DatasetReport:
    """What was dropped while reading a data set, and why."""

    unknown_query_judgments: int = 0
    unknown_doc_judgments: int = 0
    unknown_query_ids: list[str] = field(default_factory=list)
    unknown_doc_ids: list[str] = field(default_factory=list)
    queries_without_relevant: int = 0
    queries_without_text: int = 0
    skipped_items: list[str] = field(default_factory=list)
    limited_docs: int = 0
    limited_queries: int = 0
    unknown_slots: int = 0
    queries_without_slot: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["unknown_query_ids"] = self.unknown_query_ids[:20]
        d["unknown_doc_ids"] = self.unknown_doc_ids[:20]
        d["skipped_items"] = self.skipped_items[:20]
        d["skipped_item_count"] = len(self.skipped_items)
        return d

    def lines(self) -> list[str]:
        """Human-readable notes, one per kind of problem found (empty when all is clean)."""
        out = []
        if self.unknown_query_judgments:
            out.append(
                f"{self.unknown_query_judgments} judgments name {len(self.unknown_query_ids)} unknown "
                f"query id(s), e.g. {', '.join(self.unknown_query_ids[:3])}: ignored"
            )
        if self.unknown_doc_judgments:
            out.append(
                f"{self.unknown_doc_judgments} judgments name {len(self.unknown_doc_ids)} unknown "
                f"document id(s), e.g. {', '.join(self.unknown_doc_ids[:3])}: ignored"
            )
        if self.queries_without_relevant:
            out.append(f"{self.queries_without_relevant} judged queries have no relevant document: not scored")
        if self.queries_without_text:
            out.append(f"{self.queries_without_text} queries have no text: not scored")
        if self.skipped_items:
            out.append(f"{len(self.skipped_items)} corpus entries skipped, e.g. {self.skipped_items[0]}")
        if self.limited_docs:
            out.append(f"corpus limited: {self.limited_docs} documents left out")
        if self.limited_queries:
            out.append(f"queries limited: {self.limited_queries} left out")
        if self.unknown_slots:
            out.append(f"{self.unknown_slots} time slots name an unknown query or document: ignored")
        if self.queries_without_slot:
            out.append(f"{self.queries_without_slot} queries have no time slot: time-code accuracy counts them as misses")
        return out


@dataclass
class Dataset:
    """Items to index, queries to run and graded judgments (`qrels[query_id][doc_id] = grade`)."""

    name: str
    path: Path
    layout: Layout
    split: str
    items: list[Item]
    queries: list[EvalQuery]
    qrels: dict[str, dict[str, int]]
    report: DatasetReport = field(default_factory=DatasetReport)
    slots: dict[str, list[TimeSlot]] = field(default_factory=dict)
    """Per query, where in its relevant files the answer is (empty when the set declares none)."""
    left_out: set[str] = field(default_factory=set)
    """Documents of the folder that `limit_docs` left out."""

    def query_modalities(self) -> set[Modality]:
        return {q.query.modality for q in self.queries}

    def item_modalities(self) -> set[Modality]:
        return {i.modality for i in self.items}

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "layout": self.layout,
            "split": self.split,
            "documents": len(self.items),
            "queries": len(self.queries),
            "judgments": sum(len(q) for q in self.qrels.values()),
            "time_slots": sum(len(s) for s in self.slots.values()),
            "problems": self.report.to_dict(),
            "notes": self.report.lines(),
        }


def detect_layout(path: Path) -> Layout:
    """Which layout a folder holds, or a DatasetError naming both expected layouts."""
    if not path.exists():
        raise DatasetError(f"data folder {str(path)!r} does not exist")
    if not path.is_dir():
        raise DatasetError(f"{str(path)!r} is a file; --data takes a data set folder")
    if (path / "corpus.jsonl").is_file():
        return "beir"
    if (path / "corpus").is_dir() and ((path / "queries.jsonl").is_file() or (path / "qrels").is_dir()):
        return "media"
    if (path / "labels.csv").is_file():
        return "labelled"
    raise DatasetError(
        f"{path} is neither a BEIR data set ({_BEIR_FILES}), a media set ({_MEDIA_FILES}) nor a labelled "
        f"media folder (files plus a labels.csv with file and label columns)"
    )


def load_dataset(
    path: str | Path,
    *,
    split: str = "test",
    queries: QueryMode = "auto",
    registry: Registry | None = None,
    limit_docs: int | None = None,
    limit_queries: int | None = None,
) -> Dataset:
    """Read a data folder of either layout. `queries` applies to labelled media only ("auto" =
    label text); `limit_docs` keeps the first N documents and the queries still judged in them."""
    folder = Path(path).expanduser().resolve()
    layout = detect_layout(folder)
    if layout == "beir":
        ds = _load_beir(folder, split, registry)
    elif layout == "media":
        ds = _load_media(folder, split, registry)
    else:
        from .labelled_sets import load_labelled

        ds = load_labelled(folder, split, "label" if queries == "auto" else queries)
    _limit(ds, limit_docs, limit_queries)
    if not ds.queries:
        raise DatasetError(
            f"{folder}: split {split!r} has no query with a relevant document in the corpus"
            + (f" ({'; '.join(ds.report.lines())})" if ds.report.lines() else "")
        )
    return ds


# ------------------------------------------------------------------------------------------ BEIR


def _beir_corpus(folder: Path, registry: Registry | None, report: DatasetReport) -> list[Item]:
    """The corpus through the registered `beir` loader, so eval reads documents as ingest does."""
    from .contracts import Context, Loader
    from .registry import Registry

    registry = registry or Registry()
    cls = registry.get("loader", "beir")
    loader: Loader = cls(cls.Params(path=str(folder)), Context(base_dir=folder, where=f"{folder}"))  # type: ignore[assignment, call-arg]
    items = []
    for entry in loader.load():
        if isinstance(entry, ItemError):
            report.skipped_items.append(str(entry))
        else:
            items.append(entry)
    return items


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open("rb") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line.removeprefix(b"\xef\xbb\xbf"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise DatasetError(f"{path}:{lineno}: not valid JSON ({exc})") from exc
            if isinstance(record, dict):
                yield lineno, record


def _columns(path: Path) -> Iterator[tuple[int, str, list[str]]]:
    """(line number, line, its columns) of a tab- or space-separated file; blank lines skipped."""
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise DatasetError(f"{path}:{lineno}: not UTF-8 text ({exc.reason} at byte {exc.start}); "
                                   f"save the file as UTF-8") from None
            parts = [p.strip() for p in (line.split("\t") if "\t" in line else line.split())]
            if parts and parts != [""]:
                yield lineno, line, parts


def read_qrels(path: Path) -> list[tuple[str, str, int]]:
    """(query id, doc id, grade) rows of a BEIR tsv (with or without header) or a TREC qrels file."""
    rows: list[tuple[str, str, int]] = []
    for lineno, line, parts in _columns(path):
        if len(parts) == 4:  # TREC: qid iter docid rel
            parts = [parts[0], parts[2], parts[3]]
        if len(parts) != 3:
            raise DatasetError(
                f"{path}:{lineno}: expected `query-id<TAB>corpus-id<TAB>score`, got {line.strip()!r}"
            )
        if lineno == 1 and parts[2].lower() in _HEADER_NAMES:
            continue
        try:
            score = float(parts[2])
        except ValueError:
            raise DatasetError(f"{path}:{lineno}: relevance {parts[2]!r} is not a number") from None
        if not score.is_integer():  # nan, inf, a fraction: a grade is 0, 1, 2, ... (negative: judged irrelevant)
            raise DatasetError(f"{path}:{lineno}: relevance {parts[2][:40]!r} is not a whole number; grades are 0, 1, 2, ...")
        rows.append((parts[0], parts[1], int(score)))
    return rows


def _judgments(folder: Path, split: str, layout_files: str) -> list[tuple[str, str, int]]:
    """The rows of `qrels/<split>.tsv` of a BEIR-style folder; a DatasetError naming the splits
    there are when it is missing, or saying it is empty."""
    missing = [n for n in ("queries.jsonl", "qrels") if not (folder / n).exists()]
    if missing:
        raise DatasetError(f"{folder}: has no {' or '.join(missing)}; this layout holds {layout_files}")
    qrels_file = folder / "qrels" / f"{split}.tsv"
    if not qrels_file.is_file():
        found = sorted(p.name.removesuffix(".tsv") for p in (folder / "qrels").glob("*.tsv")
                       if not p.name.endswith(SPANS_SUFFIX))
        raise DatasetError(
            f"{folder}: no qrels for split {split!r} ({qrels_file.name} missing); "
            f"splits found: {', '.join(found) or 'none'}. Pick one with --split."
        )
    rows = read_qrels(qrels_file)
    if not rows:
        raise DatasetError(f"{qrels_file}: split {split!r} is empty (no judgments)")
    return rows


def _load_beir(folder: Path, split: str, registry: Registry | None) -> Dataset:
    rows = _judgments(folder, split, _BEIR_FILES)
    report = DatasetReport()
    items = _beir_corpus(folder, registry, report)
    if not items:
        raise DatasetError(f"{folder}/corpus.jsonl: no documents could be read")
    return _judged(folder, "beir", split, items, rows, report)


def _judged(folder: Path, layout: Layout, split: str, items: list[Item], rows: list[tuple[str, str, int]],
            report: DatasetReport) -> Dataset:
    """The data set of `items` judged by qrels `rows`: the queries of queries.jsonl that have a
    relevant document, and their time slots when the split declares them."""
    doc_ids = {i.id for i in items}
    texts: dict[str, str] = {}
    for _, rec in _read_jsonl(folder / "queries.jsonl"):
        qid = rec.get("_id", rec.get("id"))
        if qid is not None:
            texts[str(qid)] = str(rec.get("text") or "").strip()
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    unknown_q: Counter[str] = Counter()
    unknown_d: Counter[str] = Counter()
    for qid, did, grade in rows:
        if qid not in texts:
            unknown_q[qid] += 1
        elif did not in doc_ids:
            unknown_d[did] += 1
        else:
            qrels[qid][did] = grade
    report.unknown_query_judgments, report.unknown_query_ids = sum(unknown_q.values()), sorted(unknown_q)
    report.unknown_doc_judgments, report.unknown_doc_ids = sum(unknown_d.values()), sorted(unknown_d)
    queries = []
    for qid in sorted(qrels, key=_natural):
        if not any(g > 0 for g in qrels[qid].values()):
            report.queries_without_relevant += 1
        elif not texts[qid]:
            report.queries_without_text += 1
        else:
            queries.append(EvalQuery(qid, Query.text(texts[qid]), texts[qid]))
    kept = {q.id for q in queries}
    slots: dict[str, list[TimeSlot]] = {}
    spans_file = folder / "qrels" / f"{split}{SPANS_SUFFIX}"
    if spans_file.is_file():
        for qid, slot in read_slots(spans_file):
            if qid in kept and slot.doc in doc_ids:
                slots.setdefault(qid, []).append(slot)
            else:
                report.unknown_slots += 1
        report.queries_without_slot = sum(1 for q in kept if q not in slots)
    return Dataset(
        folder.name, folder, layout, split, items, queries,
        {q: r for q, r in qrels.items() if q in kept}, report, slots,
    )


def read_slots(path: Path) -> list[tuple[str, TimeSlot]]:
    """(query id, slot) rows of a `<split>.spans.tsv`: `query-id corpus-id start_s end_s`."""
    rows: list[tuple[str, TimeSlot]] = []
    for lineno, line, parts in _columns(path):
        if len(parts) != 4:
            raise DatasetError(
                f"{path}:{lineno}: expected `query-id<TAB>corpus-id<TAB>start_s<TAB>end_s`, got {line.strip()!r}"
            )
        try:
            start, end = float(parts[2]), float(parts[3])
        except ValueError:
            if lineno == 1:  # a header
                continue
            raise DatasetError(f"{path}:{lineno}: start_s {parts[2]!r} and end_s {parts[3]!r} must be seconds") from None
        if not (0 <= start < end):
            raise DatasetError(f"{path}:{lineno}: the slot {start:g}-{end:g} s is empty or negative; give start_s < end_s")
        rows.append((parts[0], TimeSlot(parts[1], start, end)))
    return rows


# ------------------------------------------------------------------------------------ media set


def _load_media(folder: Path, split: str, registry: Registry | None) -> Dataset:
    """Every file of corpus/ as one document (the recipe's loader segments it when evaluated)."""
    rows = _judgments(folder, split, _MEDIA_FILES)
    report = DatasetReport()
    corpus = folder / "corpus"
    claimed = registry.claimed_extensions() if registry is not None else None
    items = []
    root = folder.resolve()
    for path in sorted(corpus.rglob("*")):
        rel = path.relative_to(corpus)
        if not path.is_file() or any(part.startswith(".") for part in rel.parts):
            continue
        if not path.resolve().is_relative_to(root):  # a link out of the folder, as the source loaders refuse
            report.skipped_items.append(f"corpus/{rel.as_posix()}: a symlink to {path.resolve()}, outside the data "
                                        f"folder; skipped. Copy the file into the folder instead")
            continue
        modality = modality_of_path(path, claimed)
        if modality is None:
            report.skipped_items.append(f"corpus/{rel.as_posix()}: cannot tell the modality of {path.name!r}")
            continue
        try:
            content: Any = path.read_text(encoding="utf-8") if modality == Modality.TEXT else Media(path=path)
        except UnicodeDecodeError as exc:
            report.skipped_items.append(f"corpus/{rel.as_posix()}: not UTF-8 text ({exc.reason} at byte {exc.start})")
            continue
        items.append(Item(rel.as_posix(), modality, content, {"file": rel.as_posix()}, source=rel.as_posix()))
    if not items:
        raise DatasetError(f"{corpus}: no media file found; a media set holds {_MEDIA_FILES}")
    return _judged(folder, "media", split, items, rows, report)


def _natural(value: str) -> tuple[Any, ...]:
    """Sort key that orders `q2` before `q10`."""
    import re

    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", value))


# ----------------------------------------------------------------------------------- subsetting


def _limit(ds: Dataset, limit_docs: int | None, limit_queries: int | None) -> None:
    """Keep the first `limit_docs` documents (judgments into the rest dropped, queries left without
    a relevant document dropped) and then the first `limit_queries` queries."""
    for name, value in (("limit_docs", limit_docs), ("limit_queries", limit_queries)):
        if value is not None and value < 1:
            raise DatasetError(f"{name} must be at least 1, got {value}")
    if limit_docs is not None and limit_docs < len(ds.items):
        ds.report.limited_docs = len(ds.items) - limit_docs
        ds.left_out = {i.id for i in ds.items[limit_docs:]}
        ds.items = ds.items[:limit_docs]
        keep = {i.id for i in ds.items}
        ds.qrels = {q: {d: g for d, g in r.items() if d in keep} for q, r in ds.qrels.items()}
        ds.qrels = {q: r for q, r in ds.qrels.items() if any(g > 0 for g in r.values())}
        ds.queries = [q for q in ds.queries if q.id in ds.qrels]
    if limit_queries is not None and limit_queries < len(ds.queries):
        ds.report.limited_queries = len(ds.queries) - limit_queries
        ds.queries = ds.queries[:limit_queries]
        ds.qrels = {q.id: ds.qrels[q.id] for q in ds.queries}
    if ds.slots:
        keep = {i.id for i in ds.items}
        ds.slots = {q.id: [s for s in ds.slots.get(q.id, []) if s.doc in keep] for q in ds.queries}
        ds.slots = {q: s for q, s in ds.slots.items() if s}
