"""Payload filters from the CLI (`key=value`, `key>=3`, `key=a|b`) and from Python dicts."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .contracts import Condition, Filter
from .errors import QueryError

_EXPR = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*(!=|>=|<=|=|>|<)\s*(.*?)\s*$")
_OPS = {"=": "eq", "!=": "ne", ">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}
_RANGE_KEYS = {"gt", "gte", "lt", "lte"}
_TOKEN = re.compile(r'(?:[^\s"]+|"[^"]*")+')
"""One expression of a filter line: runs of non-space characters and double-quoted strings."""


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_filter_text(text: str) -> Filter | None:
    """Space-separated expressions as typed in one line (the TUI's filter box). Quotes are kept for
    `_value`, so `code="123"` stays the string "123" and `title="a b"` may hold a space."""
    if text.count('"') % 2:
        raise QueryError(f"cannot read filter {text!r}: a double quote is not closed")
    parts = _TOKEN.findall(text)
    return parse_filter_expressions(parts) if parts else None


def parse_filter_expressions(expressions: Iterable[str]) -> Filter | None:
    """`lang=en`, `year>=2020`, `tag=a|b` (any of), `lang!=de`; all must hold."""
    conditions = []
    for expr in expressions:
        m = _EXPR.match(expr)
        if not m:
            raise QueryError(
                f"cannot read filter {expr!r}: write KEY=VALUE, KEY!=VALUE, KEY>=NUMBER, KEY<NUMBER "
                f"or KEY=A|B (any of)"
            )
        key, op, raw = m.groups()
        if op == "=" and "|" in raw:
            conditions.append(Condition(key, "in", [_value(v) for v in raw.split("|")]))
            continue
        value = _value(raw)
        if op in (">", ">=", "<", "<=") and not isinstance(value, (int, float)):
            raise QueryError(f"filter {expr!r}: {op} needs a number, got {raw!r}")
        conditions.append(Condition(key, _OPS[op], value))  # type: ignore[arg-type]
    return Filter(tuple(conditions)) if conditions else None


def filter_from_dict(spec: Mapping[str, Any] | Filter | None) -> Filter | None:
    """`{"lang": "en", "tag": ["a", "b"], "year": {"gte": 2020}, "kind": {"ne": "x"}}`."""
    if spec is None or isinstance(spec, Filter):
        return spec
    conditions = []
    for key, value in spec.items():
        if isinstance(value, list):
            conditions.append(Condition(key, "in", value))
        elif isinstance(value, Mapping):
            unknown = set(value) - _RANGE_KEYS - {"ne", "eq", "in"}
            if unknown:
                raise QueryError(f"filter on {key!r}: unknown operator(s) {sorted(unknown)}; use eq, ne, in, gt, gte, lt, lte")
            conditions.extend(Condition(key, op, v) for op, v in value.items())
        else:
            conditions.append(Condition(key, "eq", value))
    return Filter(tuple(conditions)) if conditions else None
