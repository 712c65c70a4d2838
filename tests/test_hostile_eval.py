"""Hostile evaluation data (issue 17): qrels that are not UTF-8 or hold scores that are not whole
numbers, labelled sets with a labels.csv or a text file that is not UTF-8, media sets whose corpus
links out of the folder. Each is a DatasetError naming the file and line, or one skipped item."""

from __future__ import annotations

import json
import os

import pytest
from eval_data import write_beir

from prismrag.datasets import DatasetError, load_dataset

needs_posix = pytest.mark.skipif(os.name != "posix", reason="symlinks")


def test_qrels_that_are_not_utf8_name_the_file_and_line(tmp_path, registry):
    folder = write_beir(tmp_path)
    with open(folder / "qrels" / "test.tsv", "ab") as fh:
        fh.write(b"q0\tcaf\xe9-1\t1\n")
    with pytest.raises(DatasetError, match=r"test.tsv:38: not UTF-8 text \(invalid continuation byte"):
        load_dataset(folder, registry=registry)  # before: a UnicodeDecodeError traceback


@pytest.mark.parametrize("score, problem", [
    ("inf", "not a whole number"), ("1e400", "not a whole number"), ("9" * 400, "not a whole number"),
    ("nan", "not a whole number"), ("2.5", "not a whole number"), ("high", "not a number"),
], ids=["inf", "1e400", "400-digits", "nan", "fraction", "word"])
def test_a_score_that_is_not_a_whole_number_is_refused_by_line(tmp_path, registry, score, problem):
    folder = write_beir(tmp_path, extra_qrels=f"q0\tcats-0\t{score}\n")
    with pytest.raises(DatasetError, match=rf"test.tsv:38: relevance '{score[:20]}.*' is {problem}"):
        load_dataset(folder, registry=registry)  # before: OverflowError tracebacks; 2.5 became 2 silently


def test_whole_scores_in_any_spelling_are_kept(tmp_path, registry):
    folder = write_beir(tmp_path, extra_qrels="q0\tcats-5\t3.0\nq0\tdogs-0\t-1\n")
    ds = load_dataset(folder, registry=registry)
    assert ds.qrels["q0"]["cats-5"] == 3 and ds.qrels["q0"].get("dogs-0", -1) == -1


def labelled(tmp_path):  # noqa: ANN201
    folder = tmp_path / "set"
    folder.mkdir()
    (folder / "a.txt").write_text("cats purr")
    (folder / "b.txt").write_text("cats hunt mice")
    return folder


def test_a_labels_csv_that_is_not_utf8_is_a_clear_error(tmp_path):
    folder = labelled(tmp_path)
    (folder / "labels.csv").write_bytes(b"file,label\na.txt,caf\xe9\n")
    with pytest.raises(DatasetError, match=r"labels.csv: not UTF-8 text .*save it as UTF-8"):
        load_dataset(folder, queries="label")


def test_a_labelled_text_file_that_is_not_utf8_is_one_skipped_item(tmp_path):
    folder = labelled(tmp_path)
    (folder / "c.txt").write_bytes(b"caf\xe9 au lait")
    (folder / "labels.csv").write_text("file,label\na.txt,cats\nb.txt,cats\nc.txt,drinks\n")
    ds = load_dataset(folder, queries="label")
    assert sorted(i.id for i in ds.items) == ["a.txt", "b.txt"]
    assert ds.report.skipped_items == ["labels.csv:4: c.txt is not UTF-8 text (invalid continuation byte at byte 3)"]


@needs_posix
def test_a_media_set_corpus_file_linking_out_of_the_folder_is_not_read(tmp_path, registry):
    folder = tmp_path / "media"
    (folder / "corpus").mkdir(parents=True)
    (folder / "qrels").mkdir()
    (tmp_path / "secret.txt").write_text("SECRET-TOKEN-12345")
    (folder / "corpus" / "a.txt").write_text("cats purr")
    (folder / "corpus" / "leak.txt").symlink_to(tmp_path / "secret.txt")
    (folder / "corpus" / "same.txt").symlink_to(folder / "corpus" / "a.txt")  # inside: kept
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "q", "text": "cats"}) + "\n")
    (folder / "qrels" / "test.tsv").write_text("q\ta.txt\t1\n")
    ds = load_dataset(folder, registry=registry)
    assert ds.layout == "media"
    assert sorted(i.id for i in ds.items) == ["a.txt", "same.txt"]
    assert not any("SECRET" in str(i.content) for i in ds.items)
    assert any("leak.txt" in s and "outside the data folder" in s for s in ds.report.skipped_items)
