"""Filter expressions as typed on the command line and in the TUI's filter box."""

from __future__ import annotations

import pytest

from prismrag.contracts import Condition
from prismrag.errors import QueryError
from prismrag.filters import filter_from_dict, parse_filter_expressions, parse_filter_text


def test_expressions_and_their_types():
    flt = parse_filter_expressions(["lang=en", "year>=2020", "tag=a|b", "lang!=de", "score<0.5", "draft=false"])
    assert flt.conditions == (
        Condition("lang", "eq", "en"), Condition("year", "gte", 2020), Condition("tag", "in", ["a", "b"]),
        Condition("lang", "ne", "de"), Condition("score", "lt", 0.5), Condition("draft", "eq", False),
    )
    with pytest.raises(QueryError, match="cannot read filter"):
        parse_filter_expressions(["no operator"])


def test_a_filter_line_keeps_quotes_so_numbers_can_be_strings():
    flt = parse_filter_text('code="123" title="a b" year>=2020 tag=x|y')
    assert flt.conditions == (
        Condition("code", "eq", "123"), Condition("title", "eq", "a b"),
        Condition("year", "gte", 2020), Condition("tag", "in", ["x", "y"]),
    )
    assert parse_filter_text("code=123").conditions == (Condition("code", "eq", 123),)
    assert parse_filter_text("   ") is None
    with pytest.raises(QueryError, match="not closed"):
        parse_filter_text('title="a b')


def test_dicts():
    flt = filter_from_dict({"lang": "en", "year": {"gte": 2020, "lt": 2024}, "tag": ["a", "b"]})
    assert flt.conditions == (
        Condition("lang", "eq", "en"), Condition("year", "gte", 2020), Condition("year", "lt", 2024),
        Condition("tag", "in", ["a", "b"]),
    )


# ------------------------------------------------------------------ the richer syntax (issue 15.4)


def test_word_operators_negations_and_lists():
    flt = parse_filter_text(
        'tags contains rag file prefix licenses/ lang in [en, "de"] kind not in a,b author exists '
        'draft not exists title not contains "old draft" path not prefix tmp/ tag!=x|y'
    )
    assert flt.conditions == (
        Condition("tags", "contains", "rag"), Condition("file", "prefix", "licenses/"),
        Condition("lang", "in", ["en", "de"]), Condition("kind", "not_in", ["a", "b"]),
        Condition("author", "exists", True), Condition("draft", "exists", False),
        Condition("title", "not_contains", "old draft"), Condition("path", "not_prefix", "tmp/"),
        Condition("tag", "not_in", ["x", "y"]),
    )
    # The CLI form: one expression per --filter, the value is the rest (no quotes needed).
    assert parse_filter_expressions(["title contains Getting started", "year in 2020, 2021"]).conditions == (
        Condition("title", "contains", "Getting started"), Condition("year", "in", [2020, 2021]),
    )
    with pytest.raises(QueryError, match="unexpected 'now'"):
        parse_filter_expressions(["author exists now"])


def test_iso_dates_in_ranges():
    flt = parse_filter_text("date>=2024-01-01 updated<2024-06-30T12:00:00Z")
    assert flt.conditions == (Condition("date", "gte", "2024-01-01"), Condition("updated", "lt", "2024-06-30T12:00:00Z"))
    with pytest.raises(QueryError, match="a range needs a number or an ISO date/time"):
        parse_filter_text("date>=yesterday")


def test_one_syntax_everywhere():
    from prismrag.filters import parse_filter

    line = "tags contains rag date>=2024-01-01 lang!=de"
    want = parse_filter_text(line)
    assert parse_filter(line) == want
    assert parse_filter(["tags contains rag", "date>=2024-01-01", "lang!=de"]) == want
    assert parse_filter({"tags": {"contains": "rag"}, "date": {"gte": "2024-01-01"}, "lang": {"ne": "de"}}) == want
    with pytest.raises(QueryError, match="unknown operator"):
        filter_from_dict({"tags": {"has": "x"}})


PAYLOADS = [
    {"file": "licenses/MPL-2.0.txt", "tags": ["rag", "search"], "date": "2024-03-01", "n": 1, "lang": "en"},
    {"file": "licenses/MIT.txt", "tags": ["ragtime"], "date": "2023-12-31", "n": 2.0, "author": "Ann"},
    {"file": "docs/intro.md", "tags": [], "date": "2024-01-01T08:00:00Z", "n": 3, "lang": "de", "author": None},
    {"file": "docs/guide.md", "title": "A RAG guide", "n": 4, "lang": "en", "author": "Bo"},
]
FILTERS = [
    "file prefix licenses/", "file not prefix licenses/", "tags contains rag", "tags not contains time",
    "title contains RAG", "tags=rag", "tags in [search, none]", "lang not in [de]", "lang!=en",
    "author exists", "author not exists", "tags exists", "date>=2024-01-01", "date<2024-01-01T09:00:00Z",
    "n>=2 n<4", "n in [1, 4]", "file=docs/intro.md", "author=null", "author!=null", "n=2", "tags!=rag",
]


@pytest.mark.parametrize("kind", ["qdrant-edge", "qdrant-memory"])
def test_stores_agree_with_the_reference_semantics(kind, tmp_path):
    """Each filter on the real store selects exactly the payloads `matches` accepts."""
    import numpy as np

    from prismrag.contracts import PointBatch, VectorField
    from prismrag.filters import matches

    if kind == "qdrant-memory":
        pytest.importorskip("qdrant_client")
    from test_stores import make_store

    store = make_store(kind, tmp_path)
    store.open([VectorField("d", "dense", 4, "cosine")])
    ids = [f"p{i}" for i in range(len(PAYLOADS))]
    vectors = np.eye(4, dtype=np.float32)[: len(ids)] + 0.1
    store.upsert(PointBatch(ids, {"d": vectors}, [{"_id": i, "_hash": "h", **p} for i, p in zip(ids, PAYLOADS, strict=True)]))
    try:
        for text in FILTERS:
            flt = parse_filter_text(text)
            want = {i for i, p in zip(ids, PAYLOADS, strict=True) if matches(flt, p)}
            got = {h.id for h in store.search("d", vectors[:1], 10, flt)}
            assert got == want, text
        expect = {
            "file prefix licenses/": {"p0", "p1"}, "tags contains rag": {"p0", "p1"}, "author exists": {"p1", "p3"},
            "date>=2024-01-01": {"p0", "p2"}, "tags exists": {"p0", "p1"}, "lang!=en": {"p1", "p2"},
        }
        for text, want in expect.items():
            assert {i for i, p in zip(ids, PAYLOADS, strict=True) if matches(parse_filter_text(text), p)} == want, text
    finally:
        store.close()
