"""Evaluation data sets: a BEIR folder or a labelled media folder, read into items, queries, qrels.

Two layouts are recognised:

- BEIR: `corpus.jsonl`, `queries.jsonl` and `qrels/<split>.tsv` (`query-id corpus-id score`, tab
  separated with a header, or the 4-column TREC qrels form). Relevance is graded.
- Labelled media: a folder of files plus `labels.csv` with a file column (`file`, `path`, `id`
  or `shape_id`; a value may be a relative path or a bare file name or stem found anywhere in the
  folder), a `label` column and an optional `split` column. An item is relevant to a query when
  their labels match. Queries are either the label text (`queries="label"`: one text query per
  label) or held-out items (`queries="example"`, query by example: the rows of the chosen split,
  or without a split column every fifth item of each label, are the queries and the rest the
  corpus).

Judgments naming unknown queries or documents are counted and reported, never fatal.
"""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .errors import ItemError, PrismError
from .types import Item, Media, Modality, Query, modality_of_path

if TYPE_CHECKING:
    from .registry import Registry

QueryMode = Literal["auto", "label", "example", "leave-one-out"]
FILE_COLUMNS = ("file", "path", "filename", "id", "shape_id", "item")
HOLDOUT_EVERY = 5
"""Without a split column, query-by-example holds out every fifth item (sorted by id) of each label."""

_HEADER_NAMES = {"score", "relevance", "rel", "grade", "label", "judgment"}
_BEIR_FILES = "corpus.jsonl, queries.jsonl and qrels/<split>.tsv"


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
        return out


@dataclass
class Dataset:
    """Items to index, queries to run and graded judgments (`qrels[query_id][doc_id] = grade`)."""

    name: str
    path: Path
    layout: Literal["beir", "labelled"]
    split: str
    items: list[Item]
    queries: list[EvalQuery]
    qrels: dict[str, dict[str, int]]
    report: DatasetReport = field(default_factory=DatasetReport)

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
            "problems": self.report.to_dict(),
            "notes": self.report.lines(),
        }


