"""JSONL records that used to abort a whole ingest or change silently (issue 17): each is now one
record's clear error, or kept exactly, and the good records of the same file are indexed."""

from __future__ import annotations

from pathlib import Path

from prismrag.contracts import Context, Item, ItemError
from prismrag.plugins.loaders import JsonlLoader, JsonlParams

LINES = [
    '{"id": "good", "text": "a good record"}',
    '{"id": "surrogate-text", "text": "bad \\ud800 text"}',
    '{"id": "\\udfff", "text": "a lone surrogate as the id"}',
    '{"id": "nan-meta", "text": "fine text", "score": NaN}',
    '{"id": "inf-meta", "text": "fine text", "score": -Infinity}',
    '{"id": "big", "text": "a big number", "account": 123456789012345678901234567890}',
    "[" * 100_000 + "]" * 100_000,
    '{"id": "last", "text": "the last good record"}',
]


def load(tmp_path: Path) -> tuple[list[Item], list[str]]:
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    out = list(JsonlLoader(JsonlParams(path=str(path)), Context(base_dir=tmp_path)).load())
    return [o for o in out if isinstance(o, Item)], [str(o) for o in out if isinstance(o, ItemError)]


def test_bad_records_are_skipped_one_by_one_and_big_integers_kept_exactly(tmp_path):
    items, errors = load(tmp_path)
    assert [i.parent_id or i.id for i in items] == ["good", "big", "last"]
    assert len(errors) == 5, errors
    assert sum("lone surrogate" in e for e in errors) == 2
    assert any(":4:" in e and "NaN is not JSON" in e for e in errors)
    assert any(":5:" in e and "-Infinity is not JSON" in e for e in errors)
    assert any(":7:" in e and "nested too deeply" in e for e in errors)
    big = next(i for i in items if (i.parent_id or i.id) == "big")
    assert big.metadata["account"] == "123456789012345678901234567890"  # not 1.2345678901234568e+29
    for item in items:
        item.content.encode("utf-8")  # everything kept is storable text


def test_a_file_name_that_is_not_utf8_is_one_skipped_item_not_an_aborted_ingest(tmp_path):
    import os

    from fake_plugins import make_registry

    import prismrag

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ok.md").write_text("# ok\n\nfine words")
    with open(os.path.join(os.fsencode(docs), b"bad\xff.md"), "wb") as fh:
        fh.write(b"# bad\n\nname")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: nu\nstore: {use: qdrant-edge, path: store}\n"
                      "sources: [{use: text-files, path: docs}]\nretrievers:\n  kw: {encoder: {use: bm25}}\n")
    with prismrag.load_recipe(recipe, registry=make_registry()) as engine:
        report = engine.ingest()
    assert report.added == 1 and len(report.errors) == 1
    assert "bad\\udcff.md" in report.errors[0] and "rename the file" in report.errors[0]
