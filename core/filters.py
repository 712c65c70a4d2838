"""Payload filters: one syntax for the CLI, the TUI, the Python API and the server.

An expression is `KEY OP VALUE`; all expressions of a filter must hold:

    lang=en  lang!=de  year>=2020  score<0.5  date>=2024-01-01  (numbers, or ISO dates/times)
    tag=a|b  tag!=a|b  tag in [a, b]  tag not in a,b            (any of / none of)
    file prefix licenses/   file not prefix drafts/                (string starts with)
    tags contains rag       title not contains draft              (substring of the value or of
                                                                    any element of a list)
    author exists           author not exists                     (present, not null, not [])

A value is read as JSON when it is valid JSON (`123`, `true`, `null`, `"123"` for a string),
otherwise as the text itself. On a list field a condition holds when any element satisfies it;
a negation (`!=`, `not ...`) holds for items without the field. `matches` is the reference of
these semantics, which the stores implement natively.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from .contracts import Condition, Filter
from .errors import QueryError

__all__ = [
    "OPERATORS", "describe_values", "filter_from_dict", "matches", "parse_filter", "parse_filter_expressions",
    "parse_filter_text", "payload_value",
]

OPERATORS = (
    "eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "prefix", "not_prefix", "contains", "not_contains", "exists",
)
"""The condition operators, as `Condition.op` and as keys of the dict form."""
_RANGE = {"gt", "gte", "lt", "lte"}
_SYMBOLS = {"=": "eq", "!=": "ne", ">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}
_WORDS = {"in": "in", "prefix": "prefix", "contains": "contains", "exists": "exists"}
_NEGATED = {"in": "not_in", "prefix": "not_prefix", "contains": "not_contains", "eq": "ne"}

_KEY = re.compile(r"\s*([A-Za-z_][\w.\-]*)")
_SYMBOL = re.compile(r"\s*(!=|>=|<=|=|>|<)")
_WORD = re.compile(r"\s+(not\s+)?(in|prefix|contains|exists)\b", re.IGNORECASE)
_BARE = re.compile(r'(?:[^\s"]+|"[^"]*")+')
_LIST = re.compile(r'\[(?:[^\]"]|"[^"]*")*\]')
_SPLIT = re.compile(r'\s*,\s*(?=(?:[^"]*"[^"]*")*[^"]*$)')
"""A comma outside double quotes."""
_SYNTAX = (
    "write KEY=VALUE, KEY!=VALUE, KEY>=NUMBER-OR-DATE, KEY=A|B, KEY in [A, B], KEY prefix TEXT, "
    "KEY contains TEXT, KEY exists, or `not` before in/prefix/contains/exists"
)


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _list(text: str, where: str) -> list[Any]:
    text = text.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if isinstance(value, list):
            return value
        if not text.endswith("]"):
            raise QueryError(f"filter {where!r}: the list is not closed with `]`")
        text = text[1:-1]
    if "|" in text and "," not in text:
        return [_value(v.strip()) for v in text.split("|")]
    return [_value(v) for v in _SPLIT.split(text) if v != ""]


def _iso(value: str) -> datetime | None:
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _condition(key: str, op: str, value: Any, where: str) -> Condition:
    """A checked condition: ranges on numbers or ISO dates, text operators on strings."""
    if op in _RANGE:
        if isinstance(value, str):
            if _iso(value) is None:
                raise QueryError(
                    f"filter {where!r}: a range needs a number or an ISO date/time (e.g. 2024-01-01 or "
                    f"2024-01-01T12:00:00Z), got {value!r}"
                )
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise QueryError(f"filter {where!r}: a range needs a number or an ISO date/time, got {value!r}")
    elif op in ("prefix", "not_prefix", "contains", "not_contains"):
        if not isinstance(value, str):
            value = json.dumps(value)  # `contains 2024` means the text 2024
    elif op == "exists":
        if not isinstance(value, bool):
            raise QueryError(f"filter {where!r}: `exists` takes true or false, got {value!r}")
    elif op in ("in", "not_in"):
        value = list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]
    elif op not in ("eq", "ne"):
        raise QueryError(f"filter {where!r}: unknown operator {op!r}; use one of {', '.join(OPERATORS)}")
    return Condition(key, op, value)  # type: ignore[arg-type]


def _parse_one(text: str, pos: int, rest: bool) -> tuple[Condition, int]:
    """One expression starting at `pos`; with `rest`, the value is the rest of the text."""
    m = _KEY.match(text, pos)
    if not m:
        raise QueryError(f"cannot read filter {text[pos:].strip()!r}: {_SYNTAX}")
    key, pos = m.group(1), m.end()
    start = m.start(1)
    sym = _SYMBOL.match(text, pos)
    word = None if sym else _WORD.match(text, pos)
    if sym is None and word is None:
        raise QueryError(f"cannot read filter {text[start:].strip()!r}: {_SYNTAX}")
    if word is not None and word.group(2).lower() == "exists":
        end = word.end()
        return _condition(key, "exists", not word.group(1), text[start:end]), end
    pos = (sym or word).end()  # type: ignore[union-attr]
    while pos < len(text) and text[pos].isspace():
        pos += 1
    if rest:
        raw, end = text[pos:].strip(), len(text)
    else:
        vm = _LIST.match(text, pos) or _BARE.match(text, pos)
        raw, end = (vm.group(0), vm.end()) if vm else ("", pos)
    where = text[start:end].strip()
    if raw == "":
        raise QueryError(f"filter {where!r}: no value after the operator; {_SYNTAX}")
    if sym is not None:
        op = _SYMBOLS[sym.group(1)]
        if op in ("eq", "ne") and "|" in raw and not raw.startswith('"'):
            return _condition(key, "in" if op == "eq" else "not_in", _list(raw, where), where), end
        return _condition(key, op, _value(raw), where), end
    op = _WORDS[word.group(2).lower()]  # type: ignore[union-attr]
    if word.group(1):  # type: ignore[union-attr]
        op = _NEGATED[op]
    value = _list(raw, where) if op in ("in", "not_in") else _value(raw)
    return _condition(key, op, value, where), end


def parse_filter_text(text: str) -> Filter | None:
    """Expressions as typed in one line (the TUI's filter box), separated by spaces: a value with
    a space is quoted (`title="a b"`); quotes also keep `code="123"` a string."""
    if text.count('"') % 2:
        raise QueryError(f"cannot read filter {text!r}: a double quote is not closed")
    conditions, pos = [], 0
    while text[pos:].strip():
        cond, pos = _parse_one(text, pos, rest=False)
        conditions.append(cond)
        if pos < len(text) and not text[pos].isspace():
            raise QueryError(f"cannot read filter {text!r} at {text[pos:]!r}: separate expressions with spaces")
    return Filter(tuple(conditions)) if conditions else None


def parse_filter_expressions(expressions: Iterable[str]) -> Filter | None:
    """One expression per string (each `--filter` of the CLI); the value is the rest of the
    string, so `title=Getting started` needs no quotes. All must hold."""
    conditions = []
    for expr in expressions:
        cond, end = _parse_one(expr, 0, rest=True)
        if expr[end:].strip():
            raise QueryError(f"cannot read filter {expr!r}: unexpected {expr[end:].strip()!r} after it")
        conditions.append(cond)
    return Filter(tuple(conditions)) if conditions else None


def filter_from_dict(spec: Mapping[str, Any] | Filter | None) -> Filter | None:
    """`{"lang": "en", "tag": ["a", "b"], "year": {"gte": 2020}, "file": {"prefix": "docs/"},
    "tags": {"contains": "rag"}, "author": {"exists": True}, "kind": {"ne": "x"}}`."""
    if spec is None or isinstance(spec, Filter):
        return spec
    conditions = []
    for key, value in spec.items():
        where = f"{key}: {value!r}"
        if isinstance(value, list):
            conditions.append(_condition(key, "in", value, where))
        elif isinstance(value, Mapping):
            unknown = set(value) - set(OPERATORS)
            if unknown:
                raise QueryError(f"filter on {key!r}: unknown operator(s) {sorted(unknown)}; use {', '.join(OPERATORS)}")
            conditions.extend(_condition(key, op, v, where) for op, v in value.items())
        else:
            conditions.append(_condition(key, "eq", value, where))
    return Filter(tuple(conditions)) if conditions else None


def parse_filter(spec: str | Sequence[str] | Mapping[str, Any] | Filter | None) -> Filter | None:
    """Any form of filter: a line of expressions, a list of expressions, a dict, or a Filter."""
    if isinstance(spec, str):
        return parse_filter_text(spec)
    if isinstance(spec, Mapping) or spec is None or isinstance(spec, Filter):
        return filter_from_dict(spec)
    return parse_filter_expressions(spec)


# ------------------------------------------------------------------------- reference semantics


_MISSING = object()


def payload_value(payload: Mapping[str, Any], key: str) -> Any:
    """The value at a dotted key of a payload, or a private sentinel when absent."""
    value: Any = payload
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _holds(op: str, expected: Any, v: Any) -> bool:
    """Whether one stored scalar satisfies a positive operator."""
    if op == "eq":
        if isinstance(expected, bool) or isinstance(v, bool):
            return isinstance(expected, bool) and isinstance(v, bool) and v == expected
        return (v == expected) if _number(expected) == _number(v) else False
    if op == "in":
        return any(_holds("eq", e, v) for e in expected)
    if op == "prefix":
        return isinstance(v, str) and v.startswith(expected)
    if op == "contains":
        return isinstance(v, str) and expected in v
    if op in _RANGE:
        if isinstance(expected, str):
            a, b = (_iso(v) if isinstance(v, str) else None), _iso(expected)
            if a is None or b is None:
                return False
        elif _number(v):
            a, b = v, expected
        else:
            return False
        return {"gt": a > b, "gte": a >= b, "lt": a < b, "lte": a <= b}[op]
    raise QueryError(f"unknown filter operator {op!r}")


def _positive(c: Condition, payload: Mapping[str, Any]) -> bool:
    value = payload_value(payload, c.key)
    if c.op == "exists":
        present = value is not _MISSING and value is not None and value != []
        return present if c.value else not present
    op = {v: k for k, v in _NEGATED.items()}.get(c.op, c.op)
    if op == "eq" and c.value is None:
        return value is None  # present and null
    values = value if isinstance(value, list) else [value]
    return any(_holds(op, c.value, v) for v in values if v is not _MISSING and v is not None)


def matches(flt: Filter | None, payload: Mapping[str, Any]) -> bool:
    """Whether a stored payload passes `flt` (the semantics every store implements)."""
    if flt is None:
        return True
    for c in flt.conditions:
        ok = _positive(c, payload)
        if c.op in ("ne", "not_in", "not_prefix", "not_contains"):
            ok = not ok
        if not ok:
            return False
    return True


def describe_values(values: Sequence[Any], limit: int = 8) -> str:
    """A short list of values as a hint: `'a', 'b', ... (12 values)`."""
    shown = ", ".join(repr(v) for v in values[:limit])
    more = f", ... ({len(values)} values)" if len(values) > limit else ""
    return shown + more
