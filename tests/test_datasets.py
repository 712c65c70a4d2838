"""Reading evaluation data sets: both layouts, and every kind of bad input."""

from __future__ import annotations

import json

import pytest
from eval_data import COLORS, TOPICS, write_beir, write_images

from prismrag.datasets import DatasetError, detect_layout, load_dataset
from prismrag.types import Media, Modality


def test_beir_layout_reads_corpus_queries_and_graded_qrels(tmp_path, registry):
    ds = load_dataset(write_beir(tmp_path), registry=registry)
    assert ds.layout == "beir" and ds.split == "test"
    assert len(ds.items) == 6 * len(TOPICS)
    assert [q.id for q in ds.queries] == [f"q{i}" for i in range(len(TOPICS))]  # unjudged query left out
    assert ds.qrels["q0"]["cats-0"] == 2 and ds.qrels["q0"]["cats-5"] == 1
    assert ds.queries[0].query.modality == Modality.TEXT
    assert ds.report.lines() == []


def test_unknown_ids_in_qrels_are_counted_not_fatal(tmp_path, registry):
    extra = "ghost\tcats-0\t1\nghost\tdogs-1\t2\nq1\tno-such-doc\t1\nq1\tdogs-0\t0\n"
    ds = load_dataset(write_beir(tmp_path, extra_qrels=extra), registry=registry)
    assert ds.report.unknown_query_judgments == 2 and ds.report.unknown_query_ids == ["ghost"]
    assert ds.report.unknown_doc_judgments == 1 and ds.report.unknown_doc_ids == ["no-such-doc"]
    assert "ghost" not in ds.qrels and "no-such-doc" not in ds.qrels["q1"]
    assert any("unknown query" in line for line in ds.report.lines())
    assert ds.describe()["problems"]["unknown_doc_judgments"] == 1


def test_trec_style_qrels_and_queries_without_relevant_documents(tmp_path, registry):
    folder = write_beir(tmp_path)
    (folder / "qrels" / "dev.tsv").write_text("q0 0 cats-1 1\nq1 0 dogs-1 0\n")
    ds = load_dataset(folder, split="dev", registry=registry)
    assert [q.id for q in ds.queries] == ["q0"]
    assert ds.report.queries_without_relevant == 1


def test_neither_layout_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DatasetError, match="neither a BEIR data set .* nor a labelled media folder"):
        detect_layout(tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "missing")


def test_beir_missing_parts_missing_split_and_empty_split(tmp_path, registry):
    folder = write_beir(tmp_path)
    with pytest.raises(DatasetError, match="no qrels for split 'dev'.*splits found: test"):
        load_dataset(folder, split="dev", registry=registry)
    (folder / "qrels" / "empty.tsv").write_text("query-id\tcorpus-id\tscore\n")
    with pytest.raises(DatasetError, match="split 'empty' is empty"):
        load_dataset(folder, split="empty", registry=registry)
    (folder / "qrels" / "bad.tsv").write_text("q0\tcats-0\tvery\n")
    with pytest.raises(DatasetError, match="bad.tsv:1: relevance 'very' is not a number"):
        load_dataset(folder, split="bad", registry=registry)
    (folder / "qrels" / "nomatch.tsv").write_text("q0\tno-doc\t1\n")
    with pytest.raises(DatasetError, match="no query with a relevant document.*unknown document"):
        load_dataset(folder, split="nomatch", registry=registry)
    (folder / "queries.jsonl").unlink()
    with pytest.raises(DatasetError, match="no queries.jsonl"):
        load_dataset(folder, registry=registry)


def test_bad_corpus_lines_are_skipped_and_reported(tmp_path, registry):
    folder = write_beir(tmp_path)
    with (folder / "corpus.jsonl").open("a") as fh:
        fh.write("{not json\n" + json.dumps({"_id": "cats-0", "text": "dup"}) + "\n")
    ds = load_dataset(folder, registry=registry)
    assert len(ds.report.skipped_items) == 2
    assert len(ds.items) == 6 * len(TOPICS)


def test_limits_keep_the_first_documents_and_their_judged_queries(tmp_path, registry):
    ds = load_dataset(write_beir(tmp_path), registry=registry, limit_docs=13, limit_queries=2)
    assert len(ds.items) == 13 and ds.report.limited_docs == 6 * len(TOPICS) - 13
    assert [q.id for q in ds.queries] == ["q0", "q1"]  # q2 has a judged doc too, cut by limit_queries
    assert set(ds.qrels) == {"q0", "q1"}
    assert all(d in {i.id for i in ds.items} for r in ds.qrels.values() for d in r)


def test_labelled_images_query_by_example_with_split(tmp_path):
    ds = load_dataset(write_images(tmp_path), queries="example")
    assert ds.layout == "labelled"
    assert len(ds.queries) == len(COLORS) and len(ds.items) == 4 * len(COLORS)
    q = ds.queries[0]
    assert q.query.modality == Modality.IMAGE and isinstance(q.query.content, Media)
    assert q.id not in {i.id for i in ds.items}  # held out of the corpus
    label = q.id.split("/")[0]
    assert set(ds.qrels[q.id]) == {f"{label}/{label}_{i}.bmp" for i in range(1, 5)}
    assert ds.items[0].metadata["label"] in COLORS


def test_labelled_label_text_queries_and_deterministic_holdout(tmp_path):
    folder = write_images(tmp_path, with_split=False)
    by_text = load_dataset(folder, queries="label")
    assert sorted(q.text for q in by_text.queries) == sorted(COLORS)
    assert all(len(r) == 5 for r in by_text.qrels.values()) and len(by_text.items) == 20
    by_example = load_dataset(folder, queries="example")
    again = load_dataset(folder, queries="example")
    assert [q.id for q in by_example.queries] == [q.id for q in again.queries]
    assert len(by_example.queries) == len(COLORS)  # every fifth of five per label
    assert len(by_example.items) == 16


def test_labelled_bad_inputs(tmp_path):
    folder = write_images(tmp_path)
    with pytest.raises(DatasetError, match="split 'dev' is empty; splits found: test \\(4\\), train \\(16\\)"):
        load_dataset(folder, split="dev", queries="example")
    with (folder / "labels.csv").open("a") as fh:
        fh.write("missing.bmp,red,train\n,red,train\n")
    ds = load_dataset(folder, queries="example")
    assert len(ds.report.skipped_items) == 2
    assert "no file 'missing.bmp'" in ds.report.skipped_items[0]
    (folder / "labels.csv").write_text("name,colour\nx.bmp,red\n")
    with pytest.raises(DatasetError, match="needs a file column .* and a `label` column; found columns: name, colour"):
        load_dataset(folder)


def test_labelled_entries_outside_the_folder_are_skipped_and_a_header_only_file_is_named(tmp_path):
    folder = write_images(tmp_path)
    outside = tmp_path / "elsewhere.bmp"
    outside.write_bytes(next(folder.rglob("*.bmp")).read_bytes())
    with (folder / "labels.csv").open("a") as fh:
        fh.write(f"{outside},red,train\n../elsewhere.bmp,red,train\n")
    ds = load_dataset(folder, queries="example")
    assert sum("outside the data folder" in s for s in ds.report.skipped_items) == 2
    (folder / "labels.csv").write_text("file,label\n")
    with pytest.raises(DatasetError) as info:
        load_dataset(folder)
    assert "found columns" not in str(info.value)  # the columns are there; the rows are not
