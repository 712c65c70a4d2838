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
