"""The labelled-media layout of evaluation data sets (see `datasets`): a folder of files plus
`labels.csv`; an item is relevant to a query when their labels match."""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Literal

from .datasets import Dataset, DatasetError, DatasetReport, EvalQuery
from .types import Item, Media, Modality, Query, modality_of_path

FILE_COLUMNS = ("file", "path", "filename", "id", "shape_id", "item")
HOLDOUT_EVERY = 5
"""Without a split column, query-by-example holds out every fifth item (sorted by id) of each label."""


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
    """The file a labels.csv entry names, or a message saying why it cannot be found. Whatever
    names it (a path, a name, a stem), the file it reaches must lie inside the folder: a
    symlink pointing out of it is refused, as the source loaders refuse one."""
    root = folder.resolve()
    direct = folder / value
    if direct.resolve().is_file():
        if not direct.resolve().is_relative_to(root):
            return _outside(folder, value, direct)
        return folder / direct.resolve().relative_to(root)
    for table in index:
        found = table.get(value, [])
        if len(found) == 1:
            if not found[0].resolve().is_relative_to(root):
                return _outside(folder, value, found[0])
            return found[0]
        if len(found) > 1:
            return f"{value!r} matches {len(found)} files ({found[0].relative_to(folder)}, ...); give its relative path"
    return f"no file {value!r} in the folder"


def _outside(folder: Path, value: str, path: Path) -> str:
    """The message for an entry whose file lies outside the data folder."""
    inside = [p for p in [path, *path.parents] if p != folder and p.is_relative_to(folder) and ".." not in p.parts]
    link = next((p for p in inside if p.is_symlink()), None)
    if link is not None:
        return (f"{value!r} reaches {link.relative_to(folder)}, a symlink to {link.resolve()}, outside the data "
                f"folder; skipped. Copy the file into the folder instead")
    return f"{value!r} lies outside the data folder; list files inside it"


def load_labelled(folder: Path, split: str, mode: Literal["label", "example", "leave-one-out"]) -> Dataset:
    labels_csv = folder / "labels.csv"
    try:
        with labels_csv.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{labels_csv}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
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
        try:
            content: Any = found.read_text(encoding="utf-8") if modality == Modality.TEXT else Media(path=found)
        except UnicodeDecodeError as exc:
            report.skipped_items.append(f"{where}: {rel} is not UTF-8 text ({exc.reason} at byte {exc.start})")
            continue
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


