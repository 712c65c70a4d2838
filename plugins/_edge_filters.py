"""Filters in qdrant-edge's terms: prismrag filter conditions as edge conditions, and the payload
index type that serves a condition."""

from __future__ import annotations

from typing import Any

import numpy as np
import qdrant_edge as qe

from prismrag.contracts import Filter

from ._qdrant import build_filter, filter_plan


def edge_filter(flt: Filter | None) -> Any:
    """The edge Filter of `flt`; None when it has no conditions."""
    if flt is None or not flt.conditions:
        return None
    return build_filter(filter_plan(flt), _condition, _filter)


def _condition(op: str, key: str, value: Any) -> Any:
    if op == "match":
        # qdrant-edge-py 0.9 reads a Python bool as the integer 1/0 (bool subclasses int), which
        # never matches a boolean payload; numpy's bool is no int and arrives as a boolean.
        return qe.FieldCondition(key, match=qe.MatchValue(np.bool_(value) if isinstance(value, bool) else value))
    if op == "any":
        return qe.FieldCondition(key, match=qe.MatchAny(value))
    if op == "range":
        return qe.FieldCondition(key, range=qe.RangeFloat(**value))
    if op == "datetime":
        return qe.FieldCondition(key, range=qe.RangeDateTime(**value))
    if op == "prefix":
        return qe.FieldCondition(key, match=qe.MatchPrefix(value))
    if op == "substring":
        return qe.FieldCondition(key, match=qe.MatchSubstring(value))
    if op == "empty":
        return qe.IsEmptyCondition(key)
    return qe.IsNullCondition(key)


def payload_schema(op: str, value: Any) -> Any:
    """The payload index type that serves a condition, judged by its value; None if unclear."""
    if op == "exists":
        return None  # its value says present or not, nothing of the field's type
    if op in ("in", "not_in"):
        values = list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]
        if not values or len({type(v) for v in values}) != 1:
            return None
        value = values[0]
    if isinstance(value, bool):
        return qe.PayloadSchemaType.Bool
    if isinstance(value, (int, float)):  # one numeric index serves integer and float payloads alike
        return qe.PayloadSchemaType.Float
    if isinstance(value, str):
        return qe.PayloadSchemaType.Datetime if op in ("gt", "gte", "lt", "lte") else qe.PayloadSchemaType.Keyword
    return None


def _filter(must: Any, must_not: Any, should: Any) -> Any:
    return qe.Filter(must=must, must_not=must_not, should=should)