def detect_layout(path: Path) -> Literal["beir", "labelled"]:
    """Which layout a folder holds, or a DatasetError naming both expected layouts."""
    if not path.exists():
        raise DatasetError(f"data folder {str(path)!r} does not exist")
    if not path.is_dir():
        raise DatasetError(f"{str(path)!r} is a file; --data takes a data set folder")
    if (path / "corpus.jsonl").is_file():
        return "beir"
    if (path / "labels.csv").is_file():
        return "labelled"
    raise DatasetError(
        f"{path} is neither a BEIR data set ({_BEIR_FILES}) nor a labelled media folder "
        f"(files plus a labels.csv with file and label columns)"
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
    else:
        ds = _load_labelled(folder, split, "label" if queries == "auto" else queries)
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


def read_qrels(path: Path) -> list[tuple[str, str, int]]:
    """(query id, doc id, grade) rows of a BEIR tsv (with or without header) or a TREC qrels file."""
    rows: list[tuple[str, str, int]] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split("\t") if "\t" in line else line.split()
            parts = [p.strip() for p in parts]
            if not parts or parts == [""]:
                continue
            if len(parts) == 4:  # TREC: qid iter docid rel
                parts = [parts[0], parts[2], parts[3]]
            if len(parts) != 3:
                raise DatasetError(
                    f"{path}:{lineno}: expected `query-id<TAB>corpus-id<TAB>score`, got {line.strip()!r}"
                )
            if lineno == 1 and parts[2].lower() in _HEADER_NAMES:
                continue
            try:
                grade = int(float(parts[2]))
            except ValueError:
                raise DatasetError(f"{path}:{lineno}: relevance {parts[2]!r} is not a number") from None
            rows.append((parts[0], parts[1], grade))
    return rows


def _load_beir(folder: Path, split: str, registry: Registry | None) -> Dataset:
    missing = [n for n in ("queries.jsonl", "qrels") if not (folder / n).exists()]
    if missing:
        raise DatasetError(
            f"{folder}: has corpus.jsonl but no {' or '.join(missing)}; a BEIR folder holds {_BEIR_FILES}"
        )
    qrels_file = folder / "qrels" / f"{split}.tsv"
    if not qrels_file.is_file():
        found = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
        raise DatasetError(
            f"{folder}: no qrels for split {split!r} ({qrels_file.name} missing); "
            f"splits found: {', '.join(found) or 'none'}. Pick one with --split."
        )
    report = DatasetReport()
    rows = read_qrels(qrels_file)
    if not rows:
        raise DatasetError(f"{qrels_file}: split {split!r} is empty (no judgments)")
    items = _beir_corpus(folder, registry, report)
    if not items:
        raise DatasetError(f"{folder}/corpus.jsonl: no documents could be read")
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
    return Dataset(
        folder.name, folder, "beir", split, items, queries,
        {q: r for q, r in qrels.items() if q in kept}, report,
    )


def _natural(value: str) -> tuple[Any, ...]:
    """Sort key that orders `q2` before `q10`."""
    import re

    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", value))


# -------------------------------------------------------------------------------- labelled media


def _file_index(folder: Path) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
    """Files of the folder by name and by stem (hidden files and labels.csv left out)."""
    by_name: dict[str, list[Path]] = defaultdict(list)
    by_stem: dict[str, list[Path]] = defaultdict(list)
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if not p.is_file() or any(part.startswith(".") for part in rel.parts) or rel.as_posix() == "labels.csv":
            continue
        by_name[p.name].append(p)
        by_stem[p.stem].append(p)
    return by_name, by_stem


def _resolve(folder: Path, value: str, index: tuple[dict[str, list[Path]], dict[str, list[Path]]]) -> Path | str:
    """The file a labels.csv entry names, or a message saying why it cannot be found."""
    direct = (folder / value).resolve()
    if direct.is_file():
        if not direct.is_relative_to(folder.resolve()):
            return f"{value!r} lies outside the data folder; list files inside it"
        return direct
    for table in index:
        found = table.get(value, [])
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            return f"{value!r} matches {len(found)} files ({found[0].relative_to(folder)}, ...); give its relative path"
    return f"no file {value!r} in the folder"


def _load_labelled(folder: Path, split: str, mode: Literal["label", "example", "leave-one-out"]) -> Dataset:
    labels_csv = folder / "labels.csv"
    with labels_csv.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    columns = [c for c in (reader.fieldnames or []) if c is not None]
    file_col = next((c for c in FILE_COLUMNS if c in columns), None)
    if file_col is None or "label" not in columns:
        raise DatasetError(
            f"{labels_csv}: needs a file column (one of {', '.join(FILE_COLUMNS)}) and a `label` column; "
            f"found columns: {', '.join(columns) or 'none (empty file)'}"
        )
    has_split = "split" in columns
    report = DatasetReport()
    index = _file_index(folder)
    entries: list[tuple[Item, str]] = []  # (item, split)
    seen: set[str] = set()
    for lineno, row in enumerate(rows, 2):
        value, label = (row.get(file_col) or "").strip(), (row.get("label") or "").strip()
        where = f"{labels_csv.name}:{lineno}"
        if not value or not label:
            report.skipped_items.append(f"{where}: empty {file_col if not value else 'label'}")
            continue
        found = _resolve(folder, value, index)
        if isinstance(found, str):
            report.skipped_items.append(f"{where}: {found}")
            continue
        modality = modality_of_path(found)
        if modality is None:
            report.skipped_items.append(f"{where}: cannot tell the modality of {found.name!r}")
            continue
        rel = found.relative_to(folder).as_posix()
        if rel in seen:
            report.skipped_items.append(f"{where}: {rel} listed twice")
            continue
        seen.add(rel)
        content: Any = found.read_text(encoding="utf-8") if modality == Modality.TEXT else Media(path=found)
        item = Item(rel, modality, content, {"label": label, "file": rel}, source=rel)
        entries.append((item, (row.get("split") or "").strip() if has_split else ""))
    if not entries:
        raise DatasetError(f"{labels_csv}: no row names a readable file" + (
            f" (e.g. {report.skipped_items[0]})" if report.skipped_items else ""))
    splits = Counter(s for _, s in entries)
    if has_split and split not in splits:
        raise DatasetError(
            f"{labels_csv}: split {split!r} is empty; splits found: "
            + ", ".join(f"{s or '(blank)'} ({n})" for s, n in sorted(splits.items()))
        )
    if mode == "label":
        items = [i for i, s in entries if not has_split or s == split]
        by_label: dict[str, list[str]] = defaultdict(list)
        for item in items:
            by_label[item.metadata["label"]].append(item.id)
        queries = [EvalQuery(f"label:{lab}", Query.text(lab), lab) for lab in sorted(by_label)]
        qrels = {f"label:{lab}": dict.fromkeys(ids, 1) for lab, ids in by_label.items()}
    elif mode == "leave-one-out":
        # Every item is indexed and every item is a query; its own hit is dropped from its results.
        items = [i for i, _ in entries]
        by_label = defaultdict(list)
        for item in items:
            by_label[item.metadata["label"]].append(item.id)
        queries, qrels = [], {}
        for item in items:
            relevant = [i for i in by_label[item.metadata["label"]] if i != item.id]
            if not relevant:
                report.queries_without_relevant += 1
                continue
            queries.append(EvalQuery(item.id, Query(item.modality, item.content), item.id, exclude=item.id))
            qrels[item.id] = dict.fromkeys(relevant, 1)
    else:
        held = _holdout(entries, split, has_split)
        items = [i for i, _ in entries if i.id not in held]
        corpus_by_label: dict[str, list[str]] = defaultdict(list)
        for item in items:
            corpus_by_label[item.metadata["label"]].append(item.id)
        queries, qrels = [], {}
        for item, _ in entries:
            if item.id not in held:
                continue
            relevant = corpus_by_label.get(item.metadata["label"], [])
            if not relevant:
                report.queries_without_relevant += 1
                continue
            queries.append(EvalQuery(item.id, Query(item.modality, item.content), item.id))
            qrels[item.id] = dict.fromkeys(relevant, 1)
    return Dataset(folder.name, folder, "labelled", split, items, queries, qrels, report)


def _holdout(entries: list[tuple[Item, str]], split: str, has_split: bool) -> set[str]:
    """Ids held out as query-by-example queries: the split's rows, or every fifth item per label."""
    if has_split:
        return {i.id for i, s in entries if s == split}
    by_label: dict[str, list[str]] = defaultdict(list)
    for item, _ in entries:
        by_label[item.metadata["label"]].append(item.id)
    held = set()
    for ids in by_label.values():
        if len(ids) >= 2:
            held.update(sorted(ids)[::HOLDOUT_EVERY])
    return held


# ----------------------------------------------------------------------------------- subsetting


def _limit(ds: Dataset, limit_docs: int | None, limit_queries: int | None) -> None:
    """Keep the first `limit_docs` documents (judgments into the rest dropped, queries left without
    a relevant document dropped) and then the first `limit_queries` queries."""
    for name, value in (("limit_docs", limit_docs), ("limit_queries", limit_queries)):
        if value is not None and value < 1:
            raise DatasetError(f"{name} must be at least 1, got {value}")
    if limit_docs is not None and limit_docs < len(ds.items):
        ds.report.limited_docs = len(ds.items) - limit_docs
        ds.items = ds.items[:limit_docs]
        keep = {i.id for i in ds.items}
        ds.qrels = {q: {d: g for d, g in r.items() if d in keep} for q, r in ds.qrels.items()}
        ds.qrels = {q: r for q, r in ds.qrels.items() if any(g > 0 for g in r.values())}
        ds.queries = [q for q in ds.queries if q.id in ds.qrels]
    if limit_queries is not None and limit_queries < len(ds.queries):
        ds.report.limited_queries = len(ds.queries) - limit_queries
        ds.queries = ds.queries[:limit_queries]
        ds.qrels = {q.id: ds.qrels[q.id] for q in ds.queries}
